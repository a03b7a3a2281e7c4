"""Taste profiles and the content score (part of :mod:`tasks.content`).

Taste profiles (used by the hybrid scorer)
    ``p_u = normalise(sum_i w_ui e_i)`` over the items u liked (``r_ui >= relevance_threshold``)
    with ``w_ui = (r_ui - threshold + 1) * 0.5 ** (age_ui / half_life_days)``, ``age_ui`` = days
    between that rating and u's latest training rating. A user with no liked item (every rating
    below the threshold) or no history gets the zero vector: low ratings say what u dislikes, not
    what u wants, so they never pull recommendations towards themselves (DESIGN.md: the profile
    comes from liked items); such users are served by CF and popularity (content score 0.5).
    Content score of item i for user u:
    ``content_ui = (1 + cos(p_u, e_i)) / 2`` in [0, 1] (0.5 for the zero profile).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import Col
from tasks.content._index import ITEM_IDX, USER_IDX

__all__ = ["content_scores", "taste_profile", "user_taste_profiles"]


def user_taste_profiles(
    train: pd.DataFrame,
    embeddings: np.ndarray,
    n_users: int,
    *,
    relevance_threshold: float = 4.0,
    half_life_days: float | None = 365.0,
    user_col: str = USER_IDX,
    item_col: str = ITEM_IDX,
) -> np.ndarray:
    """Unit taste vectors ``p_u`` (float32, (n_users, d)); zero rows for users with no liked item.

    ``train`` has integer index columns ``user_col`` / ``item_col`` (map ids with
    :func:`ids_to_index`), ``Col.RATING`` and (for recency) ``Col.TIMESTAMP``. Formula in the
    module docstring; computed as one sparse product ``W @ E`` (W: n_users x n_items weights).
    ``half_life_days=None`` turns recency weighting off.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    n_items, d = e.shape
    if len(train) == 0:
        return np.zeros((n_users, d), np.float32)
    u = train[user_col].to_numpy(np.int64)
    i = train[item_col].to_numpy(np.int64)
    r = train[Col.RATING].to_numpy(np.float64)
    liked = r >= relevance_threshold  # only liked items shape the taste (module docstring)
    weight = r - relevance_threshold + 1.0
    if half_life_days and Col.TIMESTAMP in train:
        ts = train[Col.TIMESTAMP].to_numpy(np.int64)
        last = np.full(n_users, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(last, u, ts)  # age from the latest rating of any kind, liked or not
        age_days = (last[u] - ts) / 86_400.0
        weight = weight * np.exp2(-age_days / float(half_life_days))
    keep = liked & (weight > 0)
    W = sp.csr_matrix(
        (weight[keep].astype(np.float32), (u[keep], i[keep])),
        shape=(n_users, n_items),
        dtype=np.float32,
    )
    profiles = np.asarray(W @ e, dtype=np.float32)
    norms = np.linalg.norm(profiles, axis=1)
    nonzero = norms > 1e-12
    profiles[nonzero] /= norms[nonzero, None]
    profiles[~nonzero] = 0.0
    return profiles


def taste_profile(
    item_idx: np.ndarray,
    ratings: np.ndarray,
    embeddings: np.ndarray,
    timestamps: np.ndarray | None = None,
    *,
    relevance_threshold: float = 4.0,
    half_life_days: float | None = 365.0,
) -> np.ndarray:
    """One user's unit taste vector (``d``,): :func:`user_taste_profiles` for a single history."""
    frame = pd.DataFrame(
        {USER_IDX: np.zeros(len(item_idx), np.int64), ITEM_IDX: item_idx, Col.RATING: ratings}
    )
    if timestamps is not None:
        frame[Col.TIMESTAMP] = timestamps
    return user_taste_profiles(
        frame,
        embeddings,
        1,
        relevance_threshold=relevance_threshold,
        half_life_days=half_life_days if timestamps is not None else None,
    )[0]


def content_scores(profiles: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """``(1 + cos(p_u, e_i)) / 2`` in [0, 1] for a batch of profiles against items (float32).

    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    >>> content_scores(np.array([[1.0, 0.0], [0.0, 0.0]], np.float32), e).tolist()
    [[1.0, 0.5, 0.0], [0.5, 0.5, 0.5]]
    """
    scores = np.asarray(profiles, np.float32) @ np.asarray(embeddings, np.float32).T
    scores += 1.0
    scores *= 0.5
    return np.clip(scores, 0.0, 1.0, out=scores)
