"""The matrices every CF model starts from (part of :mod:`tasks.cf`).

``R`` is the training rating CSR in the shared index (rows ``user_idx``, columns ``item_idx``,
data = rating, float32, sorted indices). ``X`` keeps the pairs with ``r_ui >= collab.min_rating``
(values still the rating); the binary matrix is ``X`` with every kept value set to 1. Models are
fitted on the *active* part only: the users and items with at least one kept pair (the others are
"unknown" and score 0), so a catalogue movie nobody rated never changes a fit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.profile import CollabSection

__all__ = [
    "ActiveParts",
    "active_parts",
    "as_rating_csr",
    "binary",
    "interactions",
    "interactions_fingerprint",
    "rating_matrix",
]


def _positions(sorted_ids: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    """Positions of ``values`` in ``sorted_ids`` (int64); InputDataError naming ``what`` if absent."""
    values = np.asarray(values, dtype=np.int64)
    n = len(sorted_ids)
    pos = np.searchsorted(sorted_ids, values)
    ok = (pos < n) & (sorted_ids[np.minimum(pos, max(n - 1, 0))] == values) if n else pos < 0
    if not ok.all():
        bad = np.unique(values[~ok])
        raise InputDataError(
            f"{int((~ok).sum())} training rows have a {what} that is not in the index "
            f"({len(bad)} distinct, e.g. {bad[:5].tolist()}): the split's tables and the catalogue "
            "disagree; re-run ingest and split together."
        )
    return pos.astype(np.int64)


def _check_sorted_ids(ids: np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        raise InputDataError(f"{what} must be sorted and unique (the shared index convention).")
    return ids.astype(np.int32)


def rating_matrix(train: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> sp.csr_matrix:
    """The training rating CSR ``R`` (n_users x n_items, float32 data = rating, sorted indices).

    ``user_ids`` / ``item_ids`` are the shared index (sorted unique). A (user, movie) pair given
    twice is refused: the split keeps one rating per pair, and summing two would double a weight.

    >>> train = pd.DataFrame({"user_id": [7, 7, 9], "movie_id": [20, 10, 20], "rating": [4.0, 1.0, 3.5]})
    >>> rating_matrix(train, np.array([7, 9]), np.array([10, 20, 30])).toarray().tolist()
    [[1.0, 4.0, 0.0], [0.0, 3.5, 0.0]]
    """
    user_ids = _check_sorted_ids(user_ids, "user ids")
    item_ids = _check_sorted_ids(item_ids, "item ids")
    u = _positions(user_ids, train[Col.USER].to_numpy(), f"train {Col.USER}")
    i = _positions(item_ids, train[Col.ITEM].to_numpy(), f"train {Col.ITEM}")
    data = train[Col.RATING].to_numpy(np.float32)
    if not np.isfinite(data).all():
        raise InputDataError(f"train has missing or infinite {Col.RATING} values; fix the split.")
    matrix = sp.csr_matrix((data, (u, i)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    if matrix.nnz != len(train):  # the COO -> CSR conversion summed duplicate pairs
        raise InputDataError(
            f"train has {len(train) - matrix.nnz} duplicate ({Col.USER}, {Col.ITEM}) pair(s); the "
            "collaborative models need one rating per pair (the split stage guarantees it)."
        )
    matrix.sort_indices()
    return matrix


def as_rating_csr(
    ratings: sp.spmatrix | sp.sparray, shape: tuple[int, int] | None = None
) -> sp.csr_matrix:
    """``ratings`` as a canonical float32 CSR with sorted indices (copied only when needed)."""
    matrix = ratings if isinstance(ratings, sp.csr_matrix) else sp.csr_matrix(ratings)
    if matrix.dtype != np.float32:
        matrix = matrix.astype(np.float32)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()  # also sorts the indices
    if shape is not None and matrix.shape != tuple(shape):
        raise InputDataError(
            f"the rating matrix is {matrix.shape[0]:,} x {matrix.shape[1]:,} but the index has "
            f"{shape[0]:,} users x {shape[1]:,} items: build it with tasks.cf.rating_matrix over "
            "the same user / item ids."
        )
    if not np.isfinite(matrix.data).all():
        raise InputDataError("the rating matrix holds missing or infinite ratings; fix the split.")
    return matrix


def interactions(ratings: sp.csr_matrix, cfg: CollabSection) -> sp.csr_matrix:
    """The fitted interaction matrix ``X``: the pairs of ``R`` with ``r_ui >= cfg.min_rating``.

    Values stay the rating (callers derive the binary matrix or confidence weights from them);
    the shape is the shared index's. ``min_rating = 0`` keeps every stored rating.

    >>> r = sp.csr_matrix(np.array([[1.0, 4.0], [2.5, 0.0]], np.float32))
    >>> interactions(r, CollabSection(min_rating=2.0)).toarray().tolist()
    [[0.0, 4.0], [2.5, 0.0]]
    """
    matrix = as_rating_csr(ratings)
    keep = matrix.data >= np.float32(cfg.min_rating)
    if keep.all():
        return matrix.copy()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[keep]
    counts = np.bincount(rows, minlength=matrix.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(matrix.indptr.dtype)
    return sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape, dtype=np.float32
    )


def binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same sparsity pattern with every stored value 1 (float32)."""
    out = sp.csr_matrix(
        (np.ones(matrix.nnz, np.float32), matrix.indices.copy(), matrix.indptr.copy()),
        shape=matrix.shape,
    )
    out.has_sorted_indices = matrix.has_sorted_indices
    return out


def interactions_fingerprint(matrix: sp.csr_matrix) -> str:
    """sha256 of the kept pairs' pattern (shape, indptr, indices): which user has which item."""
    digest = hashlib.sha256()
    digest.update(np.asarray(matrix.shape, np.int64).tobytes())
    digest.update(np.asarray(matrix.indptr, np.int64).tobytes())
    digest.update(np.asarray(matrix.indices, np.int64).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ActiveParts:
    """``X`` restricted to its active users and items, and the maps back to the shared index."""

    user_known: np.ndarray  # bool (n_users,)
    item_known: np.ndarray  # bool (n_items,)
    users: np.ndarray  # int64 user_idx of the active users, sorted
    items: np.ndarray  # int64 item_idx of the active items, sorted
    matrix: sp.csr_matrix  # (len(users) x len(items)), X's values


def active_parts(matrix: sp.csr_matrix) -> ActiveParts:
    """Split ``X`` into its active block and the known masks (rows / columns with >= 1 pair)."""
    user_known = np.diff(matrix.indptr) > 0
    item_known = np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0
    users = np.flatnonzero(user_known)
    items = np.flatnonzero(item_known)
    block = matrix[users] if len(users) < matrix.shape[0] else matrix
    if len(items) < matrix.shape[1]:
        block = block[:, items]
    block = sp.csr_matrix(block, dtype=np.float32)
    block.sort_indices()
    return ActiveParts(user_known, item_known, users, items, block)
