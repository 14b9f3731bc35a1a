"""Listing -> lock suggestions: the seed's ground truth, the tricky names, the 1:1 and
auto-confirm rules, and the fast path agreeing with the one-pair reference definition."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import numpy as np
import pytest
from rapidfuzz import fuzz

from lock_pipeline.mapping.matching import (
    ListingCandidate,
    LockCandidate,
    Suggestion,
    _Index,
    _token_set_upper_bound,
    normalise_name,
    score_pair,
    suggest_mappings,
    unit_numbers,
)
from lock_pipeline.sandbox.seed import build_seed, tuya_device_id

NOW = datetime(2025, 6, 1, 15, 0, tzinfo=timezone.utc)


def listing(listing_id: str, *names: str) -> ListingCandidate:
    return ListingCandidate(listing_id, tuple(names))


def lock(device_id: str, name: str) -> LockCandidate:
    return LockCandidate(device_id, name)


def by_listing(suggestions: list[Suggestion]) -> dict[str, Suggestion]:
    return {s.listing_id: s for s in suggestions}


def seed_candidates():
    """The sandbox seed as the pipeline sees it: parsed Stays records (internal name, title,
    one-line address), and the Tuya locks."""
    from lock_pipeline.stays.records import parse_listing

    seed = build_seed(NOW)
    listings = []
    for record in map(parse_listing, seed.listings):
        listings.append(listing(record.listing_id, record.internal_name, record.title, record.address))
    locks = [lock(x.device_id, x.name) for x in seed.locks]
    device_ids = {x.device_id for x in seed.locks}
    truth = {}
    for index, record in enumerate(seed.listings):
        device = tuya_device_id("lock", 7, index)  # build_seed's id for listing index's lock
        truth[record["_id"]] = device if device in device_ids else None
    return seed, listings, locks, truth


# ------------------------------------------------------------------ the seed (ground truth)


def test_every_seed_listing_with_a_lock_gets_its_own_lock():
    """The seed's pairs are what an operator would map by hand; each must be the suggestion."""
    _, listings, locks, truth = seed_candidates()
    suggestions = by_listing(suggest_mappings(listings, locks))
    with_lock = {lid: dev for lid, dev in truth.items() if dev is not None}
    assert len(with_lock) >= 11
    for listing_id, device in with_lock.items():
        assert suggestions[listing_id].device_id == device, listing_id


def test_seed_pairs_auto_confirm_unless_the_lock_omits_the_unit():
    """A seed lock that names its unit (or a house with no unit) is unambiguous: no admin click.
    "Loft Pinheiros" for "Loft Pinheiros 14" names no unit, and "Loft Pinheiros 12" is next
    door: suggested, but an admin confirms."""
    _, listings, locks, truth = seed_candidates()
    lock_names = {k.device_id: k.name for k in locks}
    own_names = {x.listing_id: x.names[0] for x in listings}
    checked = set()
    for s in suggest_mappings(listings, locks):
        if truth[s.listing_id] is None:
            continue
        omits_unit = not unit_numbers(lock_names[s.device_id]) and bool(unit_numbers(own_names[s.listing_id]))
        assert s.auto_confirm is not omits_unit, (own_names[s.listing_id], s)
        checked.add(omits_unit)
    assert checked == {True, False}


def test_casa_trancoso_without_a_lock_is_not_auto_mapped():
    """Casa Trancoso has no lock; the office lock or another must not be confirmed onto it."""
    seed, listings, locks, _ = seed_candidates()
    trancoso = next(r["_id"] for r in seed.listings if r["internalName"] == "Casa Trancoso")
    s = by_listing(suggest_mappings(listings, locks))[trancoso]
    assert s.device_id is None or not s.auto_confirm


def test_one_suggestion_per_listing_in_input_order():
    """Callers zip the result with their listings."""
    _, listings, locks, _ = seed_candidates()
    assert [s.listing_id for s in suggest_mappings(listings, locks)] == [x.listing_id for x in listings]


# ------------------------------------------------------------------ normalising


