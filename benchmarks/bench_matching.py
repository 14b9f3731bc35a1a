"""Benchmark: suggest_mappings on 5,000 realistic listings x 5,000 locks.

Not a test. Run it from the repository root:

    .venv/bin/python benchmarks/bench_matching.py [--listings 5000] [--runs 5] [--seed 1]

Names follow the sandbox seed's style (lock_pipeline/sandbox/seed.py): units in shared
buildings ("Ed. Atlântica - Apto 101", block numbers, street numbers in the address),
houses, chalés and suites named after their neighbourhood (no unit number, so the lock has
to be compared with every listing), and locks named the way an installer would ("Fechadura
Atlantica 101", "Barra Bl2 1203", accents dropped, words reordered, zero-padded units, the
odd typo), plus locks that belong to no listing (building entrances, offices).

Prints the median wall time of ``--runs`` calls, the peak memory of one call (numpy/Python
allocations traced by tracemalloc, and the process's peak RSS), and how often the known
right lock was suggested / auto-confirmed, so a faster change that matches worse shows up.
The target is under 2 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lock_pipeline.mapping.matching import (  # noqa: E402
    ListingCandidate,
    LockCandidate,
    normalise_name,
    suggest_mappings,
)

_CITIES = {
    "Rio de Janeiro": ["Copacabana", "Ipanema", "Leblon", "Botafogo", "Barra da Tijuca", "Flamengo",
                       "Lagoa", "São Conrado", "Gávea", "Jardim Botânico", "Santa Teresa", "Recreio",
                       "Laranjeiras", "Urca", "Leme", "Tijuca", "Glória", "Catete"],
    "São Paulo": ["Vila Madalena", "Pinheiros", "Moema", "Jardins", "Itaim Bibi", "Vila Olímpia",
                  "Brooklin", "Consolação", "Bela Vista", "Perdizes", "Higienópolis", "Liberdade",
                  "Paraíso", "Vila Mariana", "Campo Belo"],
    "Salvador": ["Pelourinho", "Barra", "Rio Vermelho", "Ondina", "Itapuã", "Stella Maris"],
    "Florianópolis": ["Jurerê", "Lagoa da Conceição", "Canasvieiras", "Ingleses", "Campeche"],
    "Porto Seguro": ["Trancoso", "Arraial d'Ajuda", "Caraíva"],
    "Armação dos Búzios": ["Geribá", "Ferradura", "João Fernandes"],
    "Campos do Jordão": ["Capivari", "Alto da Boa Vista", "Vila Inglesa"],
    "Paraty": ["Centro Histórico", "Jabaquara", "Pontal"],
    "Gramado": ["Centro", "Planalto", "Bavária"],
}
_BUILDINGS = ["Atlântica", "Mirante", "Solar das Palmeiras", "Mar Azul", "Jardim Europa", "Aurora",
              "Horizonte", "Veneza", "Florença", "Monte Carlo", "Ipê Amarelo", "Jacarandá", "Girassol",
              "Primavera", "Marajó", "Tamoios", "Guanabara", "Netuno", "Oceania", "Ilha Bela",
              "Porto Real", "Vila Rica", "São Jorge", "Santa Clara", "Copacabana Palace", "Leme Tower",
              "Barão de Ipanema", "Golden Sea", "Maison Leblon", "Residencial Harmonia", "Bossa Nova",
              "Pão de Açúcar", "Corcovado", "Rio Branco", "Brisa do Mar", "Sol Nascente", "Ouro Preto",
              "Itaipu", "Cristal", "Esmeralda", "Safira", "Diamante", "Topázio", "Rubi", "Turmalina",
              "Acapulco", "Riviera", "Costa Azul", "Saint Tropez", "Ibiza", "Manhattan", "Bristol",
              "Windsor", "Cambridge", "Oxford", "Park Avenue", "Central Park", "Villa Borghese",
              "Dom Pedro", "Princesa Isabel", "Marquês de Pombal", "Tiradentes", "Anchieta",
              "Paineiras", "Mangueiras", "Flamboyant", "Bougainville", "Orquídea", "Hortênsia"]
_STREET_KIND = ["Rua", "Avenida", "Alameda", "Travessa", "Estrada", "Rua", "Rua"]
_STREET_NAME = ["Barata Ribeiro", "Visconde de Pirajá", "Dias Ferreira", "Aníbal de Mendonça",
                "Harmonia", "dos Pinheiros", "Gregório de Matos", "Lúcio Costa", "Nossa Senhora de Copacabana",
                "Bulhões de Carvalho", "Prudente de Morais", "Ataulfo de Paiva", "General Osório",
                "Oscar Freire", "Haddock Lobo", "Augusta", "Bela Cintra", "Teodoro Sampaio",
                "Fradique Coutinho", "Aspicuelta", "Ibirapuera", "dos Maracatins", "Macedo Soares",
                "do Mucugê", "Sete de Setembro", "Quinze de Novembro", "Tiradentes", "das Flores",
                "Marechal Deodoro", "Santos Dumont", "Getúlio Vargas", "Beira Mar", "das Gaivotas"]
_HOUSE_KIND = ["Casa", "Casa", "Chalé", "Suíte", "Bangalô", "Cabana"]
_HOUSE_ADJ = ["Azul", "Verde", "Amarela", "do Lago", "da Praia", "do Mar", "da Serra", "das Pedras",
              "do Sol", "da Lua", "Grande", "Pequena", "do Bosque", "da Colina", "das Palmeiras"]
_TITLES = ["Vista mar em {n}", "{n}, {q} quartos", "Cobertura em {n}", "Studio moderno em {n}",
           "{n} a {q} quadras da praia", "Perto do metrô em {n}", "Charmoso em {n}",
           "Apartamento familiar em {n}", "{n} com varanda", "Ótima localização em {n}"]
_HOUSE_TITLES = ["Casa com piscina em {n}", "Refúgio em {n}", "Chalé com lareira em {n}",
                 "Casa pé na areia em {n}", "Suíte charmosa em {n}", "Paz e natureza em {n}"]


def _strip_accents(text: str) -> str:
    from anyascii import anyascii
    return anyascii(text)


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 6:
        return word
    k = rng.randrange(1, len(word) - 1)
    return word[:k] + word[k + 1:]


def build(n_listings: int, n_locks: int, seed: int = 1, house_share: float = 0.15):
    """Listings, locks, and the right device id per listing id (None when it has no lock)."""
    rng = random.Random(seed)
    listings: list[ListingCandidate] = []
    locks: list[LockCandidate] = []
    truth: dict[str, str | None] = {}

    def add(names: tuple[str, str, str], lock_name: str | None) -> None:
        listing_id = f"L{len(listings):05d}"
        listings.append(ListingCandidate(listing_id, names))
        if lock_name is not None and len(locks) < n_locks:
            device = f"eb{rng.getrandbits(80):020x}"
            locks.append(LockCandidate(device, lock_name))
            truth[listing_id] = device
        else:
            truth[listing_id] = None

    cities = list(_CITIES)
    # an operator keeps its internal names distinct (even once accents and "Apto" are gone)
    internal_names: set[str] = set()
    while len(listings) < n_listings:
        city = rng.choice(cities)
        hood = rng.choice(_CITIES[city])
        street = f"{rng.choice(_STREET_KIND)} {rng.choice(_STREET_NAME)}"
        number = str(rng.randint(10, 4000))
        if rng.random() < house_share:  # a house/chalé/suite: named, not numbered
            kind, adj = rng.choice(_HOUSE_KIND), rng.choice(_HOUSE_ADJ + [""] * 5)
            internal = " ".join(x for x in (kind, adj, hood) if x)
            if normalise_name(internal) in internal_names:
                continue
            internal_names.add(normalise_name(internal))
            title = rng.choice(_HOUSE_TITLES).format(n=hood)
            address = f"{street}, {number} {city}"
            lock = rng.choice([
                f"{_strip_accents(kind)} {_strip_accents(adj)} {hood}",
                f"{hood} {kind} {adj}",
                f"Fechadura {kind} {adj} {_strip_accents(hood)}",
                f"{kind} {adj} {hood}",
            ]).replace("  ", " ").strip()
            add((internal, title, address), lock if rng.random() < 0.9 else None)
            continue
        # a building with several of the operator's units
        building = rng.choice(_BUILDINGS)
        blocks = rng.choice([None, None, None, 2, 3])
        floors = rng.randint(2, 20)
        for _ in range(rng.randint(1, 10)):
            if len(listings) >= n_listings:
                break
            unit = f"{rng.randint(1, floors)}{rng.randint(1, 8):02d}"
            if rng.random() < 0.05:
                unit += rng.choice("AB")
            block = str(rng.randint(1, blocks)) if blocks else None
            kind = rng.choice(["Apto", "Apto", "Flat", "Studio", "Loft", "Apartamento"])
            bl = f" - Bloco {block}" if block else ""
            place = rng.choice([building, building, hood])
            internal = rng.choice([f"Ed. {place} - {kind} {unit}{bl}", f"{kind} {place} {unit}{bl}",
                                   f"{place} {unit}{bl}"])
            if normalise_name(internal) in internal_names:
                continue
            internal_names.add(normalise_name(internal))
            title = rng.choice(_TITLES).format(n=hood, q=rng.randint(1, 4))
            address = f"{street}, {number} {'Bloco ' + block + ' ' if block else ''}Apto {unit} {city}"
            # the installer names the lock after the operator's name for the place, or the street
            lock_place = place if rng.random() < 0.8 else f"{street.split(' ', 1)[1]} {number}"
            shown_unit = unit.zfill(4) if rng.random() < 0.05 else unit
            bl_part = ""
            if block and rng.random() < 0.8:
                bl_part = rng.choice([f" Bl{block}", f" Bloco {block}", f" Bl {block}"])
            lock = rng.choice([
                f"Fechadura {lock_place} {shown_unit}{bl_part}",
                f"{_strip_accents(lock_place)} Ap {shown_unit}{bl_part}",
                f"Porta {lock_place}{bl_part} {shown_unit}",
                f"{shown_unit} {_strip_accents(lock_place)}{bl_part}",
                f"{lock_place} - Apto {shown_unit}{bl_part}",
            ])
            if rng.random() < 0.05:
                lock = " ".join(_typo(rng, w) for w in lock.split())
            add((internal, title, address), lock if rng.random() < 0.9 else None)
    extra = 0
    while len(locks) < n_locks:  # locks that belong to no listing
        city = rng.choice(cities)
        hood = rng.choice(_CITIES[city])
        locks.append(LockCandidate(f"ex{extra:020d}", rng.choice([
            f"Portaria {rng.choice(_BUILDINGS)}", f"Fechadura Escritório {hood}",
            f"Depósito {hood} {rng.randint(1, 30)}", f"Lock {rng.randint(1000, 9999)}",
            f"Garagem {rng.choice(_BUILDINGS)}",
        ])))
        extra += 1
    rng.shuffle(locks)
    return listings, locks, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=5000)
    parser.add_argument("--locks", type=int, default=None, help="default: as many as listings")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--house-share", type=float, default=0.15,
                        help="share of houses/chalés/suites, whose locks name no unit (the costly kind)")
    args = parser.parse_args()
    listings, locks, truth = build(args.listings, args.locks or args.listings, args.seed,
                                   args.house_share)
    numberless = sum(1 for lock in locks if not any(c.isdigit() for c in lock.name))
    print(f"{len(listings)} listings, {len(locks)} locks ({numberless} without a number), "
          f"{os.cpu_count()} CPUs")

    suggest_mappings(listings[:50], locks[:50])  # warm-up (imports, regex compilation)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        result = suggest_mappings(listings, locks)
        times.append(time.perf_counter() - start)
    print(f"suggest_mappings: median {statistics.median(times):.3f} s over {args.runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f})")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    suggest_mappings(listings, locks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory: {peak / 2**20:.1f} MiB traced (Python + numpy) in one call; "
          f"process peak RSS {rss_after / 1024:.0f} MiB")

    with_lock = [s for s in result if truth[s.listing_id] is not None]
    right = sum(s.device_id == truth[s.listing_id] for s in with_lock)
    auto = [s for s in result if s.auto_confirm]
    auto_right = sum(s.device_id == truth[s.listing_id] for s in auto)
    wrong = sum(s.device_id is not None and s.device_id != truth[s.listing_id] for s in result)
    print(f"quality: right lock suggested for {right}/{len(with_lock)} listings with a lock; "
          f"{wrong} other suggestions (for the admin to reject); "
          f"auto-confirmed {len(auto)}, of which right {auto_right}")


if __name__ == "__main__":
    main()
