"""Tests for tasks/synthetic/_ratings.py (with _users.py): the structure a recommender should
find - true genre preferences, heavy tails, taste drift, sessions, half stars only after 2003."""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.synthetic import SyntheticData, true_genre_preferences
from tests.tasks.synthetic.datasets import SEED


def _with_genres(data: SyntheticData) -> pd.DataFrame:
    return data.ratings.merge(data.movies[[Col.ITEM, Col.GENRES]], on=Col.ITEM, how="left")


def test_users_rate_their_true_preferred_genre_more_often_and_higher(ci_cfg, ci_data):
    top = true_genre_preferences(ci_cfg, SEED).idxmax(axis=1)
    r = _with_genres(ci_data)
    r["in_top"] = [g in gs for g, gs in zip(r[Col.USER].map(top), r[Col.GENRES], strict=True)]
    # more often: share of a user's ratings in their genre vs that genre's share of all ratings
    base = {g: np.mean([g in gs for gs in r[Col.GENRES]]) for g in MOVIELENS_GENRES}
    lift = r.groupby(Col.USER)["in_top"].mean() / top.map(base)
    assert lift.mean() > 1.5
    # higher: per user, mean rating inside minus outside the preferred genre
    per_user = r.groupby([Col.USER, "in_top"])[Col.RATING].mean().unstack().dropna()
    gap = per_user[True] - per_user[False]
    assert gap.mean() > 0.4 and (gap > 0).mean() > 0.8


def test_users_rate_their_most_overrepresented_genre_higher(ci_data):
    """Without the generator's truth: the genre a user rates most often relative to everyone
    (chosen from counts only) gets their higher ratings."""
    r = _with_genres(ci_data)
    exploded = r[[Col.USER, Col.GENRES]].explode(Col.GENRES).dropna()
    counts = exploded.groupby([Col.USER, Col.GENRES]).size().unstack(fill_value=0)
    share = counts.div(r.groupby(Col.USER).size(), axis=0)
    base = exploded[Col.GENRES].value_counts() / len(r)
    favourite = (share / base[share.columns]).where(counts >= 3).idxmax(axis=1)
    r["in_fav"] = [g in gs for g, gs in zip(r[Col.USER].map(favourite), r[Col.GENRES], strict=True)]
    per_user = r.groupby([Col.USER, "in_fav"])[Col.RATING].mean().unstack().dropna()
    gap = per_user[True] - per_user[False]
    assert gap.mean() > 0.12 and (gap > 0).mean() > 0.6


def test_activity_and_popularity_are_heavy_tailed(ci_data):
    per_movie = ci_data.ratings[Col.ITEM].value_counts()  # sorted, most rated first
    n_movies = len(ci_data.movies)
    assert per_movie.iloc[: n_movies // 10].sum() > 0.4 * len(ci_data.ratings)
    assert per_movie.iloc[0] > 20 * per_movie.median()
    per_user = ci_data.ratings[Col.USER].value_counts()
    assert per_user.max() > 8 * per_user.median()
    assert per_user.iloc[: len(per_user) // 10].sum() > 0.25 * len(ci_data.ratings)


def test_taste_drifts_and_ratings_come_in_sessions(ci_cfg, ci_data):
    top = true_genre_preferences(ci_cfg, SEED).idxmax(axis=1)
    r = _with_genres(ci_data).sort_values([Col.USER, Col.TIMESTAMP], kind="stable")
    r["in_top"] = [g in gs for g, gs in zip(r[Col.USER].map(top), r[Col.GENRES], strict=True)]
    position = r.groupby(Col.USER).cumcount() / r.groupby(Col.USER)[Col.ITEM].transform("size")
    early, late = r.loc[position < 0.5, "in_top"].mean(), r.loc[position >= 0.5, "in_top"].mean()
    assert early > late + 0.02  # later ratings drift toward the second taste
    gaps = r.groupby(Col.USER)[Col.TIMESTAMP].diff().dropna()
    assert (gaps < 600).mean() > 0.5  # most ratings follow the previous one within minutes
    assert (gaps > 86_400).mean() > 0.01  # and sessions are days to months apart
    span_days = r.groupby(Col.USER)[Col.TIMESTAMP].agg(lambda s: s.max() - s.min()) / 86_400
    assert span_days.median() > 7 and span_days.quantile(0.9) > 180


def test_ratings_before_half_stars_existed_are_whole(ci_data):
    r = ci_data.ratings
    early = r[r[Col.TIMESTAMP] < calendar.timegm((2003, 2, 18, 0, 0, 0))]
    assert len(early) > 1000 and (early[Col.RATING] % 1 == 0).all()
    assert (r[Col.RATING] % 1 != 0).mean() > 0.15