def test_accents_are_transliterated_not_deleted():
    """A prior system turned "São" into "so" and never matched; anyascii gives "sao"."""
    assert normalise_name("São") == "sao"
    assert normalise_name("Chalé Campos do Jordão") == "chale campos jordao"
    assert normalise_name("Sa\u0303o Conrado") == "sao conrado"  # decomposed (NFD) accent


def test_filler_words_and_punctuation_go():
    """What a thing is ("Apto", "Fechadura", "Ed.") is not which one it is."""
    assert normalise_name("Ed. Atlântica - Apto 101") == "atlantica 101"
    assert normalise_name("Fechadura Atlantica 101") == "atlantica 101"
    assert normalise_name("Suíte Pelourinho") == normalise_name("Pelourinho Suite") == "pelourinho"


def test_bloco_and_bl_normalise_alike_and_keep_the_block_number():
    """"Bloco 2 Apto 1203" and "Bl2 1203" are the same door; the block number must survive."""
    assert normalise_name("Bloco 2 Apto 1203") == normalise_name("Bl2 1203") == "2 1203"
    assert unit_numbers("Bloco 2 Apto 1203") == unit_numbers("Barra Bl2 1203") == {"2", "1203"}


def test_unit_numbers():
    """Units are numbers with an optional letter, leading zeros dropped; block letters count."""
    assert unit_numbers("Studio Vila Madalena 3B") == {"3b"}
    assert unit_numbers("Apto 0101") == {"101"}
    assert unit_numbers("Apto 101-A") == {"101a"}
    assert unit_numbers("Bloco A Apto 101") == {"a", "101"}
    assert unit_numbers("Casa São Conrado") == frozenset()
    assert unit_numbers("Chalé 1º andar") == {"1"}
    assert unit_numbers("") == frozenset()


# ------------------------------------------------------------------ the tricky pairs


def test_apto_101_matches_apartamento_101_centro():
    """Different filler words, same unit: a confident match."""
    [s] = suggest_mappings([listing("L1", "Apartamento 101 - Centro")], [lock("D1", "Apto 101")])
    assert s.device_id == "D1"
    assert s.score >= 92


def test_apto_101_never_matches_apto_102():
    """A wrong unit is a stranger's door: score 0, even with every threshold at its lowest."""
    assert score_pair(listing("L", "Ed. Atlântica - Apto 102"), lock("D", "Fechadura Atlântica 101")) == 0
    [s] = suggest_mappings([listing("L", "Apto 102")], [lock("D", "Apto 101")],
                           min_score=0.01, auto_confirm_score=0.01, min_margin=0)
    assert s.device_id is None and s.runner_up_device_id is None


def test_lock_numbers_must_all_be_among_the_listings():
    """A lock naming a block or unit the listing lacks is another door."""
    barra = listing("L", "Apto Barra 1203 - Bloco 2", "", "Avenida Lúcio Costa 3600 Bloco 2 Apto 1203")
    assert score_pair(barra, lock("D", "Barra Bl2 1203")) == 100
    assert score_pair(barra, lock("D", "Barra Bl3 1203")) == 0
    assert score_pair(listing("L", "Bloco A Apto 101"), lock("D", "Bloco B Apto 101")) == 0


def test_two_units_in_one_building_pick_their_own_lock():
    """Same building, same street number in the address: the unit number decides."""
    listings = [
        listing("L101", "Ed. Atlântica - Apto 101", "Vista mar", "Avenida Atlântica 1702 Apto 101"),
        listing("L102", "Ed. Atlântica - Apto 102", "Copacabana", "Avenida Atlântica 1702 Apto 102"),
    ]
    locks = [lock("D102", "Atlantica Ap 102"), lock("D101", "Fechadura Atlantica 101")]
    got = by_listing(suggest_mappings(listings, locks))
    assert got["L101"].device_id == "D101" and got["L101"].auto_confirm
    assert got["L102"].device_id == "D102" and got["L102"].auto_confirm


def test_accented_and_plain_names_match():
    """Installers type without accents; "São Conrado" and "Sao Conrado" are the same place."""
    [s] = suggest_mappings([listing("L", "Casa São Conrado")], [lock("D", "Casa Sao Conrado")])
    assert (s.device_id, s.score, s.auto_confirm) == ("D", 100.0, True)


