"""Realistic, deterministic seed data shared by the Stays and Tuya sandboxes.

Listings and locks are named the way a Brazilian operator and a lock installer would name
them (accents, "Apto"/"Ap.", several units in one building), so the fuzzy matching has real
work to do. Stays are laid out around "now" in the account's zone: some in house, same-day
turnovers, arrivals today and tomorrow, a cancellation and a maintenance block.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class SeedLock:
    device_id: str
    name: str
    online: bool = True
    category: str = "ms"
    product_name: str = "Wi-Fi Smart Lock"
    pin_length: int = 7
    # Capabilities and battery of the lock model (the sandbox's switches of the same names change them
    # at run time). Defaults are a plain Wi-Fi lock that takes every call, with a fresh-ish battery.
    modify_supported: bool = True          # answers modify-password (some models refuse it)
    offline_codes_supported: bool = True   # computes offline temporary passwords
    battery_kind: str = "percent"          # "percent": residual_electricity; "level": battery_state high/medium/low
    battery_start: int = 90                # battery percent when the sandbox first sees the lock


@dataclass
class Seed:
    listings: list[dict] = field(default_factory=list)
    reservations: list[dict] = field(default_factory=list)
    locks: list[SeedLock] = field(default_factory=list)


# (internal name, title, street, number, unit, city, lock name or None)
_LISTINGS: list[tuple[str, str, str, str, str, str, str | None]] = [
    ("Ed. Atlântica - Apto 101", "Vista mar em Copacabana", "Avenida Atlântica", "1702", "Apto 101", "Rio de Janeiro", "Fechadura Atlantica 101"),
    ("Ed. Atlântica - Apto 102", "Copacabana, 2 quartos", "Avenida Atlântica", "1702", "Apto 102", "Rio de Janeiro", "Atlantica Ap 102"),
    ("Ed. Atlântica - Apto 201", "Cobertura Copacabana", "Avenida Atlântica", "1702", "Apto 201", "Rio de Janeiro", "Porta Atlântica 201"),
    ("Casa São Conrado", "Casa com piscina em São Conrado", "Estrada da Gávea", "810", "", "Rio de Janeiro", "Casa Sao Conrado"),
    ("Studio Vila Madalena 3B", "Studio moderno na Vila Madalena", "Rua Harmonia", "455", "3B", "São Paulo", "Vila Madalena Studio 3B"),
    ("Loft Pinheiros 12", "Loft Pinheiros perto do metrô", "Rua dos Pinheiros", "1200", "12", "São Paulo", "Fechadura Loft Pinheiros 12"),
    ("Apartamento Ipanema 304", "Ipanema a 2 quadras da praia", "Rua Visconde de Pirajá", "330", "Apto 304", "Rio de Janeiro", "Ipanema 304"),
    ("Chalé Campos do Jordão", "Chalé com lareira", "Avenida Macedo Soares", "91", "", "Campos do Jordão", "Chale Campos Jordao"),
    ("Flat Moema 1507", "Flat em Moema", "Alameda dos Maracatins", "780", "1507", "São Paulo", "Moema 1507"),
    ("Suíte Pelourinho", "Suíte no Centro Histórico", "Rua Gregório de Matos", "27", "", "Salvador", "Pelourinho Suite"),
    ("Apto Barra 1203 - Bloco 2", "Barra da Tijuca, condomínio com lazer", "Avenida Lúcio Costa", "3600", "Bloco 2 Apto 1203", "Rio de Janeiro", "Barra Bl2 1203"),
    ("Casa Trancoso", "Casa no Quadrado", "Rua do Mucugê", "12", "", "Porto Seguro", None),
    ("Loft Pinheiros 14", "Loft novo em Pinheiros", "Rua dos Pinheiros", "1200", "14", "São Paulo", "Loft Pinheiros"),
]
# Newly listed: the first bookings start in three weeks. One has no lock installed yet, the
# other's lock was named without its unit, so the matcher only suggests it for an admin to confirm.
_NEW_LISTINGS = frozenset({"Casa Trancoso", "Loft Pinheiros 14"})

_EXTRA_LOCKS = ["Fechadura Escritório Centro"]

_FIRST_NAMES = ["Maria", "João", "Ana", "Pedro", "Luíza", "Carlos", "Fernanda", "Rafael", "Juliana",
                "Lucas", "Beatriz", "Gabriel", "Camila", "Mateus", "Larissa", "Thiago", "Letícia", "José"]
_LAST_NAMES = ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida",
               "Nascimento", "Lima", "Araújo", "Gonçalves"]
_PARTNERS = [("Airbnb", "HM"), ("Booking.com", "BK"), ("Direto", "DR")]


def hex_id(*parts: object) -> str:
    """A stable 24-hex id, shaped like Stays' Mongo ``_id``."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:24]


