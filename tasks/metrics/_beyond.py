"""Beyond accuracy: user and catalog coverage, novelty and intra-list diversity at K.

Per user (so they are bootstrapped like the ranking metrics): user coverage, novelty, intra-list
diversity; one number per list set: catalog coverage (:func:`catalog_coverage`; its rows in the
long table come from :func:`tasks.metrics.metrics_long_table`). All K of a metric come from one
pass over the lists (prefix sums over the ranks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from tasks.metrics._checks import (
    _CELLS_PER_CHUNK,
    _check_index_range,
    _check_item_bound,
    _check_k,
    _check_ks,
    _check_recs,
    _row_chunks,
    _safe_divide,
)
from tasks.metrics._ranking import DEFAULT_KS

__all__ = [
    "BEYOND_ACCURACY_METRICS",
    "beyond_accuracy_metrics",
    "catalog_coverage",
    "intra_list_diversity",
    "item_user_share",
    "novelty",
    "user_coverage",
]


#: Names of the beyond-accuracy metrics, in report order.
BEYOND_ACCURACY_METRICS: tuple[str, ...] = (
    "user_coverage",
    "catalog_coverage",
    "novelty",
    "intra_list_diversity",
)


def user_coverage(recs: np.ndarray, k: int) -> np.ndarray:
    """Per-user indicator: 1 if the user got a full list of K items, else 0.

    Its mean over evaluated users is the user coverage; kept per user so it is bootstrapped
    like every other metric.

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> user_coverage(recs, k=3).tolist(), user_coverage(recs, k=2).tolist()
    ([1.0, 0.0, 0.0], [1.0, 1.0, 0.0])
    """
    recs = _check_recs(recs)
    _check_k(k, recs.shape[1], "recs")
    return _full_list(recs, k)


def catalog_coverage(recs: np.ndarray, k: int, n_items: int) -> float:
    """Catalog coverage@K = |union over users of L_u@K| / n_items (one number, not per user).

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> round(catalog_coverage(recs, k=3, n_items=6), 4), catalog_coverage(recs, k=1, n_items=6)
    (0.8333, 0.3333333333333333)
    """
    recs = _check_recs(recs, n_items=n_items)
    _check_k(k, recs.shape[1], "recs")
    if n_items <= 0:
        raise ValueError(f"catalog_coverage: n_items must be positive, got {n_items}")
    return _distinct_share(recs, k, int(n_items))


def item_user_share(
    user_idx: Sequence[int] | np.ndarray,
    item_idx: Sequence[int] | np.ndarray,
    n_items: int,
    n_users: int | None = None,
) -> np.ndarray:
    """Share of training users who rated each item: |{u : (u, i) in train}| / n_users.

    From the training (user index, item index) pairs; a user who rated an item twice counts
    once. ``n_users`` defaults to the number of distinct users in ``user_idx``; pass the same
    number to :func:`novelty` as ``n_train_users``.

    >>> item_user_share([0, 1, 3, 2, 0, 1, 2, 3, 0, 2, 3], [0, 0, 1, 2, 4, 4, 4, 4, 4, 5, 5],
    ...                 n_items=6).tolist()
    [0.5, 0.25, 0.25, 0.0, 1.0, 0.5]
    """
    users = np.asarray(user_idx, dtype=np.int64).ravel()
    items = np.asarray(item_idx, dtype=np.int64).ravel()
    if users.shape != items.shape:
        raise ValueError(
            f"item_user_share: user_idx has {users.size} entries but item_idx has {items.size}"
        )
    _check_index_range(items, n_items, "item_idx", "n_items")
    if users.size and users.min() < 0:
        raise ValueError("item_user_share: user_idx holds a negative index")
    # bincount, not np.unique: np.unique hashes in numpy 2.4 and takes ~40 s on 25M ids here
    n_distinct_users = int(np.count_nonzero(np.bincount(users))) if users.size else 0
    if n_users is None:
        n_users = n_distinct_users
    if n_users <= 0 or n_users < n_distinct_users:
        raise ValueError(
            f"item_user_share: n_users={n_users} but user_idx holds {n_distinct_users} "
            "distinct users"
        )
    if users.size == 0:
        return np.zeros(int(n_items))
    n_user_rows = int(users.max()) + 1
    by_item = sp.csr_matrix(
        (np.ones(users.size, dtype=bool), (items, users)), shape=(int(n_items), n_user_rows)
    )
    by_item.sum_duplicates()
    return np.diff(by_item.indptr) / float(n_users)


def novelty(
    recs: np.ndarray, k: int, item_user_share: np.ndarray, n_train_users: int
) -> np.ndarray:
    """Novelty@K per user = mean over the list's top-K items of -log2(p_i).

    p_i = share of training users who rated item i (:func:`item_user_share`). An item no
    training user rated (p_i = 0) gets p_i = 1 / n_train_users, as if one user had rated it,
    so its novelty is the largest value, log2(n_train_users). A user without a list scores 0
    (DESIGN.md: averages over all evaluated users). Units: bits; with shares from
    ``item_user_share(..., n_users=n_train_users)`` (every p_i is 0 or >= 1 / n_train_users)
    novelty lies in [0, log2(n_train_users)]: not bounded by 1.

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> share = np.array([0.5, 0.25, 0.25, 0.0, 1.0, 0.5])
    >>> novelty(recs, k=2, item_user_share=share, n_train_users=4).tolist()
    [1.5, 1.0, 0.0]
    """
    recs = _check_recs(recs)
    _check_k(k, recs.shape[1], "recs")
    return _novelty_for_ks(recs, [int(k)], item_user_share, n_train_users)[int(k)]


def intra_list_diversity(recs: np.ndarray, k: int, embeddings: np.ndarray) -> np.ndarray:
    """ILD@K per user = 1 - mean over pairs i < j of the top-K items of cos(e_i, e_j).

    Embeddings are L2-normalised here (an all-zero row has cosine 0 with everything). Lists
    with fewer than 2 items have no pair and score 0 (like a missing list). The range is
    [0, 2] in general and [0, 1] for non-negative embeddings; tiny rounding is clipped.

    Computed without forming pairs: for unit vectors v_1..v_m,
    sum_{i != j} v_i . v_j = ||sum_i v_i||^2 - sum_i ||v_i||^2, so
    mean pairwise cosine = (||S||^2 - m_nz) / (m (m - 1)), S = sum of the normalised vectors,
    m = list length, m_nz = items with a non-zero embedding. S is a sparse (users x items)
    matrix of inverse norms times the embedding matrix, in user chunks: O(n K d) work instead
    of O(n K^2 d), and no (users x K x d) array.

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> emb = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [2, 0], [0, 1]], dtype=np.float32)
    >>> intra_list_diversity(recs, k=2, embeddings=emb).tolist()
    [1.0, 0.0, 0.0]
    >>> np.round(intra_list_diversity(recs, k=3, embeddings=emb), 4).tolist()
    [0.5286, 0.0, 0.0]
    """
    recs = _check_recs(recs)
    _check_k(k, recs.shape[1], "recs")
    return _diversity_for_ks(recs, [int(k)], embeddings)[int(k)]


def beyond_accuracy_metrics(
    recs: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    item_user_share: np.ndarray | None = None,
    n_train_users: int | None = None,
    embeddings: np.ndarray | None = None,
) -> dict[tuple[str, int], np.ndarray]:
    """Per-user beyond-accuracy metrics at every K: {(metric, k): float64 array (n_users,)}.

    Always "user_coverage" (:func:`user_coverage`); "novelty" (:func:`novelty`) when
    ``item_user_share`` and ``n_train_users`` are given; "intra_list_diversity"
    (:func:`intra_list_diversity`, all K from one pass) when ``embeddings`` is given. Catalog
    coverage is not per user: see :func:`catalog_coverage` and :func:`metrics_long_table`.

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> emb = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [2, 0], [0, 1]], dtype=np.float32)
    >>> out = beyond_accuracy_metrics(recs, ks=(2,), embeddings=emb)
    >>> {key: v.tolist() for key, v in out.items()}
    {('user_coverage', 2): [1.0, 1.0, 0.0], ('intra_list_diversity', 2): [1.0, 0.0, 0.0]}
    """
    ks = _check_ks(ks)
    recs = _check_recs(recs)  # once; the helpers below trust it
    _check_k(ks[-1], recs.shape[1], "recs")
    if (item_user_share is None) != (n_train_users is None):
        raise ValueError(
            "beyond_accuracy_metrics: novelty needs both item_user_share and n_train_users"
        )
    out: dict[tuple[str, int], np.ndarray] = {}
    for k in ks:
        out["user_coverage", k] = _full_list(recs, k)
    if item_user_share is not None:
        by_k = _novelty_for_ks(recs, ks, item_user_share, int(n_train_users))
        for k in ks:
            out["novelty", k] = by_k[k]
    if embeddings is not None:
        diversity = _diversity_for_ks(recs, ks, embeddings)
        for k in ks:
            out["intra_list_diversity", k] = diversity[k]
    return out


def _distinct_share(recs: np.ndarray, k: int, n_items: int) -> float:
    top = recs[:, :k]
    seen = np.zeros(n_items, dtype=bool)
    seen[top[top >= 0]] = True
    return float(seen.sum()) / float(n_items)


def _full_list(recs: np.ndarray, k: int) -> np.ndarray:
    return (recs[:, :k] >= 0).all(axis=1).astype(np.float64)


def _novelty_for_ks(
    recs: np.ndarray, ks: list[int], item_user_share: np.ndarray, n_train_users: int
) -> dict[int, np.ndarray]:
    """Novelty at several K (recs and ks already checked): prefix sums of item novelty."""
    share = np.asarray(item_user_share, dtype=np.float64).ravel()
    _check_item_bound(recs, share.size, "item_user_share")
    if n_train_users < 1:
        raise ValueError(f"novelty: n_train_users must be >= 1, got {n_train_users}")
    if not np.all(np.isfinite(share)) or share.min(initial=0.0) < 0 or share.max(initial=0.0) > 1:
        raise ValueError("novelty: item_user_share must hold shares in [0, 1]")
    item_novelty = -np.log2(np.where(share > 0, share, 1.0 / n_train_users))
    out = {k: np.zeros(recs.shape[0]) for k in ks}
    for start, stop in _row_chunks(recs.shape[0], ks[-1]):
        top = recs[start:stop, : ks[-1]]
        valid = top >= 0
        summed = np.cumsum(np.where(valid, item_novelty[np.where(valid, top, 0)], 0.0), axis=1)
        length = np.cumsum(valid, axis=1)
        for k in ks:
            out[k][start:stop] = _safe_divide(summed[:, k - 1], length[:, k - 1])
    return out


def _diversity_for_ks(
    recs: np.ndarray, ks: list[int], embeddings: np.ndarray
) -> dict[int, np.ndarray]:
    """ILD at several K in one pass (recs and ks already checked): running sums of the
    normalised vectors, rank segment by rank segment."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n_items, dim), got shape {emb.shape}")
    if emb.dtype not in (np.float32, np.float64):  # what scipy's sparse product supports
        emb = emb.astype(np.float32)
    _check_item_bound(recs, emb.shape[0], "embeddings")
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb, dtype=np.float64))
    if not np.all(np.isfinite(norms)):
        bad = int(np.flatnonzero(~np.isfinite(norms))[0])
        raise ValueError(f"embeddings row {bad} holds NaN or Inf")
    inv_norm = np.zeros(emb.shape[0], dtype=emb.dtype)
    np.divide(1.0, norms, out=inv_norm, where=norms > 0, casting="unsafe")
    nonzero = norms > 0

    n_users = recs.shape[0]
    out = {k: np.zeros(n_users) for k in ks}
    rows_per_chunk = max(1, _CELLS_PER_CHUNK // max(1, emb.shape[1]))  # bounds `summed`
    bounds = list(zip([0, *ks[:-1]], ks, strict=True))
    for start in range(0, n_users, rows_per_chunk):
        block = recs[start : start + rows_per_chunk, : ks[-1]]
        n_block = block.shape[0]
        summed = np.zeros((n_block, emb.shape[1]), dtype=emb.dtype)
        length = np.zeros(n_block, dtype=np.int64)
        n_nonzero = np.zeros(n_block, dtype=np.int64)
        for lo, hi in bounds:
            segment = block[:, lo:hi]
            valid = segment >= 0
            per_row = valid.sum(axis=1)
            items = segment[valid]  # row-major: each row's items stay together
            indptr = np.concatenate([[0], np.cumsum(per_row)])
            weights = sp.csr_matrix((inv_norm[items], items, indptr), shape=(n_block, emb.shape[0]))
            summed += weights @ emb
            length += per_row
            n_nonzero += (valid & nonzero[np.where(valid, segment, 0)]).sum(axis=1)
            squared = np.einsum("ij,ij->i", summed, summed, dtype=np.float64)
            pairs = length * (length - 1.0)
            mean_cos = _safe_divide(squared - n_nonzero, pairs)
            out[hi][start : start + n_block] = np.where(
                length >= 2, np.clip(1.0 - mean_cos, 0.0, 2.0), 0.0
            )
    return out
