"""Ranking accuracy: Recall, Precision, MAP, NDCG, MRR and HitRate at K, per user.

Data layout:

- ``recs``: integer array (n_users, K_max) of item indices 0..n_items-1, best first, padded
  at the end with -1 where a list is shorter than K_max (a user without a list: all -1).
  Within a row items are distinct and padding is trailing (checked: a duplicate would count a
  hit twice and a gap would make ranks ambiguous).
- ``relevant``: a ``scipy.sparse`` CSR matrix (n_users x n_items, bool), row u = R_u, built
  from (user index, item index) pairs by :func:`relevance_matrix`.
- :func:`hit_matrix` turns the two into ``hits``: bool (n_users, K_max), hits[u, r-1] = the
  item at rank r of u's list is relevant. The per-user metric functions take ``hits``,
  ``n_relevant`` (|R_u| per user) and an explicit ``k``; :func:`ranking_metrics` is the one
  entry point that computes every (metric, k) at once from shared prefix sums.

The three-user example used by the doctests: n_items = 6,
``recs = [[0, 1, 2], [3, 4, -1], [-1, -1, -1]]`` (user 2 gets no list) and
R_0 = {0, 2, 5} (|R| = 3 > K = 2), R_1 = {4}, R_2 = {1}:

>>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
>>> relevant = relevance_matrix([0, 0, 0, 1, 2], [0, 2, 5, 4, 1], n_users=3, n_items=6)
>>> hit_matrix(recs, relevant).astype(int).tolist()
[[1, 0, 1], [0, 1, 0], [0, 0, 0]]
>>> {name: np.round(v, 4).tolist() for (name, k), v in ranking_metrics(recs, relevant, ks=(2,)).items()}
... # doctest: +NORMALIZE_WHITESPACE
{'recall': [0.3333, 1.0, 0.0], 'precision': [0.5, 0.5, 0.0], 'map': [0.5, 0.5, 0.0],
 'ndcg': [0.6131, 0.6309, 0.0], 'mrr': [1.0, 0.5, 0.0], 'hit_rate': [1.0, 1.0, 0.0]}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from tasks.metrics._checks import (
    _as_relevance,
    _check_hits,
    _check_index_range,
    _check_k,
    _check_ks,
    _check_recs_and_relevance,
    _row_chunks,
    _safe_divide,
)

__all__ = [
    "DEFAULT_KS",
    "RANKING_METRICS",
    "average_precision_at_k",
    "hit_at_k",
    "hit_matrix",
    "n_relevant_per_user",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "relevance_matrix",
]


#: Cut-offs reported by default (DESIGN.md stage 8).
DEFAULT_KS: tuple[int, ...] = (5, 10, 20, 50)
#: Names of the per-user ranking metrics, in report order (keys of :func:`ranking_metrics`).
RANKING_METRICS: tuple[str, ...] = ("recall", "precision", "map", "ndcg", "mrr", "hit_rate")


def relevance_matrix(
    user_idx: Sequence[int] | np.ndarray,
    item_idx: Sequence[int] | np.ndarray,
    n_users: int,
    n_items: int,
) -> sp.csr_matrix:
    """Relevant held-out items as a bool CSR matrix: R[u, i] = True iff i in R_u.

    Built from parallel arrays of user and item indices (0-based positions, not raw ids);
    duplicate pairs count once. Rows come out with sorted column indices (canonical format).

    >>> R = relevance_matrix([0, 0, 0, 1, 2, 2], [0, 2, 5, 4, 1, 1], n_users=3, n_items=6)
    >>> R.shape, R.nnz, R.toarray().astype(int).tolist()
    ((3, 6), 5, [[1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0]])
    """
    users = np.asarray(user_idx, dtype=np.int64).ravel()
    items = np.asarray(item_idx, dtype=np.int64).ravel()
    if users.shape != items.shape:
        raise ValueError(
            f"relevance_matrix: user_idx has {users.size} entries but item_idx has {items.size}; "
            "pass one (user, item) pair per position"
        )
    _check_index_range(users, n_users, "user_idx", "n_users")
    _check_index_range(items, n_items, "item_idx", "n_items")
    rel = sp.csr_matrix(
        (np.ones(users.size, dtype=bool), (users, items)), shape=(int(n_users), int(n_items))
    )
    rel.sum_duplicates()  # bool addition: a duplicated pair stays True
    return rel


def n_relevant_per_user(relevant: sp.spmatrix | sp.sparray) -> np.ndarray:
    """|R_u| for every user (row) of a relevance matrix, as int64 (n_users,).

    >>> R = relevance_matrix([0, 0, 0, 1, 2], [0, 2, 5, 4, 1], n_users=3, n_items=6)
    >>> n_relevant_per_user(R).tolist()
    [3, 1, 1]
    """
    rel = _as_relevance(relevant)
    return np.diff(rel.indptr).astype(np.int64)


def hit_matrix(recs: np.ndarray, relevant: sp.spmatrix | sp.sparray) -> np.ndarray:
    """hits[u, r-1] = (item at rank r of u's list is in R_u); padding (-1) is never a hit.

    Looked up with scipy's CSR element sampling (a binary search in each user's sorted row of
    relevant items), in chunks of users so the work arrays stay small: about 0.3 s for 200k
    users x 50 ranks.

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> R = relevance_matrix([0, 0, 0, 1, 2], [0, 2, 5, 4, 1], n_users=3, n_items=6)
    >>> hit_matrix(recs, R).astype(int).tolist()
    [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    """
    recs, rel = _check_recs_and_relevance(recs, relevant)
    n_users, width = recs.shape
    hits = np.zeros((n_users, width), dtype=bool)
    for start, stop in _row_chunks(n_users, width):
        hits[start:stop] = _lookup_hits(recs[start:stop], rel, start)
    return hits


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@K = |L_u@K ∩ R_u| / |R_u| per user (0 when |R_u| = 0).

    >>> hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    >>> np.round(recall_at_k(hits, np.array([3, 1, 1]), k=2), 4).tolist()
    [0.3333, 1.0, 0.0]
    """
    hits, n_rel = _check_hits(hits, n_relevant, k)
    return _safe_divide(hits[:, :k].sum(axis=1), n_rel)


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Precision@K = |L_u@K ∩ R_u| / K per user (a list shorter than K is not excused).

    >>> hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    >>> precision_at_k(hits, k=2).tolist()
    [0.5, 0.5, 0.0]
    """
    hits, _ = _check_hits(hits, None, k)
    return hits[:, :k].sum(axis=1) / float(k)


def average_precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """AP@K = sum_{r <= K, hit at r} Precision@r / min(|R_u|, K) per user; MAP@K is its mean.

    Dividing by min(|R_u|, K) (not |R_u|) lets a perfect list score 1 when |R_u| > K.
    User 0 below: hits at ranks 1 and 3, |R| = 3, so AP@2 = 1/2 and AP@3 = (1 + 2/3)/3.

    >>> hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    >>> n_rel = np.array([3, 1, 1])
    >>> average_precision_at_k(hits, n_rel, k=2).tolist()
    [0.5, 0.5, 0.0]
    >>> np.round(average_precision_at_k(hits, n_rel, k=3), 4).tolist()
    [0.5556, 0.5, 0.0]
    """
    hits, n_rel = _check_hits(hits, n_relevant, k)
    top = hits[:, :k]
    precision_at_rank = np.cumsum(top, axis=1) / np.arange(1, k + 1)
    summed = np.where(top, precision_at_rank, 0.0).sum(axis=1)
    return _safe_divide(summed, np.minimum(n_rel, k))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K = DCG@K / IDCG@K per user, binary gain, discount 1 / log2(r + 1).

    DCG@K = sum_{r <= K, hit at r} 1 / log2(r + 1); IDCG@K = sum_{r=1}^{min(|R_u|, K)}
    1 / log2(r + 1), the DCG of a list that starts with min(|R_u|, K) relevant items.
    User 0 below: 1 / (1 + 1/log2 3); user 1: (1/log2 3) / 1.

    >>> hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    >>> np.round(ndcg_at_k(hits, np.array([3, 1, 1]), k=2), 4).tolist()
    [0.6131, 0.6309, 0.0]
    """
    hits, n_rel = _check_hits(hits, n_relevant, k)
    discounts = _discounts(k)
    dcg = hits[:, :k] @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_rel, k)]
    return _safe_divide(dcg, ideal)


