"""Listing <-> lock mapping: fuzzy suggestions an admin confirms (see ``matching``)."""

from lock_pipeline.mapping.matching import (
    ListingCandidate,
    LockCandidate,
    Suggestion,
    normalise_name,
    score_pair,
    suggest_mappings,
    unit_numbers,
)

__all__ = [
    "ListingCandidate",
    "LockCandidate",
    "Suggestion",
    "normalise_name",
    "score_pair",
    "suggest_mappings",
    "unit_numbers",
]
