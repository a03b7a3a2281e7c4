"""Tests for tasks/content/_features.py: shapes, dtypes and unit rows, genre and provider matrices,
determinism, and a movie without ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.content import build_content_features, content_scores, taste_profile
from tasks.profile import ContentSection
from tests.tasks.content.catalogues import CFG_TINY, tiny_movies, tiny_train


def test_shapes_dtypes_and_unit_rows(tiny_features):
    f = tiny_features
    assert f.item_ids.tolist() == [10, 20, 30, 40, 50, 60, 70, 80]  # sorted movie ids = item_idx
    assert f.item_ids.dtype == np.int32
    assert f.embeddings.shape == (8, 16) and f.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(f.embeddings, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(f.embeddings).all()  # the movie with no text at all has a vector too
    assert f.neighbor_idx.shape == (8, 3) and f.neighbor_idx.dtype == np.int32
    assert f.neighbor_sim.shape == (8, 3) and f.neighbor_sim.dtype == np.float32
    assert f.info["reduction"] == "exact-svd"  # 8 items: exact SVD, zero-padded to 16 columns


def test_genre_and_provider_matrices(tiny_features):
    f = tiny_features
    assert f.genre_names == sorted(f.genre_names) and "Horror" in f.genre_names
    horror = f.genre_matrix[:, f.genre_names.index("Horror")]
    assert f.item_ids[horror].tolist() == [40, 50, 80]
    assert not f.genre_matrix[f.index_of([60])[0]].any()
    assert f.provider_names == ["Disney+", "Max", "Netflix"]
    assert f.provider_matrix[f.index_of([80])[0]].tolist() == [False, True, True]


def test_deterministic(tiny_features):
    again = build_content_features(
        tiny_movies().sample(frac=1, random_state=3), tiny_train(), CFG_TINY, seed=7
    )
    assert np.array_equal(again.embeddings, tiny_features.embeddings)
    assert np.array_equal(again.neighbor_idx, tiny_features.neighbor_idx)


def test_movie_without_ratings_is_recommendable_by_content(ml_small):
    """A new movie with no ratings has an embedding and neighbours, and a fan of its franchise gets it."""
    movies, ratings = ml_small
    new = pd.DataFrame(
        {
            Col.ITEM: np.array([999_999], np.int32),
            Col.TITLE: ["Toy Story 5 (2030)"],
            Col.YEAR: pd.array([2030], dtype="Int32"),
            Col.GENRES: [["Adventure", "Animation", "Children", "Comedy", "Fantasy"]],
            Col.TAGS: ["pixar"],
            Col.PROVIDERS: [[]],
        }
    )
    catalogue = pd.concat([movies, new], ignore_index=True)
    f = build_content_features(
        catalogue, ratings, ContentSection(embedding_size=64, k_neighbors=20), 42
    )
    i = f.index_of([999_999])[0]
    assert f.numeric.loc[i, "n_ratings"] == 0
    assert np.isclose(np.linalg.norm(f.embeddings[i]), 1.0, atol=1e-5)
    titles = catalogue.set_index(Col.ITEM)[Col.TITLE]
    neighbour_titles = titles.loc[f.item_ids[f.neighbor_idx[i, :5]]].tolist()
    assert sum("Toy Story" in t for t in neighbour_titles) >= 2, neighbour_titles
    fan = f.index_of([1, 3114, 78499])  # Toy Story 1-3, rated 5
    scores = content_scores(taste_profile(fan, np.full(3, 5.0), f.embeddings)[None], f.embeddings)[
        0
    ]
    scores[fan] = -1
    assert i in np.argsort(-scores)[:10]
