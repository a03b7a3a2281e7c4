"""Tests for tasks/content/_stage.py: the core and the task shell, same inputs same bytes."""

from __future__ import annotations

from tasks.content import build_features, features_core
from tasks.io import ArtifactRef, write_table
from tests.tasks.content.catalogues import CFG_TINY, tiny_movies, tiny_train


def test_features_core_and_stage_task(tmp_path):
    movies_ref = write_table(tiny_movies(), tmp_path, "data/movies.parquet")
    train_ref = write_table(tiny_train(), tmp_path, "data/train.parquet")
    result = features_core(str(movies_ref.path), str(train_ref.path), CFG_TINY, 7, str(tmp_path))
    assert set(result["artifacts"]) >= {
        "item_index",
        "content_embeddings",
        "item_neighbors",
        "item_features",
    }
    assert all(isinstance(ref, ArtifactRef) for ref in result["artifacts"].values())
    assert result["facts"]["n_items"] == 8 and result["facts"]["items_without_ratings"] == 5
    out = build_features.fn(movies_ref, train_ref, CFG_TINY, 7, str(tmp_path / "run2"), 60.0)
    assert out.stage == "features" and out.facts["embedding_dim"] == 16
    # same inputs, same bytes: every file of the re-run has the same fingerprint
    assert {k: r.fingerprint for k, r in out.artifacts.items()} == {
        k: r.fingerprint for k, r in result["artifacts"].items()
    }
