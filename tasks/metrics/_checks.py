"""Input checks of the metrics and the helpers every metric family shares.

``recs`` (2-D integer item indices, -1 only as trailing padding, distinct items per row),
``relevant`` (a canonical bool CSR), ``hits``, cut-offs ``k`` and per-user arrays are checked here,
with messages that say what to pass instead. :data:`_CELLS_PER_CHUNK` bounds the work arrays of
the chunked paths (hit lookup, ranking prefix sums, novelty, diversity sums, bootstrap draws).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

# Work arrays are built for this many (user, rank) cells at a time (hit lookup, ranking prefix
# sums, novelty, diversity sums) and the bootstrap draws this many (resample, user) indices per
# chunk: at most ~180 MB of temporaries (ranking prefix sums), mostly far less.
_CELLS_PER_CHUNK = 4_000_000


def _check_index_range(values: np.ndarray, bound: int, name: str, bound_name: str) -> None:
    if values.size and (values.min() < 0 or values.max() >= bound):
        raise ValueError(
            f"{name} must hold indices in [0, {bound_name}={bound}); got values from "
            f"{values.min()} to {values.max()}: map raw ids to 0-based positions first"
        )


def _as_relevance(relevant: Any) -> sp.csr_matrix:
    """Canonical CSR (sorted, no duplicates, no stored zeros); copies only when it must."""
    if not sp.issparse(relevant):
        raise TypeError(
            f"relevant must be a scipy.sparse matrix (n_users x n_items), got "
            f"{type(relevant).__name__}: build it with relevance_matrix(user_idx, item_idx, ...)"
        )
    rel = sp.csr_matrix(relevant)
    if not rel.has_canonical_format or (rel.nnz and not rel.data.all()):
        rel = rel.copy()
        rel.sum_duplicates()
        rel.eliminate_zeros()
    return rel


def _check_recs_and_relevance(recs: Any, relevant: Any) -> tuple[np.ndarray, sp.csr_matrix]:
    rel = _as_relevance(relevant)
    arr = _check_recs(recs, n_items=rel.shape[1])
    if rel.shape[0] != arr.shape[0]:
        raise ValueError(
            f"recs has {arr.shape[0]} user rows but relevant has {rel.shape[0]}; "
            "both must list the same users in the same order"
        )
    return arr, rel


def _row_chunks(n_rows: int, width: int) -> list[tuple[int, int]]:
    """(start, stop) user ranges of about _CELLS_PER_CHUNK (user, rank) cells each."""
    step = max(1, _CELLS_PER_CHUNK // max(1, width))
    return [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _check_recs(recs: Any, n_items: int | None = None) -> np.ndarray:
    """A 2-D integer array of item indices, -1 only as trailing padding, no repeats per row."""
    arr = np.asarray(recs)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"recs must be a 2-D integer array (n_users, K_max) padded with -1, got "
            f"shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.size == 0:
        return arr
    if arr.min() < -1:
        raise ValueError("recs holds a negative item index other than the padding value -1")
    if n_items is not None:
        _check_item_bound(arr, n_items, "the catalog")
    valid = arr >= 0
    gaps = valid[:, 1:] & ~valid[:, :-1]
    if gaps.any():
        user = int(np.flatnonzero(gaps.any(axis=1))[0])
        raise ValueError(
            f"recs row {user} has an item after a -1: padding must be trailing "
            f"(row: {arr[user].tolist()})"
        )
    ordered = np.sort(arr, axis=1)
    repeats = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if repeats.any():
        user = int(np.flatnonzero(repeats.any(axis=1))[0])
        raise ValueError(
            f"recs row {user} recommends the same item twice (row: {arr[user].tolist()}): "
            "a list must hold distinct items"
        )
    return arr


def _check_item_bound(recs: np.ndarray, n_items: int, what: str) -> None:
    if recs.size and recs.max() >= n_items:
        raise ValueError(
            f"recs holds item index {recs.max()} but {what} has n_items={n_items}; recs and "
            "the relevance/share/embedding arrays must use the same item positions"
        )


def _check_k(k: int, width: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > width:
        raise ValueError(
            f"k={k} but {what} has only {width} columns: produce lists of at least K items "
            "(pad shorter lists with -1)"
        )


def _check_ks(ks: Iterable[int]) -> list[int]:
    values = sorted({int(k) for k in ks})
    if not values or values[0] < 1:
        raise ValueError(f"ks must be positive integers, got {list(ks)!r}")
    return values


def _check_hits(hits: Any, n_relevant: Any, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    arr = np.asarray(hits)
    if arr.ndim != 2:
        raise ValueError(f"hits must be a 2-D array (n_users, K_max), got shape {arr.shape}")
    arr = arr.astype(bool, copy=False)
    _check_k(k, arr.shape[1], "hits")
    if n_relevant is None:
        return arr, None
    n_rel = np.asarray(n_relevant, dtype=np.int64).ravel()
    if n_rel.size != arr.shape[0]:
        raise ValueError(
            f"n_relevant has {n_rel.size} entries but hits has {arr.shape[0]} user rows"
        )
    return arr, n_rel


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (users with nothing to find)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _as_per_user(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D per-user array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty: there are no users to summarise")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds NaN or Inf: per-user metrics must be finite")
    return arr


def _stack_per_user(per_user: Mapping[Any, np.ndarray], what: str) -> np.ndarray:
    """Per-user arrays side by side as a float64 (n_users, n_metrics) matrix."""
    columns = [_as_per_user(values, f"{what}: {key!r}") for key, values in per_user.items()]
    if not columns:
        raise ValueError(f"{what}: no per-user metrics given")
    sizes = {col.size for col in columns}
    if len(sizes) != 1:
        raise ValueError(f"{what}: per-user arrays have different lengths {sorted(sizes)}")
    return np.column_stack(columns)
