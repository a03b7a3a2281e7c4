"""Hard filters and the bounded relaxation ladder (part of :mod:`tasks.ranking`).

Three nested allowed-item sets: level 0 = safe AND genre match AND provider match, level 1 = safe
AND genre match (providers dropped), level 2 = safe (genres widened to all). "safe" = the item has
metadata (see :class:`tasks.ranking.RecommenderArrays`). Genres and providers match with OR
semantics. With ``e_L(u)`` = allowed items at level L that u may still be shown (not excluded),
the step is the first of 0, 1, 2 whose ``e_L(u) >= min_results`` - three counts compared at once,
never a loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from tasks.errors import UsageError

if TYPE_CHECKING:
    from tasks.ranking._arrays import RecommenderArrays

__all__ = [
    "STEP_NAMES",
    "apply_filters",
    "filter_levels",
    "relaxation_steps",
    "resolve_names",
    "row_coords",
]

#: Relaxation steps and what they mean (manifest keys).
STEP_NAMES = {0: "none", 1: "providers_dropped", 2: "genres_widened"}


def resolve_names(
    requested: Sequence[str] | None, names: Sequence[str], what: str
) -> np.ndarray | None:
    """Column positions of requested genre / provider names (case-insensitive); None when no request.

    An unknown name raises :class:`UsageError` listing the valid names.
    """
    if not requested:
        return None
    lookup = {n.casefold(): j for j, n in enumerate(names)}
    unknown = [r for r in requested if r.casefold() not in lookup]
    if unknown:
        valid = ", ".join(names) if names else "(none in this catalogue)"
        raise UsageError(f"unknown {what} {unknown}: valid {what}s are: {valid}.")
    return np.array(sorted({lookup[r.casefold()] for r in requested}), dtype=np.int64)


def filter_levels(
    arrays: RecommenderArrays,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
) -> np.ndarray:
    """Allowed items per relaxation level, bool (3, n_items): [all filters, no providers, no genres].

    Genre and provider requests use OR semantics; every level requires item metadata (safety).
    """
    safe = arrays.has_metadata
    g = resolve_names(genres, arrays.genre_names, "genre")
    p = resolve_names(providers, arrays.provider_names, "provider")
    g_ok = arrays.genre_matrix[:, g].any(axis=1) if g is not None else np.ones(arrays.n_items, bool)
    p_ok = (
        arrays.provider_matrix[:, p].any(axis=1) if p is not None else np.ones(arrays.n_items, bool)
    )
    return np.stack([safe & g_ok & p_ok, safe & g_ok, safe])


def row_coords(
    matrix: sp.csr_matrix, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(local row, column, value) of the stored entries of rows ``users`` of a CSR matrix
    (row-major, columns sorted within a row): e.g. the training ratings of a batch of users."""
    indptr = matrix.indptr
    starts, ends = indptr[users], indptr[users + 1]
    counts = (ends - starts).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows = np.repeat(np.arange(len(users)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    flat = np.repeat(starts, counts) + offsets
    return rows, matrix.indices[flat].astype(np.int64), matrix.data[flat]


def relaxation_steps(
    allowed: np.ndarray,
    seen_rows: np.ndarray,
    seen_items: np.ndarray,
    n_users: int,
    min_results: int,
    *,
    genres_active: bool,
    providers_active: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The relaxation step of each user (int8, 0/1/2) and the allowed unseen counts (n_users, 3).

    ``e_L`` = allowed items at level L minus the user's excluded ones among them (``seen_rows`` /
    ``seen_items``: the batch's excluded pairs, :func:`row_coords` of ``arrays.exclude``). The step is the first
    level whose ``e_L >= min_results``; when none is, the last level that changes something (2 with
    a genre filter, else 1 with a provider filter, else 0). A fixed two-step ladder, no loop.
    """
    totals = allowed.sum(axis=1).astype(np.int64)
    counts = np.empty((n_users, 3), dtype=np.int64)
    for level in range(3):  # three fixed levels, each one vectorised over users
        seen_allowed = np.bincount(seen_rows, weights=allowed[level][seen_items], minlength=n_users)
        counts[:, level] = totals[level] - seen_allowed.astype(np.int64)
    if not (genres_active or providers_active):
        return np.zeros(n_users, np.int8), counts
    enough = counts >= min_results
    last = 2 if genres_active else 1
    step = np.where(enough[:, 0], 0, np.where(enough[:, 1] | (last == 1), 1, 2))
    return step.astype(np.int8), counts


def apply_filters(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    pool_idx: np.ndarray,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    min_results: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hard filters on a padded pool: (keep mask (b, c), relaxation step (b,)).

    Keeps an entry when it is a real id (>= 0, < n_items), allowed at the user's step (see
    :func:`relaxation_steps`) and not excluded (seen in training, or the dropped history of a
    simulated cold user). ``min_results`` defaults to the pool width.
    """
    users = np.asarray(user_idx, dtype=np.int64)
    pool = np.asarray(pool_idx)
    allowed = filter_levels(arrays, genres, providers)
    rows, items, _ = row_coords(arrays.exclude, users)
    steps, _ = relaxation_steps(
        allowed,
        rows,
        items,
        len(users),
        pool.shape[1] if min_results is None else min_results,
        genres_active=bool(genres),
        providers_active=bool(providers),
    )
    valid = (pool >= 0) & (pool < arrays.n_items)
    safe_pool = np.where(valid, pool, 0)
    keep = valid & allowed[steps[:, None], safe_pool]
    if len(rows):
        keys = rows * arrays.n_items + items  # sorted: rows ascending, items sorted within a row
        pool_keys = np.arange(len(users))[:, None] * arrays.n_items + safe_pool
        pos = np.minimum(np.searchsorted(keys, pool_keys), len(keys) - 1)
        keep &= keys[pos] != pool_keys
    return keep, steps