def test_building_only_lock_with_three_units_is_never_auto_confirmed():
    """"Fechadura Atlântica" fits 101, 102 and 201 alike: an admin must choose."""
    listings = [listing(f"L{u}", f"Ed. Atlântica - Apto {u}", "", f"Avenida Atlântica 1702 Apto {u}")
                for u in (101, 102, 201)]
    for thresholds in ({}, {"auto_confirm_score": 50.0}):  # the lock-side margin, not only the score
        got = suggest_mappings(listings, [lock("D", "Fechadura Atlântica")], **thresholds)
        assert [s.device_id for s in got].count("D") == 1
        assert not any(s.auto_confirm for s in got)


def test_lock_fitting_two_unnumbered_listings_is_not_auto_confirmed():
    """No unit numbers anywhere, no other lock: the listing-side margin alone would confirm."""
    listings = [listing("A", "Casa Azul Trancoso"), listing("B", "Casa Verde Trancoso")]
    got = suggest_mappings(listings, [lock("D", "Fechadura Trancoso")])
    assert [s.device_id for s in got].count("D") == 1
    assert not any(s.auto_confirm for s in got)


def test_unit_lock_beats_the_buildings_entrance_lock():
    """A lock naming no unit scores below the unit's own lock, so the unit still auto-confirms."""
    listings = [listing("L101", "Ed. Atlântica - Apto 101"), listing("L102", "Ed. Atlântica - Apto 102")]
    locks = [lock("ENTRANCE", "Portaria Atlântica"), lock("D101", "Atlântica 101"), lock("D102", "Atlântica 102")]
    got = by_listing(suggest_mappings(listings, locks))
    for unit in ("101", "102"):
        s = got[f"L{unit}"]
        assert s.device_id == f"D{unit}" and s.auto_confirm
        assert s.runner_up_device_id == "ENTRANCE" and s.runner_up_score <= 90.0


def test_house_beats_an_apartment_whose_title_mentions_the_place():
    """"Charmoso em Ferradura" in a title must not take the house Suíte Ferradura's lock."""
    listings = [listing("A", "Ed. Atlântica - Apto 307", "Charmoso em Ferradura"),
                listing("B", "Suíte Ferradura", "Refúgio em Ferradura")]
    got = by_listing(suggest_mappings(listings, [lock("D", "Suite Ferradura")]))
    assert got["B"].device_id == "D" and got["B"].auto_confirm
    assert got["A"].device_id is None


def test_equal_scores_go_to_the_closer_wording():
    """token_set_ratio scores "Cabana Centro" 100 against both houses; the exact one wins."""
    listings = [listing("A", "Cabana Pequena Centro"), listing("B", "Cabana Centro")]
    locks = [lock("D1", "Cabana Centro"), lock("D2", "Fechadura Cabana Pequena Centro")]
    got = by_listing(suggest_mappings(listings, locks))
    assert (got["A"].device_id, got["B"].device_id) == ("D2", "D1")


# ------------------------------------------------------------------ 1:1, runner-up, thresholds


def test_runner_up_is_carried():
    """The admin sees what the choice was between."""
    listings = [listing("L", "Apartamento Ipanema 304")]
    locks = [lock("D1", "Ipanema 304"), lock("D2", "Fechadura Ipanema")]
    [s] = suggest_mappings(listings, locks)
    assert (s.device_id, s.runner_up_device_id) == ("D1", "D2")
    assert s.score == 100.0 and s.runner_up_score == pytest.approx(90.0)


def test_runner_up_may_be_a_lock_taken_by_a_better_listing():
    """X's best lock went to Y (a better fit): X gets its second choice, the taken lock is its
    runner-up and outscores it, so X is not auto-confirmed even with a low bar."""
    listings = [listing("X", "Ipanemma 304"), listing("Y", "Ipanema 304")]
    locks = [lock("D1", "Ipanema 304"), lock("D2", "Fechadura Ipanemma")]
    got = by_listing(suggest_mappings(listings, locks, auto_confirm_score=80))
    assert got["Y"].device_id == "D1"
    x = got["X"]
    assert (x.device_id, x.runner_up_device_id) == ("D2", "D1")
    assert x.runner_up_score > x.score and not x.auto_confirm


