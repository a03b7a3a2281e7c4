"""Maximal marginal relevance (Carbonell & Goldstein 1998), batched (part of :mod:`tasks.ranking`).

Over a user's MMR pool (the best ``mmr_pool`` items by score), with relevance ``rel_i`` = the
score min-max scaled to [0, 1] over the pool and ``sim_ij`` the cosine of the items' content
embeddings::

    next = argmax_{i not chosen} (1 - lambda_div) rel_i - lambda_div max_{j chosen} sim_ij

``lambda_div`` is the weight of DIVERSITY: 0 keeps the score order, 1 picks the most relevant
item and then only the least similar ones. The first pick is the most relevant item. Ties go to
the higher relevance, then the smaller item index. Written by hand (no library does a batched,
deterministic MMR): k greedy steps, each vectorised over the whole batch.
"""

from __future__ import annotations

import numpy as np

from tasks.ranking._topk import NEG_INF, order_keys

__all__ = ["mmr_rerank", "mmr_select", "minmax_rows", "tie_order"]


def minmax_rows(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(v - min) / (max - min)`` per row over the masked entries (1 where max == min; 0 outside).

    >>> minmax_rows(np.array([[2.0, 4.0, 3.0], [1.0, 1.0, 9.0]]), np.array([[1, 1, 1], [1, 1, 0]], bool)).tolist()
    [[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]]
    """
    v = np.asarray(values, dtype=np.float32)
    m = np.asarray(mask, bool) & np.isfinite(v)
    lo = np.where(m, v, np.inf).min(axis=1, initial=np.inf)
    hi = np.where(m, v, -np.inf).max(axis=1, initial=-np.inf)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    out = (v - np.where(np.isfinite(lo), lo, 0.0)[:, None]) / np.where(ok, span, 1.0)[:, None]
    out = np.where(ok[:, None], out, 1.0)
    return np.where(m, out, 0.0).astype(np.float32)


def tie_order(pool: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Positions of each row in MMR's tie order: relevance desc, then item asc; unusable last."""
    avail = (pool >= 0) & np.isfinite(rel)
    keys = order_keys(np.where(avail, rel, NEG_INF), np.where(avail, pool, -1))
    return np.argsort(~keys, axis=1, kind="stable")  # ~: the pad key (int64 min) sorts last


def mmr_in_tie_order(
    pool: np.ndarray, rel: np.ndarray, sim: np.ndarray, lambda_div: float, k: int
) -> np.ndarray:
    """Greedy MMR on entries already in tie order (:func:`tie_order`): positions (b, k), -1 pad.

    Because the entries are in tie order, ``argmax``'s first maximum is the tie rule. Each step is
    a few vectorised passes over the (b, c) values and one row gather of the similarity.
    """
    b, c = pool.shape
    out = np.full((b, k), -1, dtype=np.int64)
    if b == 0 or c == 0:
        return out
    avail = (pool >= 0) & np.isfinite(rel)
    lam = np.float32(lambda_div)
    rel_term = (np.float32(1.0) - lam) * np.where(avail, rel, np.float32(0.0))
    mask = np.where(avail, np.float32(0.0), NEG_INF)
    max_sim = np.zeros((b, c), dtype=np.float32)
    value = np.empty((b, c), dtype=np.float32)
    rows = np.arange(b)
    for step in range(min(k, c)):  # k greedy picks, each vectorised over the batch
        if step == 0 or lam == 0.0:
            value[:] = rel_term
        else:
            np.multiply(lam, max_sim, out=value)
            np.subtract(rel_term, value, out=value)
        value += mask
        pick = value.argmax(axis=1)
        ok = mask[rows, pick] == 0
        out[:, step] = np.where(ok, pick, -1)
        mask[rows, pick] = NEG_INF
        if step == 0:
            max_sim[:] = sim[rows, pick]
        else:
            np.maximum(max_sim, sim[rows, pick], out=max_sim)
    return out


def mmr_select(
    pool_idx: np.ndarray, relevance: np.ndarray, similarity: np.ndarray, lambda_div: float, k: int
) -> np.ndarray:
    """MMR picks as positions (b, k) into ``pool_idx`` (-1 pad); ``similarity`` (b, c, c) is in
    ``pool_idx`` order and ``relevance`` already in [0, 1].

    >>> e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> pool, rel = np.array([[0, 1, 2]]), np.array([[0.9, 0.8, 0.7]], np.float32)
    >>> sim = (e[pool] @ e[pool].transpose(0, 2, 1)).astype(np.float32)
    >>> mmr_select(pool, rel, sim, 0.0, 3).tolist(), mmr_select(pool, rel, sim, 0.75, 3).tolist()
    ([[0, 1, 2]], [[0, 2, 1]])
    """
    pool = np.asarray(pool_idx)
    rel = np.asarray(relevance, dtype=np.float32)
    order = tie_order(pool, rel)
    rows = np.arange(pool.shape[0])
    sim = np.asarray(similarity)[rows[:, None, None], order[:, :, None], order[:, None, :]]
    picks = mmr_in_tie_order(
        np.take_along_axis(pool, order, axis=1),
        np.take_along_axis(rel, order, axis=1),
        sim,
        lambda_div,
        k,
    )
    return np.where(picks >= 0, np.take_along_axis(order, np.maximum(picks, 0), axis=1), -1)


def mmr_rerank(
    pool_idx: np.ndarray, scores: np.ndarray, embeddings: np.ndarray, lambda_div: float, k: int
) -> np.ndarray:
    """MMR from raw scores and item embeddings: relevance = :func:`minmax_rows` of the scores,
    similarity = cosines of ``embeddings[pool_idx]`` (unit rows). Positions (b, k), -1 pad."""
    pool = np.asarray(pool_idx)
    avail = (pool >= 0) & np.isfinite(scores)
    g = np.asarray(embeddings, dtype=np.float32)[np.maximum(pool, 0)]
    return mmr_select(
        pool, minmax_rows(scores, avail), np.matmul(g, g.transpose(0, 2, 1)), lambda_div, k
    )