def tuya_device_id(*parts: object) -> str:
    """A stable id shaped like a Tuya device id (22 lowercase alphanumerics)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return "eb" + digest[:20]


def short_code(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(5))


def listing_record(index: int, internal_name: str, title: str, street: str, number: str,
                   unit: str, city: str, *, seed: int = 7) -> dict:
    rng = random.Random(f"{seed}-listing-{index}")
    return {
        "_id": hex_id("listing", seed, index),
        "id": short_code(rng),
        "internalName": internal_name,
        "_mstitle": {"pt_BR": title, "en_US": title},
        "status": "active",
        "address": {
            "countryCode": "BR",
            "state": "",
            "city": city,
            "region": "",
            "street": street,
            "streetNumber": number,
            "additional": unit,
            "zip": f"{rng.randint(10000, 99999)}-{rng.randint(100, 999)}",
        },
        "_idproperty": hex_id("property", seed, street, number),
        "groupIds": [],
    }


def reservation_record(*, reservation_id: str, code: str, listing_id: str, check_in: date,
                       check_out: date, check_in_time: str | None = "15:00",
                       check_out_time: str | None = "11:00", guest_name: str = "Maria Silva",
                       stays_type: str = "booked", created: date | None = None,
                       partner: tuple[str, str] = ("Airbnb", "HM")) -> dict:
    """One reservation in the detail shape of Stays' ``/booking/reservations``."""
    record = {
        "_id": reservation_id,
        "id": code,
        "creationDate": (created or check_in - timedelta(days=20)).isoformat(),
        "checkInDate": check_in.isoformat(),
        "checkOutDate": check_out.isoformat(),
        "_idlisting": listing_id,
        "_idclient": hex_id("client", guest_name),
        "type": stays_type,
        "guestsDetails": {
            "adults": 2, "children": 0, "infants": 0,
            "list": [{"name": guest_name, "phones": ["+55 21 99999-0000"], "primary": True}],
        },
        "partner": {"_id": hex_id("partner", partner[0]), "name": partner[0]},
        "partnerCode": f"{partner[1]}{int(hex_id('partner-code', reservation_id), 16) % 10**8:08d}",
        "reservationUrl": f"https://sandbox.stays.net/i/reservation/{code}",
        "price": {"currency": "BRL", "_f_total": 1200.0},
        "stats": {},
    }
    if check_in_time is not None:
        record["checkInTime"] = check_in_time
    if check_out_time is not None:
        record["checkOutTime"] = check_out_time
    return record


def build_seed(now: datetime, *, timezone: str = "America/Sao_Paulo", seed: int = 7) -> Seed:
    """Listings, their locks and stays laid out around ``now`` (deterministic for a given day)."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    result = Seed()
    for index, (internal, title, street, number, unit, city, lock_name) in enumerate(_LISTINGS):
        listing = listing_record(index, internal, title, street, number, unit, city, seed=seed)
        result.listings.append(listing)
        if lock_name is not None:
            result.locks.append(SeedLock(device_id=tuya_device_id("lock", seed, index), name=lock_name))
        stays = _stays_for_listing(listing, index, today, seed)
        if internal in _NEW_LISTINGS:
            stays = [s for s in stays if s["checkInDate"] >= (today + timedelta(days=21)).isoformat()]
        result.reservations.extend(stays)
    for extra, name in enumerate(_EXTRA_LOCKS):
        result.locks.append(SeedLock(device_id=tuya_device_id("extra-lock", seed, extra), name=name))
    return result


# Calendars are laid out from a fixed anchor so a stay keeps its id and dates from one day
# (and one restart of the sandbox) to the next; only the part around "now" is served.
_CALENDAR_ANCHOR = date(2025, 1, 6)


def _stays_for_listing(listing: dict, index: int, today: date, seed: int) -> list[dict]:
    """A mostly back-to-back calendar, served from 30 days ago to 90 days ahead."""
    rng = random.Random(f"{seed}-calendar-{index}")
    first, last = today - timedelta(days=30), today + timedelta(days=90)
    stays: list[dict] = []
    cursor = _CALENDAR_ANCHOR + timedelta(days=index % 4)
    number = 0
    while cursor < last:
        nights = rng.choice([2, 3, 3, 4, 5, 7])
        check_out = cursor + timedelta(days=nights)
        guest = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        check_in_time = rng.choice(["14:00", "15:00", "15:00", "16:00", None])
        check_out_time = rng.choice(["10:00", "11:00", "11:00", "12:00"])
        partner = rng.choice(_PARTNERS)
        gap = rng.choice([0, 0, 0, 1, 2, 4])
        stays_type = "booked"
        if number % 11 == 5:
            stays_type = "canceled"
        elif number % 13 == 7:
            stays_type = "blocked"
        if check_out >= first:
            stays.append(reservation_record(
                reservation_id=hex_id("reservation", seed, listing["_id"], number),
                code=short_code(random.Random(f"{seed}-{listing['_id']}-{number}")),
                listing_id=listing["_id"],
                check_in=cursor,
                check_out=check_out,
                check_in_time=check_in_time,
                check_out_time=check_out_time,
                guest_name=guest,
                stays_type=stays_type,
                partner=partner,
            ))
        number += 1
        # Mostly same-day turnovers, sometimes a gap of a few nights.
        cursor = check_out + timedelta(days=gap)
    return stays
