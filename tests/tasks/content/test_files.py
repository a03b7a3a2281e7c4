"""Tests for tasks/content/_files.py: the derived tables, the suites that check them, and the
files written and read back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.content import (
    ITEM_IDX,
    embedding_row_table,
    load_content_features,
    neighbor_table,
    save_content_features,
)
from tests.tasks.content.catalogues import EXPECTATIONS


def test_derived_tables(tiny_features):
    f = tiny_features
    rows = embedding_row_table(f.embeddings)
    assert list(rows.columns) == ["row", "norm", "all_finite", "n_nonzero"]
    assert rows["all_finite"].all() and np.allclose(rows["norm"], 1.0, atol=1e-5)
    broken = f.embeddings.copy()
    broken[2, 0] = np.nan
    assert embedding_row_table(broken)["all_finite"].tolist().count(False) == 1
    nb = neighbor_table(f.item_ids, f.neighbor_idx, f.neighbor_sim)
    assert len(nb) == 8 * 3 and not nb["is_self"].any()
    assert nb[Col.RANK].tolist()[:3] == [1, 2, 3]
    assert set(nb["neighbor_id"]) <= set(f.item_ids.tolist())


def test_suites_accept_good_tables_and_reject_bad(tiny_features):
    """The three suites in expectations/ run in GX against the derived tables."""
    import great_expectations as gx

    def run(df: pd.DataFrame, suite_name: str) -> bool:
        raw = json.loads((EXPECTATIONS / f"{suite_name}.json").read_text())
        context = gx.get_context(mode="ephemeral")
        batch = (
            context.data_sources.add_pandas("pandas")
            .add_dataframe_asset("asset")
            .add_batch_definition_whole_dataframe("batch")
            .get_batch(batch_parameters={"dataframe": df})
        )
        suite = gx.ExpectationSuite(**raw)
        assert len(suite.expectations) == len(raw["expectations"])
        return batch.validate(suite).success

    f = tiny_features
    from tasks.collaborative import factor_row_table

    assert run(embedding_row_table(f.embeddings), "embeddings")
    assert not run(embedding_row_table(f.embeddings * 2), "embeddings")
    assert run(neighbor_table(f.item_ids, f.neighbor_idx, f.neighbor_sim), "item_neighbors")
    selfish = f.neighbor_idx.copy()
    selfish[0, 0] = 0
    assert not run(neighbor_table(f.item_ids, selfish, f.neighbor_sim), "item_neighbors")
    factors = np.array([[0.5, 1.0], [0.0, 0.0]], np.float32)
    assert run(factor_row_table(factors, np.array([True, False])), "factors")
    assert not run(factor_row_table(factors, np.array([True, True])), "factors")


def test_save_and_load_round_trip(tmp_path, tiny_features):
    refs = save_content_features(tiny_features, tmp_path)
    assert (tmp_path / "models" / "content_embeddings.npy").exists()
    assert not list((tmp_path / "models").glob("*.npy.npy")) and not list(
        (tmp_path / "models").glob(".*tmp*")
    )
    for source in (tmp_path, refs):
        back = load_content_features(source)
        assert np.array_equal(back.item_ids, tiny_features.item_ids)
        assert np.array_equal(back.embeddings, tiny_features.embeddings)
        assert back.genre_names == tiny_features.genre_names
        assert np.array_equal(back.genre_matrix, tiny_features.genre_matrix)
        assert back.provider_names == tiny_features.provider_names
        assert np.array_equal(back.neighbor_idx, tiny_features.neighbor_idx)
        assert np.array_equal(back.neighbor_sim, tiny_features.neighbor_sim)
        pd.testing.assert_frame_equal(back.numeric, tiny_features.numeric)
    index = pd.read_parquet(tmp_path / "models" / "item_index.parquet")
    assert index[ITEM_IDX].tolist() == list(range(8)) and index[Col.ITEM].is_monotonic_increasing