def test_one_lock_is_never_suggested_twice():
    """1:1: two listings that both fit one lock; only one gets it, the other names it as runner-up."""
    listings = [listing("A", "Ipanema 304"), listing("B", "Apartamento Ipanema 304")]
    got = by_listing(suggest_mappings(listings, [lock("D", "Ipanema 304")]))
    assert [s.device_id for s in got.values()].count("D") == 1
    other = got["B"] if got["A"].device_id == "D" else got["A"]
    assert other.device_id is None and other.runner_up_device_id == "D"
    assert not any(s.auto_confirm for s in got.values())


def test_one_to_one_on_a_crowded_portfolio():
    """Many similar names: still no device twice, and the same result in any input order."""
    listings, locks = _crowded(seed=3, n=150)
    first = suggest_mappings(listings, locks)
    devices = [s.device_id for s in first if s.device_id]
    assert len(devices) == len(set(devices)) > 50
    shuffled_l, shuffled_k = listings[:], locks[:]
    random.Random(1).shuffle(shuffled_l)
    random.Random(2).shuffle(shuffled_k)
    assert by_listing(suggest_mappings(shuffled_l, shuffled_k)) == by_listing(first)


def test_thresholds_are_configurable():
    """The bars are policy: each one moves the outcome of the same pair."""
    listings = [listing("L", "Apartamento Ipanema 304")]
    locks = [lock("D1", "Ipanema 304"), lock("D2", "Fechadura Ipanema")]  # 100 vs 90
    assert suggest_mappings(listings, locks)[0].auto_confirm
    assert not suggest_mappings(listings, locks, min_margin=15)[0].auto_confirm
    assert not suggest_mappings(listings, locks, auto_confirm_score=100.5)[0].auto_confirm
    only_building = [lock("D2", "Fechadura Ipanema")]  # 90 alone
    assert not suggest_mappings(listings, only_building)[0].auto_confirm
    assert suggest_mappings(listings, only_building, auto_confirm_score=85)[0].auto_confirm
    assert suggest_mappings(listings, only_building, min_score=95)[0].device_id is None


def test_a_runner_up_below_min_score_still_counts_against_the_margin():
    """Raising min_score must not hide a close second lock and so turn on an auto-confirm."""
    listings = [listing("L", "Ipanema 304")]
    locks = [lock("D1", "Ipanema 304"), lock("D2", "Ipanemma 304")]  # 100 vs 95.65
    [s] = suggest_mappings(listings, locks, min_score=96)
    assert (s.device_id, s.runner_up_device_id) == ("D1", "D2")
    assert s.runner_up_score < 96 and not s.auto_confirm


def test_empty_inputs():
    """No locks, no listings, blank names: no crash and nothing suggested."""
    assert suggest_mappings([], [lock("D", "Ipanema 304"), lock("E", "Fechadura Ipanema")]) == []
    [s] = suggest_mappings([listing("L", "Ipanema 304")], [])
    assert s == Suggestion("L", None, 0.0, None, None, False)
    [s] = suggest_mappings([listing("L", "", "")], [lock("D", "Ipanema 304"), lock("E", "")])
    assert s.device_id is None
    [s] = suggest_mappings([listing("L", "Fechadura")], [lock("E", "Fechadura")])
    assert s.device_id is None


# ------------------------------------------------------------------ fast path == reference


def _crowded(seed: int, n: int):
    """Listings and locks that collide on purpose: shared buildings, units, places, typos."""
    rng = random.Random(seed)
    places = ["Atlântica", "Ipanema", "São Conrado", "Moema", "Barra", "Vila Madalena", "Centro",
              "Pelourinho", "Leblon", "Mar Azul"]
    listings, locks = [], []
    for k in range(n):
        place, unit = rng.choice(places), rng.choice(["101", "102", "201", "304", "3B", "1203", ""])
        block = rng.choice(["", "", " - Bloco 2", " - Bloco 3"])
        kind = rng.choice(["Apto", "Casa", "Flat", "Ed.", "Suíte"])
        listings.append(listing(f"L{k:03d}", f"{kind} {place} {unit}{block}".strip(),
                                rng.choice(["", f"Vista mar em {place}", "Perto do metrô"]),
                                f"Rua {rng.choice(places)} {rng.randint(1, 40)} {unit}"))
        lock_name = rng.choice([f"Fechadura {place} {unit}", f"{place} Ap {unit}{block.replace(' - Bloco ', ' Bl')}",
                                f"Porta {place}", f"{unit} {place[:-1]}", f"Portaria {rng.choice(places)}"])
        locks.append(lock(f"D{k:03d}", lock_name))
    return listings, locks


