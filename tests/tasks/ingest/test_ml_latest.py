"""Tests for tasks/ingest/_ml_latest.py: the real ml-latest-small, and tags and providers."""

from __future__ import annotations

import pandas as pd

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.ingest import detect_format, read_movielens
from tests.tasks.ingest.folders import latest_dir


def test_real_ml_latest_small(ml_small_dir):
    assert detect_format(ml_small_dir) == "ml-latest"
    ratings, movies = read_movielens(ml_small_dir)
    assert len(ratings) == 100_836
    assert ratings[Col.USER].nunique() == 610
    assert len(movies) == 9_742
    assert list(ratings.columns) == [Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    assert [str(t) for t in ratings.dtypes] == ["int32", "int32", "float32", "int64"]
    assert list(movies.columns) == [
        Col.ITEM,
        Col.TITLE,
        Col.YEAR,
        Col.GENRES,
        Col.TAGS,
        Col.PROVIDERS,
    ]
    assert str(movies[Col.YEAR].dtype) == "Int32"

    raw = pd.read_csv(ml_small_dir / "movies.csv")
    raw_labels = {g for text in raw["genres"] for g in text.split("|")}
    assert len(raw_labels) == 20 and "(no genres listed)" in raw_labels
    canonical = {g for genres in movies[Col.GENRES] for g in genres}
    assert canonical == set(MOVIELENS_GENRES)  # the 19 genres; "(no genres listed)" -> []
    n_empty = sum(len(g) == 0 for g in movies[Col.GENRES])
    assert n_empty == (raw["genres"] == "(no genres listed)").sum() > 0

    assert movies[Col.YEAR].notna().mean() > 0.995
    toy = movies.set_index(Col.ITEM).loc[1]
    assert toy[Col.TITLE] == "Toy Story (1995)" and toy[Col.YEAR] == 1995
    assert toy[Col.TAGS] == "pixar fun"  # tags.csv: pixar, pixar, fun -> most frequent first
    assert (movies[Col.TAGS] != "").sum() == pd.read_csv(ml_small_dir / "tags.csv")[
        "movieId"
    ].nunique()
    assert all(len(p) == 0 for p in movies[Col.PROVIDERS])


def test_providers_and_tags_enrich_movies(tmp_path):
    folder = latest_dir(
        tmp_path, providers_csv="movieId,provider\n3,Netflix\n1,Max\n3,Hulu\n3,Netflix\n99,Max\n"
    )
    _, movies = read_movielens(folder)
    by_id = movies.set_index(Col.ITEM)
    assert by_id.loc[3, Col.PROVIDERS] == ["Netflix", "Hulu"]
    assert by_id.loc[1, Col.PROVIDERS] == ["Max"] and by_id.loc[5, Col.PROVIDERS] == []
    assert by_id.loc[1, Col.TAGS] == "pixar fun" and by_id.loc[5, Col.TAGS] == ""
    assert (
        by_id.loc[3, Col.TITLE] == "American President, The (1995)"
        and by_id.loc[5, Col.GENRES] == []
    )
