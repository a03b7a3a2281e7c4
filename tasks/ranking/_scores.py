"""Scores on one scale: per-user z-scores over the candidate pool (part of :mod:`tasks.ranking`).

For user u with pool P_u, every signal s (CF score, content cosine, quality, recency, provider
match) is put on the same per-user scale before it is mixed::

    z(s)_ui = (s_ui - mean_{j in P_u} s_uj) / sd_{j in P_u} s_uj      (0 when sd = 0)

so a weight is the share of a unit-variance signal, whatever the model's raw scale (ALS dot
products, EASE regression weights and kNN similarity sums differ by orders of magnitude; the old
min-max of CF over the pool depended on the pool's worst item, and ``(1 + cos) / 2`` spanned only
about 0.5-0.93). The score::

    blend_ui = alpha_u z(content)_ui + (1 - alpha_u) z(collab)_ui
    score_ui = (1 - W) blend_ui + w_q z(quality)_ui + w_r z(recency)_ui + w_p z(provider)_ui,
    W = w_q + w_r + w_p

Cold-start rules: a user without CF evidence (no interaction the CF model was fitted on) uses
the items' popularity (log training-rating count) as its collaborative signal - its pool's CF
seeds are the most popular items for the same reason; an item without CF evidence gets the lowest
collab z of the user's pool (no evidence = the pool's minimum); the CF statistics are taken over
the items with evidence only. A user without a taste profile has ``z(content) = 0`` everywhere (no
preference), so CF (or popularity) and the boosts decide.
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_zscore", "pool_zscores"]


def pool_zscores(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row z-scores over the entries where ``mask``: ``(z, mean, sd)``.

    ``z = (v - mean) / sd`` with the population sd of the masked entries; rows with ``sd = 0`` (or
    no masked entry) get ``z = 0``; entries outside the mask get 0. float32.

    >>> z, mean, sd = pool_zscores(np.array([[1.0, 2.0, 3.0, 9.0], [5.0, 5.0, 0.0, 0.0]]),
    ...                            np.array([[True, True, True, False], [True, True, False, False]]))
    >>> z.astype(float).round(4).tolist(), mean.tolist(), sd.astype(float).round(4).tolist()
    ([[-1.2247, 0.0, 1.2247, 0.0], [0.0, 0.0, 0.0, 0.0]], [2.0, 5.0], [0.8165, 0.0])
    """
    v = np.asarray(values, dtype=np.float32)
    m = np.asarray(mask, dtype=bool) & np.isfinite(v)
    n = m.sum(axis=1)
    safe_n = np.maximum(n, 1).astype(np.float32)
    vm = np.where(m, v, np.float32(0.0))
    mean = (vm.sum(axis=1) / safe_n).astype(np.float32)
    dev = np.where(m, v - mean[:, None], np.float32(0.0))
    sd = np.sqrt((dev * dev).sum(axis=1) / safe_n).astype(np.float32)
    return apply_zscore(v, mean, sd, m), mean, sd


def apply_zscore(
    values: np.ndarray, mean: np.ndarray, sd: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """``(v - mean_u) / sd_u`` with given per-row statistics; 0 where ``sd_u`` is not positive
    (or not finite) or outside ``mask``. float32.

    >>> apply_zscore(np.array([[3.0, 1.0]]), np.array([2.0]), np.array([0.5]), np.array([[True, False]])).tolist()
    [[2.0, 0.0]]
    """
    v = np.asarray(values, dtype=np.float32)
    sd = np.asarray(sd, dtype=np.float32)
    ok = np.isfinite(sd) & (sd > 1e-12)
    scale = np.where(ok, np.float32(1.0) / np.where(ok, sd, np.float32(1.0)), np.float32(0.0))
    z = (v - np.asarray(mean, dtype=np.float32)[:, None]) * scale[:, None].astype(np.float32)
    return np.where(np.asarray(mask, bool) & np.isfinite(z), z, np.float32(0.0)).astype(
        np.float32, copy=False
    )
