"""Tests for tasks/ranking/_store.py: a run's ranking arrays are built once, stored beside the runs
and memory-mapped by later readers - equal to a fresh build, field by field; a changed input file
or setting builds (and stores) again; a damaged entry or a read-only folder only costs a build."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.ranking import RecommenderArrays, rank_batch, read_policy
from tasks.ranking._store import STORE_DIR


@pytest.fixture
def run_copy(ml_ranking_run, tmp_path):
    """A copy of the real run (its own folder, so its store starts empty)."""
    run = tmp_path / "ml-latest-small" / ml_ranking_run["run_dir"].name
    shutil.copytree(ml_ranking_run["run_dir"], run)
    return run


def entries(run):
    folder = run.parent / STORE_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_same_arrays(a: RecommenderArrays, b: RecommenderArrays) -> None:
    for f in dataclasses.fields(RecommenderArrays):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if sp.issparse(x):
            assert (x != y).nnz == 0 and x.shape == y.shape, f.name
            assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices), f.name
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name
        else:
            assert x == y, f.name


def test_the_second_reader_maps_what_the_first_built(run_copy):
    built = RecommenderArrays.base_from_run(run_copy)
    assert len(entries(run_copy)) == 1
    mapped = RecommenderArrays.base_from_run(run_copy)
    assert isinstance(mapped.profiles, np.memmap)
    assert not mapped.seen.indices.flags.owndata  # a view of the mapped file, not a copy
    assert_same_arrays(built, mapped)
    # and a ranking over them is the same, list for list
    policy, _ = read_policy(run_copy)
    from tasks.cf import load_cf_model

    cf = load_cf_model(run_copy / "models/cf/policy", ratings=built.seen)
    users = np.arange(0, built.n_users, 7)
    one = rank_batch(built.with_cf(cf), users, policy)
    two = rank_batch(mapped.with_cf(cf), users, policy)
    assert np.array_equal(one["item_idx"], two["item_idx"])
    assert np.allclose(one["score"], two["score"], equal_nan=True)


def test_each_split_and_setting_has_its_own_entry(run_copy):
    RecommenderArrays.base_from_run(run_copy)
    val = RecommenderArrays.base_from_run(run_copy, split="validation")
    RecommenderArrays.base_from_run(run_copy, relevance_threshold=3.0)
    assert len(entries(run_copy)) == 3
    assert_same_arrays(val, RecommenderArrays.base_from_run(run_copy, split="validation"))


def test_a_rewritten_input_file_is_built_again(run_copy):
    before = RecommenderArrays.base_from_run(run_copy)
    train = run_copy / "data" / "train.parquet"
    import pandas as pd

    frame = pd.read_parquet(train)
    frame.iloc[:-1].to_parquet(train.with_suffix(".new"))  # one rating fewer, a new file
    os.replace(train.with_suffix(".new"), train)
    after = RecommenderArrays.base_from_run(run_copy)
    assert after.seen.nnz == before.seen.nnz - 1
    assert len(entries(run_copy)) == 2


def test_a_damaged_entry_is_built_again_and_an_unwritable_store_is_not_an_error(run_copy, capsys):
    first = RecommenderArrays.base_from_run(run_copy)
    (entry,) = entries(run_copy)
    (run_copy.parent / STORE_DIR / entry / "profiles.npy").write_bytes(b"not an array")
    again = RecommenderArrays.base_from_run(run_copy)
    assert "ignoring the stored ranking arrays" in capsys.readouterr().out
    assert_same_arrays(first, again)
    # a store that cannot be written (here a file where its folder should be; root ignores
    # permission bits): the arrays are built, with a warning, and nothing else changes
    shutil.rmtree(run_copy.parent / STORE_DIR)
    (run_copy.parent / STORE_DIR).write_text("not a folder")
    assert_same_arrays(first, RecommenderArrays.base_from_run(run_copy))
    assert "could not store the ranking arrays" in capsys.readouterr().out
