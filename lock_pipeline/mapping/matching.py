"""Fuzzy listing -> lock suggestions (pure functions, no I/O).

An admin confirms every mapping; this module only proposes one lock per listing, says how
sure it is, and names the runner-up so the admin can see what the choice was between.

The score
---------
``score_pair`` defines it; ``suggest_mappings`` computes exactly the same number, only fast.

1. Both sides are normalised (:func:`normalise_name`): transliterated (São -> sao), lower
   case, punctuation gone, filler words ("Apto", "Fechadura", "Ed.", "Bloco", ...) dropped.
   What is left is the part people actually vary: building, neighbourhood, unit.
2. Unit numbers are a hard gate, not a similarity: every unit token of the lock
   (:func:`unit_numbers`) must be among the listing's (over all its names, so the street
   number in the address counts). "Apto 101" vs "Apto 102" scores 0, however alike.
3. The similarity is ``rapidfuzz.fuzz.token_set_ratio`` of the normalised lock name against
   each of the listing's names (internal name, title, address), best one wins.
   Why token_set_ratio: installers name a lock with a *subset* of the listing's words, in
   any order ("Moema 1507" for "Flat Moema 1507", "Barra Bl2 1203" for "Apto Barra 1203 -
   Bloco 2"); token_set_ratio scores a subset 100 and only drops for words that disagree,
   and it still tolerates typos inside words. ``ratio``/``token_sort_ratio`` punish the
   missing words ("moema 1507" vs "flat moema 1507" = 80) and ``WRatio`` caps reordered or
   shorter names at 90-95, so true pairs from the seed would miss the auto-confirm bar.
4. A lock that names no unit at all ("Fechadura Atlântica", "Suite Ferradura") is a weaker
   match for a listing whose own name (its first non-empty name, the internal name) names
   one: minus ``NUMBERLESS_LOCK_PENALTY`` (10). So a building's entrance lock never ties
   with, nor auto-confirms over, a unit's own lock, a building-only lock stays below the
   default auto-confirm bar, and the house "Suíte Ferradura" beats "Apto 307" whose title
   happens to say "Charmoso em Ferradura". (The address's street number does not count:
   every listing has one.)

Assignment and auto-confirm
---------------------------
Pairs are taken greedily, best score first. Equal scores are common (a subset scores 100),
so ties go to the closer wording first: the best ``ratio`` of the sorted distinct words
(token_sort_ratio without repeats) over the listing's names ("Cabana Centro" is closer to
"Cabana Centro" than to "Cabana Pequena Centro", which token_set_ratio scores 100 both
ways); then by listing id and device id, so the result
does not depend on input order; a lock goes to at most one listing. A suggestion is
auto-confirmed only when its score reaches ``auto_confirm_score`` and it beats, by at least
``min_margin``, both the listing's runner-up lock *and* the best other listing that the
same lock fits (a lock that fits three units equally well is ambiguous even when each unit
has no other lock). Candidates scoring below ``min(min_score, auto_confirm_score -
min_margin)`` are discarded: they can neither be suggested nor change an auto-confirm.

Speed
-----
5,000 x 5,000 (three names per listing: 75 M pairs) cannot go through ``token_set_ratio``
one pair at a time (~1.5 us each). Locks with unit numbers are only paired with the
listings that carry all their numbers (an inverted index on number tokens, one set
intersection per distinct set of lock numbers). Locks without numbers are paired with every
name, in memory-bounded blocks. Either way, no pair pays for ``token_set_ratio`` unless it
has to: a pair that shares no word gets ``ratio`` of the sorted distinct words (exactly
what ``token_set_ratio`` returns when the intersection is empty, and far cheaper; via
``process.cdist``/``cpdist``); a pair that shares words (found with a vectorised
membership test on word ids) gets a length-only upper bound of ``token_set_ratio``, and
only pairs whose bound reaches the floor are scored exactly (``process.cpdist``).
Greedy assignment is one Python pass over the candidates that reach the floor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from anyascii import anyascii
from rapidfuzz import fuzz, process

__all__ = [
    "FILLER_WORDS",
    "NUMBERLESS_LOCK_PENALTY",
    "ListingCandidate",
    "LockCandidate",
    "Suggestion",
    "normalise_name",
    "score_pair",
    "suggest_mappings",
    "unit_numbers",
]

#: Words that say what a thing is, not which one it is. "Bloco"/"bl"/"torre" are dropped
#: as words, but the block's number or letter is kept: "Bloco 2 Apto 1203" and "Bl2 1203"
#: both normalise to "2 1203", and the block counts as a unit token, so Bloco 2 never
#: matches Bloco 3. Prepositions/articles common in titles go too ("Casa no Quadrado").
FILLER_WORDS: frozenset[str] = frozenset({
    "apto", "aptos", "apartamento", "ap", "apt", "casa", "suite", "quarto", "unidade",
    "fechadura", "porta", "lock", "door", "ed", "edf", "edif", "edificio",
    "bloco", "bl", "blc", "torre",
    "de", "da", "do", "das", "dos", "e", "em", "no", "na", "nos", "nas", "com", "n", "numero",
})
_BLOCK_WORDS = frozenset({"bloco", "bl", "blc", "torre"})

#: Points taken off when the lock names no unit and the listing's name does.
NUMBERLESS_LOCK_PENALTY = 10.0

# anyascii, precomputed for Latin-1 and Latin Extended-A/B (str.translate runs in C);
# ordinals become spaces so "1º" is the number 1, not a unit "1o".
_TRANSLITERATE = {cp: anyascii(chr(cp)) for cp in range(0x80, 0x250)}
_TRANSLITERATE.update({ord("º"): " ", ord("ª"): " ", ord("°"): " "})
_LETTER_SUFFIX = re.compile(r"(\d)[-/]([a-z])(?![a-z0-9])")  # "101-A" -> "101a"
# a token is a run of letters, or a number with at most one letter glued on:
# "bl2" -> "bl" "2", "ap101" -> "ap" "101", "12andar" -> "12" "andar", "3b" stays a unit
_TOKEN = re.compile(r"\d+(?:[a-z](?![a-z]))?|[a-z]+")

# Work is done in blocks so peak memory stays flat as the portfolio grows.
_DENSE_CELLS = 4_000_000  # float32 cells per (numberless locks x all names) block: 16 MB
_PAIR_BATCH = 1 << 17  # candidate pairs scored at a time


@dataclass(frozen=True)
class ListingCandidate:
    listing_id: str
    names: tuple[str, ...]  # internal name, title, address (any may be "")


@dataclass(frozen=True)
class LockCandidate:
    device_id: str
    name: str


@dataclass(frozen=True)
class Suggestion:
    listing_id: str
    device_id: str | None
    score: float
    runner_up_device_id: str | None
    runner_up_score: float | None
    auto_confirm: bool


# --------------------------------------------------------------------------- normalising


def _analyse(text: str) -> tuple[str, frozenset[str]]:
    """``(normalise_name(text), unit_numbers(text))`` from one pass over the text."""
    if not text:
        return "", frozenset()
    if not text.isascii():
        text = text.translate(_TRANSLITERATE)
        if not text.isascii():
            text = anyascii(text)
    s = text.lower()
    if "-" in s or "/" in s:
        s = _LETTER_SUFFIX.sub(r"\1\2", s)
    words: list[str] = []
    units: set[str] = set()
    block_word = False
    for tok in _TOKEN.findall(s):
        if tok[0].isdigit():  # \d+ or \d+[a-z]: drop leading zeros ("0101" -> "101")
            if tok[0] == "0" and len(tok) > 1:
                digits, suffix = (tok[:-1], tok[-1]) if tok[-1].isalpha() else (tok, "")
                tok = (digits.lstrip("0") or "0") + suffix
            units.add(tok)
        elif block_word and len(tok) == 1:  # "Bloco A", "Torre B"
            units.add(tok)
        block_word = tok in _BLOCK_WORDS
        if tok not in FILLER_WORDS:
            words.append(tok)
    return " ".join(words), frozenset(units)


def normalise_name(text: str) -> str:
    """Comparable form of a listing or lock name.

    Transliterates rather than strips accents (anyascii: "São" -> "sao", "Chalé" ->
    "chale"), lower-cases, turns punctuation into spaces, splits glued prefixes ("Bl2",
    "Ap101") and ordinals ("1º"), drops leading zeros and :data:`FILLER_WORDS`.
    """
    return _analyse(text)[0]


def unit_numbers(text: str) -> frozenset[str]:
    """The unit tokens of a name: numbers with an optional one-letter suffix ("101", "3b",
    "1203"; leading zeros dropped) plus a block/tower letter ("Bloco A" -> "a")."""
    return _analyse(text)[1]


# --------------------------------------------------------------------------- scoring


def score_pair(listing: ListingCandidate, lock: LockCandidate) -> float:
    """The score of one pair, 0-100: the readable reference definition (see module doc).

    ``suggest_mappings`` computes the same value in bulk; use this one to explain a score.
    """
    lock_text = normalise_name(lock.name)
    lock_units = unit_numbers(lock.name)
    if not lock_text:
        return 0.0
    listing_units = frozenset().union(*(unit_numbers(n) for n in listing.names))
    if not lock_units <= listing_units:
        return 0.0
    penalty = NUMBERLESS_LOCK_PENALTY if not lock_units and unit_numbers(_primary_name(listing)) else 0.0
    texts = [t for t in map(normalise_name, listing.names) if t]
    best = max((fuzz.token_set_ratio(lock_text, t) for t in texts), default=0.0)
    return max(0.0, best - penalty)


def _primary_name(listing: ListingCandidate) -> str:
    """The listing's own name: the first non-empty one (normally the internal name)."""
    return next((n for n in listing.names if n and n.strip()), "")