def _reference(listings, locks, auto_confirm_score=92.0, min_margin=8.0, min_score=60.0):
    """Greedy over score_pair, written plainly (ties: closeness ignored, so only checked
    where the best score is unique)."""
    floor = min(min_score, auto_confirm_score - min_margin)
    return {(x.listing_id, k.device_id): s for x in listings for k in locks
            if (s := score_pair(x, k)) >= floor and s > 0}


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_path_scores_equal_score_pair(seed):
    """The bulk path (number index, bounds, cheap ratio) must give score_pair's numbers."""
    listings, locks = _crowded(seed, 60)
    scores = _reference(listings, locks)
    for s in suggest_mappings(listings, locks):
        if s.device_id is not None:
            assert s.score == pytest.approx(scores[(s.listing_id, s.device_id)], abs=0.01)
        if s.runner_up_device_id is not None:
            assert s.runner_up_score == pytest.approx(scores[(s.listing_id, s.runner_up_device_id)], abs=0.01)
        best_other = max((v for (lid, dev), v in scores.items()
                          if lid == s.listing_id and dev != s.device_id), default=None)
        assert (s.runner_up_score is None) == (best_other is None)
        if best_other is not None:
            assert s.runner_up_score == pytest.approx(best_other, abs=0.01)
        assert s.device_id is None or s.score >= 60


def test_greedy_takes_the_best_pairs_first():
    """No suggestion could be swapped for a strictly better free lock (greedy by best score)."""
    listings, locks = _crowded(5, 60)
    scores = _reference(listings, locks)
    got = suggest_mappings(listings, locks)
    taken = {s.device_id for s in got if s.device_id}
    for s in got:
        free = [v for (lid, dev), v in scores.items() if lid == s.listing_id and dev not in taken and v >= 60]
        assert all(v <= s.score + 0.01 for v in free), s


def test_token_set_bulk_and_bound_agree_with_rapidfuzz():
    """The bound never undercuts token_set_ratio, and the bulk scorer returns it exactly."""
    rng = random.Random(4)
    vocab = ["atlantica", "101", "102", "sao", "conrado", "mar", "azul", "moema", "1507", "flat", "vila",
             "madalena", "3b", "centro", "historico", "ipanema", "304", "rio", "janeiro", "atlantca"]
    lock_texts = [" ".join(rng.sample(vocab, rng.randint(1, 4))) for _ in range(80)]
    name_texts = [" ".join(rng.sample(vocab, rng.randint(1, 6))) for _ in range(80)]
    index = _Index([listing(f"L{i}", t) for i, t in enumerate(name_texts)], lock_texts)
    pl, pn = np.repeat(np.arange(80), 80), np.tile(np.arange(80), 80)
    exact = np.array([fuzz.token_set_ratio(lock_texts[a], name_texts[b]) for a, b in zip(pl, pn)])
    for floor in (0.0, 60.0, 84.0):
        bulk = index.token_set(pl, pn, floor)
        want = np.where(exact >= floor, exact, 0.0)
        assert np.allclose(bulk, want, atol=1e-3)
    shared_n, shared_c = index._shared(pl, pn)
    some = shared_n > 0
    bound = _token_set_upper_bound(index.locks.n[pl[some]], index.locks.chars[pl[some]], index.names.n[pn[some]],
                                   index.names.chars[pn[some]], shared_n[some], shared_c[some])
    assert (bound >= exact[some] - 1e-6).all()
    assert (bound < 100).any()  # the bound does prune something
