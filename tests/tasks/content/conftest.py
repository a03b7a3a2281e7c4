"""Fixtures of the tasks.content tests: the tiny catalogue's features and ml-latest-small's
(helpers in tests/tasks/content/catalogues.py)."""

from __future__ import annotations

import pytest

from tasks.content import build_content_features
from tasks.profile import ContentSection
from tests.tasks.content.catalogues import CFG_TINY, canonical_movielens, tiny_movies, tiny_train


@pytest.fixture(scope="module")
def tiny_features():
    return build_content_features(tiny_movies(), tiny_train(), CFG_TINY, seed=7)


@pytest.fixture(scope="module")
def ml_small(ml_small_dir):
    return canonical_movielens(ml_small_dir)


@pytest.fixture(scope="module")
def ml_features(ml_small):
    movies, ratings = ml_small
    cfg = ContentSection(embedding_size=64, k_neighbors=20)
    return build_content_features(movies, ratings, cfg, seed=42)
