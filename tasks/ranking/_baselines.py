"""Baseline lists: one signal, the whole catalogue, no blend (part of :mod:`tasks.ranking`).

- :func:`popularity_lists`: the most rated training items the user may still be shown.
- :func:`cf_lists`: the exact top-k of a CF model's scores ``s_ui`` (:mod:`tasks.cf`) over every
  item with CF evidence and metadata that is not excluded - what EASE, item kNN or ALS recommend
  on their own. Users without CF evidence get the popularity list.
- :func:`content_lists`: the exact top-k of the content cosine ``p_u . e_i`` over the catalogue;
  users without a taste profile get the popularity list.

Every list obeys the engine's safety rules (only items with metadata, never an excluded pair),
so the baselines and the policy are compared on the same candidates. Ties: score desc, then item
asc. Users are scored in chunks (a chunk x n_items buffer), never a users x items matrix.
"""

from __future__ import annotations

import numpy as np

from tasks.ranking._arrays import RecommenderArrays
from tasks.ranking._filters import row_coords
from tasks.ranking._topk import NEG_INF, top_k_columns

__all__ = ["content_lists", "cf_lists", "popularity_lists", "popularity_order"]

_CHUNK = 256


def popularity_order(arrays: RecommenderArrays) -> np.ndarray:
    """Items with metadata by number of training ratings, most first; ties to the smaller index
    (:attr:`RecommenderArrays.items_by_popularity`, computed once per arrays object)."""
    return arrays.items_by_popularity


def _member(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(np.shape(query), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, query), sorted_keys.size - 1)
    return sorted_keys[pos] == query


def popularity_lists(
    arrays: RecommenderArrays, users: np.ndarray, k: int, order: np.ndarray | None = None
) -> np.ndarray:
    """The first k items of the popularity ``order`` each user may be shown: (b, k) int32, -1 pad.

    The first ``k + n_excluded(u)`` items of the order always hold k allowed ones, so one window
    serves the whole batch.
    """
    users = np.asarray(users, dtype=np.int64)
    order = popularity_order(arrays) if order is None else order
    b, n = len(users), arrays.n_items
    out = np.full((b, k), -1, dtype=np.int32)
    if b == 0:
        return out
    ex = arrays.exclude
    n_ex = (ex.indptr[users + 1] - ex.indptr[users]).astype(np.int64)
    window = order[: int(min(len(order), k + n_ex.max(initial=0)))]
    rows, items, _ = row_coords(ex, users)
    keep = ~_member(rows * n + items, np.arange(b, dtype=np.int64)[:, None] * n + window[None, :])
    rank = np.cumsum(keep, axis=1)
    keep &= rank <= k
    rr, cc = np.nonzero(keep)
    out[rr, rank[rr, cc] - 1] = window[cc]
    return out


def _mask_excluded(
    arrays: RecommenderArrays, users: np.ndarray, scores: np.ndarray, blocked: np.ndarray
) -> None:
    rows, items, _ = row_coords(arrays.exclude, users)
    scores.reshape(-1)[rows * arrays.n_items + items] = NEG_INF
    if len(blocked):
        scores[:, blocked] = NEG_INF


def cf_lists(arrays: RecommenderArrays, users: np.ndarray, k: int, cf=None) -> np.ndarray:
    """Top-k of the CF model's scores (``cf`` defaults to ``arrays.cf``): (b, k) int32, -1 pad."""
    cf = arrays.cf if cf is None else cf
    users = np.asarray(users, dtype=np.int64)
    out = np.full((len(users), k), -1, dtype=np.int32)
    blocked = np.flatnonzero(~(cf.item_known & arrays.has_metadata))
    buf = np.empty((min(_CHUNK, max(len(users), 1)), arrays.n_items), dtype=np.float32)
    for lo in range(0, len(users), _CHUNK):  # chunks bound the score buffer
        sub = users[lo : lo + _CHUNK]
        s = cf.score_into(sub, buf)
        _mask_excluded(arrays, sub, s, blocked)
        out[lo : lo + len(sub)] = top_k_columns(s, k)[0]
    cold = ~cf.user_known[users]
    if cold.any():
        out[cold] = popularity_lists(arrays, users[cold], k)
    return out


def content_lists(arrays: RecommenderArrays, users: np.ndarray, k: int) -> np.ndarray:
    """Top-k of the content cosine over the catalogue: (b, k) int32, -1 pad."""
    users = np.asarray(users, dtype=np.int64)
    out = np.full((len(users), k), -1, dtype=np.int32)
    blocked = np.flatnonzero(~arrays.has_metadata)
    emb_t = arrays.embeddings.T  # a view: BLAS multiplies by the transpose without a copy
    buf = np.empty((min(_CHUNK, max(len(users), 1)), arrays.n_items), dtype=np.float32)
    for lo in range(0, len(users), _CHUNK):
        sub = users[lo : lo + _CHUNK]
        s = np.matmul(arrays.profiles[sub], emb_t, out=buf[: len(sub)])
        _mask_excluded(arrays, sub, s, blocked)
        out[lo : lo + len(sub)] = top_k_columns(s, k)[0]
    no_profile = np.abs(arrays.profiles[users]).sum(axis=1) == 0
    if no_profile.any():
        out[no_profile] = popularity_lists(arrays, users[no_profile], k)
    return out