# --------------------------------------------------------------------------- bulk scoring


class _Side:
    """One side's normalised texts with their word structure, for bulk scoring."""

    def __init__(self, texts: list[str], vocab: dict[str, int]) -> None:
        self.texts = np.array(texts, dtype=object)
        words = [sorted(set(t.split())) for t in texts]
        # the sorted distinct words joined: what token_set_ratio compares when nothing is shared
        self.sorted = np.array([" ".join(w) for w in words], dtype=object)
        self.n = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.chars = np.fromiter((sum(map(len, w)) for w in words), dtype=np.int64, count=len(words))
        self.ptr = np.cumsum(self.n) - self.n  # this text's word ids: ids[ptr:ptr+n]
        self.ids = np.fromiter((vocab.setdefault(w, len(vocab)) for ws in words for w in ws),
                               dtype=np.int64, count=int(self.n.sum()))


class _Index:
    """Listings' names (flattened, grouped by listing) and locks' names, on one vocabulary."""

    def __init__(self, listings: Sequence[ListingCandidate], lock_texts: list[str]) -> None:
        texts: list[str] = []
        owner: list[int] = []
        start: list[int] = []
        primary_has_units: list[bool] = []
        self.units: list[frozenset[str]] = []
        for j, listing in enumerate(listings):
            start.append(len(texts))
            seen: set[str] = set()
            units: set[str] = set()
            primary_units: frozenset[str] | None = None
            for raw in listing.names:
                text, raw_units = _analyse(raw or "")
                units |= raw_units
                if primary_units is None and raw and raw.strip():
                    primary_units = raw_units
                if text and text not in seen:
                    seen.add(text)
                    texts.append(text)
                    owner.append(j)
            if not seen:  # keep every listing one column wide; "" scores 0
                texts.append("")
                owner.append(j)
            self.units.append(frozenset(units))
            primary_has_units.append(bool(primary_units))
        vocab: dict[str, int] = {}
        self.names = _Side(texts, vocab)
        self.locks = _Side(lock_texts, vocab)
        self.word_len = np.fromiter(map(len, vocab), dtype=np.int64, count=len(vocab))
        self.n_words = max(1, len(vocab))
        self.owner = np.array(owner, dtype=np.int64)
        self.start = np.array(start, dtype=np.int64)
        self.count = np.diff(np.append(self.start, len(texts)))
        # per name column: does its listing's own name name a unit (see the penalty)
        self.has_units = np.array(primary_has_units, dtype=bool)[self.owner]
        name_cols = np.repeat(np.arange(len(texts)), self.names.n)
        # membership test "does name col contain word w": key col * n_words + w, sorted
        self.name_keys = np.sort(name_cols * self.n_words + self.names.ids)
        # postings "which name cols contain word w": cols_by_word[word_ptr[w]:word_ptr[w + 1]]
        by_word = np.argsort(self.names.ids, kind="stable")
        self.cols_by_word = name_cols[by_word]
        self.word_ptr = np.r_[0, np.cumsum(np.bincount(self.names.ids, minlength=self.n_words))]

    def name_columns(self, listing_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All name columns of the given listings, and how many each listing has."""
        counts = self.count[listing_idx]
        first = np.cumsum(counts) - counts
        return np.repeat(self.start[listing_idx] - first, counts) + np.arange(counts.sum()), counts

    def token_set(self, pl: np.ndarray, pn: np.ndarray, floor: float) -> np.ndarray:
        """``fuzz.token_set_ratio(lock pl, name pn)`` per pair; 0 where it is below ``floor``.

        No shared word: it equals ``ratio`` of the sorted distinct words (cheap). Shared
        words: a length-only upper bound first; only pairs that can reach the floor get the
        exact (expensive) scorer.
        """
        if len(pl) > _PAIR_BATCH:
            return np.concatenate([self.token_set(pl[k:k + _PAIR_BATCH], pn[k:k + _PAIR_BATCH], floor)
                                   for k in range(0, len(pl), _PAIR_BATCH)])
        out = np.zeros(len(pl), dtype=np.float32)
        if not len(pl):
            return out
        shared_n, shared_c = self._shared(pl, pn)
        none = (shared_n == 0) & (self.names.n[pn] > 0) & (self.locks.n[pl] > 0)
        if none.any():
            out[none] = process.cpdist(
                self.locks.sorted[pl[none]], self.names.sorted[pn[none]], scorer=fuzz.ratio,
                score_cutoff=floor, dtype=np.float32, workers=-1,
            )
        some = np.flatnonzero(shared_n > 0)
        if len(some):
            a, b = pl[some], pn[some]
            bound = _token_set_upper_bound(self.locks.n[a], self.locks.chars[a], self.names.n[b],
                                           self.names.chars[b], shared_n[some], shared_c[some])
            need = some[bound >= floor - 1e-6]
            if len(need):
                out[need] = process.cpdist(
                    self.locks.texts[pl[need]], self.names.texts[pn[need]],
                    scorer=fuzz.token_set_ratio, dtype=np.float32, workers=-1,
                )
        out[out < floor] = 0.0
        return out

    def _shared(self, pl: np.ndarray, pn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pair: how many distinct words lock and name share, and their total length."""
        counts = self.locks.n[pl]
        pair = np.repeat(np.arange(len(pl)), counts)
        first = np.cumsum(counts) - counts
        words = self.locks.ids[np.repeat(self.locks.ptr[pl] - first, counts) + np.arange(counts.sum())]
        keys = pn[pair] * self.n_words + words
        if len(self.name_keys):
            at = np.minimum(np.searchsorted(self.name_keys, keys), len(self.name_keys) - 1)
            found = self.name_keys[at] == keys
        else:
            found = np.zeros(len(keys), dtype=bool)
        shared_n = np.bincount(pair, weights=found, minlength=len(pl)).astype(np.int64)
        shared_c = np.bincount(pair, weights=found * self.word_len[words], minlength=len(pl))
        return shared_n, shared_c.astype(np.int64)


def _token_set_upper_bound(n_a, c_a, n_b, c_b, shared_n, shared_c) -> np.ndarray:
    """An upper bound of ``fuzz.token_set_ratio`` from lengths alone (arrays, >= 1 shared word).

    Mirrors rapidfuzz: with intersection S and differences A-B, B-A joined by spaces,
    score = max(ratio(S, S+A-B), ratio(S, S+B-A), 1 - indel(A-B, B-A) / (|S+A-B| + |S+B-A|)),
    100 when one side is contained. The first two depend only on lengths; for the third,
    indel >= the difference of the two lengths.
    """
    sect = shared_c + shared_n - 1
    ab_n, ba_n = n_a - shared_n, n_b - shared_n
    ab = np.where(ab_n > 0, c_a - shared_c + ab_n - 1, 0)
    ba = np.where(ba_n > 0, c_b - shared_c + ba_n - 1, 0)
    sect_ab, sect_ba = sect + 1 + ab, sect + 1 + ba
    r1 = 100.0 * (1.0 - (1 + ab) / (sect + sect_ab))
    r2 = 100.0 * (1.0 - (1 + ba) / (sect + sect_ba))
    r3 = 100.0 * (1.0 - np.abs(ab - ba) / (sect_ab + sect_ba))
    bound = np.maximum(np.maximum(r1, r2), r3)
    return np.where((ab_n == 0) | (ba_n == 0), 100.0, bound)


def _pairs_with_units(lock_idx, lock_units, index: _Index, floor):
    """Locks that name units, against the listings that carry all those units."""
    postings: dict[str, set[int]] = defaultdict(set)
    for j, units in enumerate(index.units):
        for unit in units:
            postings[unit].add(j)
    groups: dict[frozenset[str], list[int]] = defaultdict(list)
    for i in lock_idx:
        groups[lock_units[i]].append(i)
    pair_locks, pair_names = [], []
    for units, members in groups.items():
        sets = sorted((postings.get(u, set()) for u in units), key=len)
        listings = set.intersection(*sets) if sets[0] else set()
        if not listings:
            continue
        cols, _ = index.name_columns(np.fromiter(sorted(listings), dtype=np.int64))
        pair_locks.append(np.repeat(np.array(members, dtype=np.int64), len(cols)))
        pair_names.append(np.tile(cols, len(members)))
    if not pair_locks:
        return _empty_pairs()
    pl, pn = np.concatenate(pair_locks), np.concatenate(pair_names)
    scores = index.token_set(pl, pn, floor).astype(np.float64)
    keep = scores > 0
    return _best_per_listing(pl[keep], index.owner[pn[keep]], scores[keep])


def _pairs_without_units(lock_idx, index: _Index, floor):
    """Locks that name no unit, against every name, in memory-bounded blocks."""
    n_cols = len(index.names.texts)
    block = max(1, _DENSE_CELLS // max(1, n_cols))
    penalty = np.where(index.has_units, NUMBERLESS_LOCK_PENALTY, 0.0).astype(np.float32)
    empty = index.names.n == 0
    out_l, out_j, out_s = [], [], []
    for lo in range(0, len(lock_idx), block):
        chunk = np.asarray(lock_idx[lo:lo + block], dtype=np.int64)
        # no shared word: token_set_ratio == ratio of the sorted distinct words
        dense = process.cdist(
            index.locks.sorted[chunk], index.names.sorted, scorer=fuzz.ratio, score_cutoff=floor,
            dtype=np.float32, workers=-1,
        )
        dense[:, empty] = 0.0
        # pairs sharing a word (from the postings): scored properly, overwriting the above
        rows, cols = [], []
        for r, i in enumerate(chunk.tolist()):
            lo_w = index.locks.ptr[i]
            for w in index.locks.ids[lo_w:lo_w + index.locks.n[i]].tolist():
                hit = index.cols_by_word[index.word_ptr[w]:index.word_ptr[w + 1]]
                rows.append(np.full(len(hit), r, dtype=np.int64))
                cols.append(hit)
        if rows:
            keys = np.unique(np.concatenate(rows) * n_cols + np.concatenate(cols))
            r, c = keys // n_cols, keys % n_cols
            dense[r, c] = index.token_set(chunk[r], c, floor)
        dense -= penalty
        best = np.maximum.reduceat(dense, index.start, axis=1)
        rows_, listing = np.nonzero((best >= floor) & (best > 0))
        out_l.append(chunk[rows_])
        out_j.append(listing.astype(np.int64))
        out_s.append(best[rows_, listing].astype(np.float64))
    if not out_l:
        return _empty_pairs()
    return np.concatenate(out_l), np.concatenate(out_j), np.concatenate(out_s)


def _empty_pairs():
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


def _best_per_listing(locks, listings, scores):
    """Collapse (lock, listing, score) rows to the best score per (lock, listing)."""
    if not len(locks):
        return _empty_pairs()
    order = np.lexsort((-scores, listings, locks))
    locks, listings, scores = locks[order], listings[order], scores[order]
    first = np.ones(len(locks), dtype=bool)
    first[1:] = (locks[1:] != locks[:-1]) | (listings[1:] != listings[:-1])
    return locks[first], listings[first], scores[first]


def _closeness(pl, pj, ps, index: _Index, min_score: float) -> np.ndarray:
    """Tie-breaker per candidate pair: best ``ratio`` of the sorted distinct words over the
    listing's names (token_sort_ratio without repeats): how close the wording is overall.

    Only computed (else 0) where it can change an assignment: for pairs that reach
    ``min_score`` and tie on score with another such pair of the same listing or lock.
    """
    closeness = np.zeros(len(pl), dtype=np.float64)
    eligible = ps >= min_score
    tied = eligible & (_shares_score(pj, ps, eligible) | _shares_score(pl, ps, eligible))
    if not tied.any():
        return closeness
    cols, counts = index.name_columns(pj[tied])
    ratios = process.cpdist(
        index.locks.sorted[np.repeat(pl[tied], counts)], index.names.sorted[cols],
        scorer=fuzz.ratio, dtype=np.float32, workers=-1,
    )
    closeness[tied] = np.maximum.reduceat(ratios, np.cumsum(counts) - counts)
    return closeness


def _shares_score(group, scores, eligible) -> np.ndarray:
    """True where another eligible pair of the same group has exactly the same score."""
    out = np.zeros(len(group), dtype=bool)
    idx = np.flatnonzero(eligible)
    if len(idx) < 2:
        return out
    order = idx[np.lexsort((scores[idx], group[idx]))]
    g, s = group[order], scores[order]
    same = (g[1:] == g[:-1]) & (s[1:] == s[:-1])
    out[order[1:][same]] = True
    out[order[:-1][same]] = True
    return out


def _top_two(group, other_rank, scores, closeness, n_groups):
    """Per group: index (into the pair arrays) of its best and second-best pair, -1 if none."""
    top1 = np.full(n_groups, -1, dtype=np.int64)
    top2 = np.full(n_groups, -1, dtype=np.int64)
    if not len(group):
        return top1, top2
    order = np.lexsort((other_rank, -closeness, -scores, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    top1[g[starts]] = order[starts]
    nxt = starts + 1
    ok = nxt < len(g)
    ok[ok] = g[nxt[ok]] == g[starts[ok]]
    top2[g[starts[ok]]] = order[nxt[ok]]
    return top1, top2


def _ranks(ids: Sequence[str]) -> np.ndarray:
    order = sorted(range(len(ids)), key=lambda k: (ids[k], k))
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks


# --------------------------------------------------------------------------- suggesting


def suggest_mappings(
    listings: Sequence[ListingCandidate],
    locks: Sequence[LockCandidate],
    *,
    auto_confirm_score: float = 92.0,
    min_margin: float = 8.0,
    min_score: float = 60.0,
) -> list[Suggestion]:
    """One :class:`Suggestion` per listing, in input order (see the module doc for the score).

    ``device_id`` is None when no free lock reaches ``min_score`` (``score`` is then 0).
    ``runner_up_*`` is the best *other* lock for the listing, taken or not, when it scores
    at least ``min(min_score, auto_confirm_score - min_margin)``; if the listing's best
    lock went to a better-fitting listing, the runner-up outscores the suggestion.
    ``auto_confirm`` needs ``score >= auto_confirm_score`` and a lead of ``min_margin``
    over both the runner-up lock and the best other listing for the same lock.
    Listing ids and device ids are expected to be unique.
    """
    floor = min(100.0, max(0.0, min(min_score, auto_confirm_score - min_margin)))
    if not locks or not listings:
        return [Suggestion(x.listing_id, None, 0.0, None, None, False) for x in listings]
    analysed = [_analyse(lock.name or "") for lock in locks]
    lock_units = [units for _, units in analysed]
    index = _Index(listings, [text for text, _ in analysed])
    with_units = [i for i, (text, units) in enumerate(analysed) if text and units]
    without_units = [i for i, (text, units) in enumerate(analysed) if text and not units]

    parts = [
        _pairs_with_units(with_units, lock_units, index, floor),
        _pairs_without_units(without_units, index, floor),
    ]
    pl = np.concatenate([p[0] for p in parts])
    pj = np.concatenate([p[1] for p in parts])
    ps = np.round(np.concatenate([p[2] for p in parts]), 2)

    listing_rank = _ranks([x.listing_id for x in listings])
    lock_rank = _ranks([x.device_id for x in locks])

    # greedy 1:1, best score first; ties by listing id, then device id
    chosen = np.full(len(listings), -1, dtype=np.int64)  # index into the pair arrays
    pc = _closeness(pl, pj, ps, index, min_score)
    order = np.lexsort((lock_rank[pl], listing_rank[pj], -pc, -ps))
    taken: set[str] = set()
    remaining = min(len(listings), len(locks))
    for k, lock_i, listing_j, score in zip(order.tolist(), pl[order].tolist(),
                                           pj[order].tolist(), ps[order].tolist()):
        if score < min_score or remaining == 0:
            break
        device = locks[lock_i].device_id
        if chosen[listing_j] >= 0 or device in taken:
            continue
        chosen[listing_j] = k
        taken.add(device)
        remaining -= 1

    by_listing = _top_two(pj, lock_rank[pl], ps, pc, len(listings))
    by_lock = _top_two(pl, listing_rank[pj], ps, pc, len(locks))

    result = []
    for j, listing in enumerate(listings):
        k = int(chosen[j])
        first, second = int(by_listing[0][j]), int(by_listing[1][j])
        ru = second if k >= 0 and first == k else first
        ru_device = locks[int(pl[ru])].device_id if ru >= 0 else None
        ru_score = float(ps[ru]) if ru >= 0 else None
        if k < 0:
            result.append(Suggestion(listing.listing_id, None, 0.0, ru_device, ru_score, False))
            continue
        score = float(ps[k])
        lock_i = int(pl[k])
        l1, l2 = int(by_lock[0][lock_i]), int(by_lock[1][lock_i])
        rival = l2 if l1 == k else l1
        rival_score = float(ps[rival]) if rival >= 0 else 0.0
        auto = (
            score >= auto_confirm_score
            and score - (ru_score or 0.0) >= min_margin
            and score - rival_score >= min_margin
        )
        result.append(Suggestion(listing.listing_id, locks[lock_i].device_id, score,
                                 ru_device, ru_score, auto))
    return result
