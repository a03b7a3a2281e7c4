"""Numeric features of the movies (part of :mod:`tasks.content`).

Numeric features (for the quality / recency boosts)
    ``n_i`` = training ratings of item i, ``log_popularity = log(1 + n_i)``,
    ``mean_rating = sum_i / n_i`` (NaN without ratings),
    ``bayes_mean = (C * m + sum_i) / (C + n_i)`` with ``C = content.bayes_prior_weight`` and
    ``m`` the global mean training rating (an unrated movie gets ``m``),
    ``quality = (bayes_mean - min) / (max - min)`` over the catalogue (0.5 when all equal),
    ``recency = (year - min_year) / (max_year - min_year)``; a missing year gets the recency of
    the catalogue's median year (0.5 when no movie has a year or all years are equal).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.content._index import ITEM_IDX, ids_to_index

__all__ = ["numeric_features"]


def numeric_features(
    years_col: pd.Series, item_ids: np.ndarray, train: pd.DataFrame, prior_weight: float
) -> pd.DataFrame:
    """Per item: n_ratings, log_popularity, mean_rating, bayes_mean, quality, recency from the
    ``train`` ratings and the release years (formulas in the module docstring)."""
    n = len(item_ids)
    if len(train):
        idx = ids_to_index(item_ids, train[Col.ITEM].to_numpy(), what=f"train {Col.ITEM}")
        ratings = train[Col.RATING].to_numpy(dtype=np.float64)
        counts = np.bincount(idx, minlength=n)
        sums = np.bincount(idx, weights=ratings, minlength=n)
        global_mean = float(ratings.mean())
    else:
        counts, sums, global_mean = np.zeros(n, np.int64), np.zeros(n), 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    denom = prior_weight + counts
    bayes = np.where(
        denom > 0, (prior_weight * global_mean + sums) / np.where(denom > 0, denom, 1), global_mean
    )
    lo, hi = float(bayes.min()) if n else 0.0, float(bayes.max()) if n else 0.0
    quality = (bayes - lo) / (hi - lo) if hi > lo else np.full(n, 0.5)
    years_col = years_col.reset_index(drop=True).astype("Int32")
    years = years_col.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    known = ~np.isnan(years)
    if known.any() and np.nanmax(years) > np.nanmin(years):
        y_lo, y_hi = np.nanmin(years), np.nanmax(years)
        recency = (years - y_lo) / (y_hi - y_lo)
        recency[~known] = (np.nanmedian(years) - y_lo) / (y_hi - y_lo)
    else:
        recency = np.full(n, 0.5)
    return pd.DataFrame(
        {
            Col.ITEM: item_ids.astype(np.int32),
            ITEM_IDX: np.arange(n, dtype=np.int32),
            Col.YEAR: years_col,
            "n_ratings": counts.astype(np.int32),
            "log_popularity": np.log1p(counts).astype(np.float32),
            "mean_rating": mean.astype(np.float32),
            "bayes_mean": bayes.astype(np.float32),
            "quality": np.clip(quality, 0.0, 1.0).astype(np.float32),
            "recency": np.clip(recency, 0.0, 1.0).astype(np.float32),
        }
    )
