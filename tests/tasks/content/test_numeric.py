"""Tests for tasks/content/_numeric.py: the formulas on the tiny catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.columns import Col
from tests.tasks.content.catalogues import CFG_TINY


def test_numeric_features_formulas(tiny_features):
    num = tiny_features.numeric.set_index(Col.ITEM)
    m = np.mean([5, 4, 3, 4, 4])  # global mean 4.0
    c = CFG_TINY.bayes_prior_weight
    assert num.loc[30, "n_ratings"] == 3
    assert num.loc[30, "mean_rating"] == pytest.approx(4.0)
    assert num.loc[10, "bayes_mean"] == pytest.approx((c * m + 4.0) / (c + 1))
    assert num.loc[20, "n_ratings"] == 0 and np.isnan(num.loc[20, "mean_rating"])
    assert num.loc[20, "bayes_mean"] == pytest.approx(m)  # unrated: the global mean
    assert num.loc[30, "log_popularity"] == pytest.approx(np.log1p(3))
    assert num["quality"].between(0, 1).all() and num["recency"].between(0, 1).all()
    assert num.loc[10, "recency"] == pytest.approx(1.0)  # 1999 is the newest
    assert num.loc[80, "recency"] == pytest.approx(0.0)  # 1978 the oldest
    median = (1995 - 1978) / (1999 - 1978)  # median known year is 1995
    assert num.loc[60, "recency"] == pytest.approx(median)
    assert pd.isna(num.loc[60, Col.YEAR])
