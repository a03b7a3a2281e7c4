"""Tests for tasks/synthetic/_generate.py (and the catalog and metadata it builds): schema,
counts and ranges, impossible configurations, determinism."""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd
import pytest

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.errors import UsageError
from tasks.profile import SyntheticSection
from tasks.synthetic import PROVIDERS, SyntheticData, generate_synthetic
from tests.tasks.synthetic.datasets import SEED, SMALL


def test_ratings_schema_counts_and_ranges(small: SyntheticData):
    r = small.ratings
    assert list(r.columns) == [Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    assert [str(t) for t in r.dtypes] == ["int32", "int32", "float32", "int64"]
    assert len(r) == SMALL.n_ratings
    assert not r.duplicated([Col.USER, Col.ITEM]).any()
    assert sorted(r[Col.USER].unique()) == list(range(1, SMALL.n_users + 1))
    assert r.groupby(Col.USER).size().min() >= 20  # MovieLens's floor, since 40 per user allows it
    assert set(r[Col.RATING].unique()) <= {x / 2 for x in range(1, 11)}
    assert r[Col.RATING].nunique() == 10  # every half star occurs
    assert set(r[Col.ITEM]) <= set(small.movies[Col.ITEM])
    lo = calendar.timegm((SMALL.start_year, 1, 1, 0, 0, 0))
    hi = calendar.timegm((SMALL.end_year + 1, 1, 1, 0, 0, 0))
    assert r[Col.TIMESTAMP].between(lo, hi - 1).all()
    keys = r[Col.USER].to_numpy(np.int64) * 10**7 + r[Col.ITEM].to_numpy()
    assert (np.diff(keys) > 0).all()  # sorted by user, then movie (like MovieLens)
    assert 3.2 < r[Col.RATING].mean() < 3.8


def test_movies_schema_titles_genres_providers_tags(small: SyntheticData):
    m = small.movies
    assert list(m.columns) == [Col.ITEM, Col.TITLE, Col.YEAR, Col.GENRES, Col.TAGS, Col.PROVIDERS]
    assert len(m) == SMALL.n_movies and m[Col.ITEM].is_unique
    assert str(m[Col.ITEM].dtype) == "int32" and str(m[Col.YEAR].dtype) == "Int32"
    dated = m[m[Col.YEAR].notna()]
    assert len(dated) >= 0.97 * len(m)
    assert all(
        t.endswith(f" ({y})") for t, y in zip(dated[Col.TITLE], dated[Col.YEAR], strict=True)
    )
    assert m[Col.YEAR].min() >= 1900 and m[Col.YEAR].max() <= SMALL.end_year
    genres = m[Col.GENRES].tolist()
    assert all(set(g) <= set(MOVIELENS_GENRES) and list(g) == sorted(g) for g in genres)
    assert np.mean([len(g) == 0 for g in genres]) < 0.05
    assert 1.6 < np.mean([len(g) for g in genres]) < 3.0
    with_providers = m[Col.PROVIDERS].map(len) > 0
    assert with_providers.sum() == round(SMALL.provider_share * SMALL.n_movies)
    assert set(small.providers["provider"]) <= set(PROVIDERS)
    pairs = m[[Col.ITEM, Col.PROVIDERS]].explode(Col.PROVIDERS).dropna()
    assert len(pairs) == len(small.providers)
    assert (m[Col.TAGS] != "").sum() == round(SMALL.tag_share * SMALL.n_movies)
    assert list(small.tags.columns) == [Col.USER, Col.ITEM, "tag", Col.TIMESTAMP]
    rated = set(zip(small.ratings[Col.USER], small.ratings[Col.ITEM], strict=True))
    assert all(
        pair in rated for pair in zip(small.tags[Col.USER], small.tags[Col.ITEM], strict=True)
    )


def test_impossible_configurations_are_refused():
    with pytest.raises(UsageError, match="n_ratings"):
        generate_synthetic(SyntheticSection(n_users=200, n_movies=50, n_ratings=150), 0)
    with pytest.raises(UsageError, match="at most once"):
        generate_synthetic(SyntheticSection(n_users=10, n_movies=20, n_ratings=201), 0)


def test_dense_tiny_catalog_is_filled_exactly():
    cfg = SyntheticSection(n_users=10, n_movies=20, n_ratings=190)  # 95% of all pairs
    r = generate_synthetic(cfg, 3).ratings
    assert len(r) == 190 and not r.duplicated([Col.USER, Col.ITEM]).any()
    assert r[Col.USER].nunique() == 10


def test_same_seed_same_frames_other_seed_other_data(small: SyntheticData):
    again = generate_synthetic(SMALL, SEED)
    for name in ("ratings", "movies", "tags", "providers"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    other = generate_synthetic(SMALL, SEED + 1)
    assert not other.ratings[[Col.ITEM, Col.RATING]].equals(small.ratings[[Col.ITEM, Col.RATING]])
    assert other.movies[Col.TITLE].tolist() != small.movies[Col.TITLE].tolist()