def reciprocal_rank_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """RR@K = 1 / (rank of the first hit) if it is within K, else 0; MRR@K is its mean.

    >>> hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    >>> reciprocal_rank_at_k(hits, k=2).tolist()
    [1.0, 0.5, 0.0]
    >>> reciprocal_rank_at_k(hits, k=1).tolist()
    [1.0, 0.0, 0.0]
    """
    hits, _ = _check_hits(hits, None, k)
    top = hits[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)


def hit_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Hit@K = 1 if any of the top K items is relevant, else 0; HitRate@K is its mean.

    >>> hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    >>> hit_at_k(hits, k=2).tolist(), hit_at_k(hits, k=1).tolist()
    ([1.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    """
    hits, _ = _check_hits(hits, None, k)
    return hits[:, :k].any(axis=1).astype(np.float64)


def ranking_metrics(
    recs: np.ndarray,
    relevant: sp.spmatrix | sp.sparray,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[tuple[str, int], np.ndarray]:
    """Every ranking metric at every K: {(metric, k): per-user float64 array (n_users,)}.

    Metric names are :data:`RANKING_METRICS` ("recall", "precision", "map", "ndcg", "mrr",
    "hit_rate"); the formulas are those of :func:`recall_at_k`, :func:`precision_at_k`,
    :func:`average_precision_at_k`, :func:`ndcg_at_k`, :func:`reciprocal_rank_at_k` and
    :func:`hit_at_k` (equal to them, tested), computed once from prefix sums over the ranks
    (cumulative hits, cumulative Precision@r at hits, cumulative DCG, first-hit rank) and read
    at each K. ``recs`` needs at least max(ks) columns. Mean over users = the reported value.

    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> R = relevance_matrix([0, 0, 0, 1, 2], [0, 2, 5, 4, 1], n_users=3, n_items=6)
    >>> out = ranking_metrics(recs, R, ks=(1, 3))
    >>> list(out)[:3]
    [('recall', 1), ('recall', 3), ('precision', 1)]
    >>> np.round(out["map", 3], 4).tolist(), out["mrr", 1].tolist()
    ([0.5556, 0.5, 0.0], [1.0, 0.0, 0.0])
    """
    ks = _check_ks(ks)
    recs, rel = _check_recs_and_relevance(recs, relevant)
    _check_k(ks[-1], recs.shape[1], "recs")
    n_users, width = recs.shape[0], ks[-1]
    n_rel = np.diff(rel.indptr).astype(np.int64)
    out = {(name, k): np.empty(n_users) for name in RANKING_METRICS for k in ks}
    # In user chunks: the prefix arrays below are ~40 bytes per (user, rank) cell.
    for start, stop in _row_chunks(n_users, width):
        hits = _lookup_hits(recs[start:stop, :width], rel, start)
        for key, values in _ranking_block(hits, n_rel[start:stop], ks).items():
            out[key][start:stop] = values
    return out


def _ranking_block(
    hits: np.ndarray, n_rel: np.ndarray, ks: list[int]
) -> dict[tuple[str, int], np.ndarray]:
    """Every (metric, k) of a block of users from prefix sums over the ranks (see above)."""
    width = hits.shape[1]
    ranks = np.arange(1, width + 1, dtype=np.float64)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.int32)
    cum_ap = np.cumsum(np.where(hits, cum_hits / ranks, 0.0), axis=1)
    cum_dcg = np.cumsum(hits * _discounts(width), axis=1)
    ideal_table = np.concatenate([[0.0], np.cumsum(_discounts(width))])
    has_hit = cum_hits[:, -1] > 0
    first_rank = np.where(has_hit, hits.argmax(axis=1) + 1, width + 1)

    per_k: dict[int, dict[str, np.ndarray]] = {}
    for k in ks:
        n_hits = cum_hits[:, k - 1].astype(np.float64)
        ideal_n = np.minimum(n_rel, k)
        within = first_rank <= k
        per_k[k] = {
            "recall": _safe_divide(n_hits, n_rel),
            "precision": n_hits / k,
            "map": _safe_divide(cum_ap[:, k - 1], ideal_n),
            "ndcg": _safe_divide(cum_dcg[:, k - 1], ideal_table[ideal_n]),
            "mrr": np.where(within, 1.0 / first_rank, 0.0),
            "hit_rate": within.astype(np.float64),
        }
    return {(name, k): per_k[k][name] for name in RANKING_METRICS for k in ks}


def _lookup_hits(block: np.ndarray, rel: sp.csr_matrix, first_row: int) -> np.ndarray:
    """Hits of the users first_row.. of ``block``: scipy's CSR element sampling (binary search
    in each user's sorted row of relevant items); padding is never a hit."""
    n_rows, width = block.shape
    if block.size == 0 or rel.nnz == 0:
        return np.zeros(block.shape, dtype=bool)
    valid = block >= 0
    rows = np.repeat(np.arange(first_row, first_row + n_rows, dtype=np.int64), width)
    cols = np.where(valid, block, 0).ravel()
    found = np.asarray(rel[rows, cols]).reshape(block.shape).astype(bool)
    return found & valid


def _discounts(k: int) -> np.ndarray:
    """1 / log2(r + 1) for r = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
