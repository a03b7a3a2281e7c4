"""Tests for tasks/cf/_io.py: save / load round trips give identical scores and identical bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf import FILES, fit_cf, load_cf_model, save_cf_model
from tasks.errors import InputDataError, UsageError
from tasks.io import file_fingerprint, read_table
from tasks.profile import CollabSection

CONFIGS = {
    "als": CollabSection(model="als", factors=3, iterations=4, confidence="log", min_rating=1.0),
    "ease": CollabSection(model="ease", ease_lambda=5.0, min_rating=1.0),
    "item_knn": CollabSection(model="item_knn", knn_k=5, knn_weighting="bm25", min_rating=1.0),
    "puresvd": CollabSection(model="puresvd", factors=3, min_rating=1.0),
}
KIND_FILES = {
    "als": {"user_factors", "item_factors"},
    "puresvd": {"user_factors", "item_factors"},
    "ease": {"ease_weights", "ease_items"},
    "item_knn": {"knn_similarity"},
}


@pytest.fixture(scope="module")
def ratings(make_ratings):
    r = make_ratings(24, 18, 0.3, seed=9).tolil()
    r[:, 2] = 0  # an item nobody rated
    r[5, :] = 0  # a user without ratings
    r = r.tocsr()
    r.eliminate_zeros()
    return r


USER_IDS = np.arange(24, dtype=np.int32) * 2 + 1
ITEM_IDS = np.arange(18, dtype=np.int32) + 100


@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_gives_identical_scores(name, ratings, tmp_path, implicit_worker):
    model = fit_cf(ratings, USER_IDS, ITEM_IDS, CONFIGS[name], seed=4, worker=implicit_worker)
    refs = save_cf_model(model, tmp_path, "models/cf/policy")
    assert set(refs) == {"cf_meta", "user_index", "item_index"} | KIND_FILES[name]
    assert all(ref.relpath.startswith("models/cf/policy/") for ref in refs.values())
    users = np.arange(24)
    expected = model.scores(users)
    for source in (tmp_path / "models/cf/policy", refs):  # a folder or the refs mapping
        loaded = load_cf_model(source, ratings=ratings)
        assert type(loaded) is type(model) and loaded.config == model.config
        assert np.array_equal(loaded.scores(users), expected)
        assert np.array_equal(loaded.user_ids, USER_IDS) and np.array_equal(
            loaded.item_ids, ITEM_IDS
        )
        assert np.array_equal(loaded.user_known, model.user_known)
        assert np.array_equal(loaded.item_known, model.item_known)
        assert not loaded.item_known[2] and not loaded.user_known[5]
    index = read_table(refs["item_index"].path)
    assert index.columns.tolist() == ["movie_id", "item_idx", "known"]
    assert index["movie_id"].dtype == np.int32 and index["item_idx"].dtype == np.int32
    meta = json.loads(refs["cf_meta"].path.read_text())
    assert meta["kind"] == model.kind and meta["config"]["model"] == name
    assert "fit_s" not in meta["info"] and "prepare_s" not in meta["info"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_inputs_same_bytes(name, ratings, tmp_path, implicit_worker):
    fingerprints = []
    for run in ("a", "b"):
        model = fit_cf(ratings, USER_IDS, ITEM_IDS, CONFIGS[name], seed=4, worker=implicit_worker)
        refs = save_cf_model(model, tmp_path / run, "cf")
        fingerprints.append({k: ref.fingerprint for k, ref in refs.items()})
    assert fingerprints[0] == fingerprints[1]


def test_knn_file_is_a_scipy_npz(ratings, tmp_path, implicit_worker):
    model = fit_cf(ratings, USER_IDS, ITEM_IDS, CONFIGS["item_knn"], seed=0, worker=implicit_worker)
    refs = save_cf_model(model, tmp_path, "cf")
    loaded = sp.load_npz(refs["knn_similarity"].path)
    assert (loaded != model.similarity).nnz == 0 and loaded.dtype == np.float32
    assert file_fingerprint(refs["knn_similarity"].path) == refs["knn_similarity"].fingerprint


def test_item_item_models_need_the_same_ratings(ratings, tmp_path):
    model = fit_cf(ratings, USER_IDS, ITEM_IDS, CONFIGS["ease"], seed=0)
    save_cf_model(model, tmp_path, "cf")
    with pytest.raises(UsageError, match="ratings="):
        load_cf_model(tmp_path / "cf")
    other = ratings.tolil()
    other[0, 2] = 4.0
    with pytest.raises(InputDataError, match="not the ones"):
        load_cf_model(tmp_path / "cf", ratings=other.tocsr())
    with pytest.raises(InputDataError, match="index has"):
        load_cf_model(tmp_path / "cf", ratings=ratings[:10])
    # a rating below min_rating changes nothing: the kept pairs are the same
    low = ratings.tolil()
    low[0, 2] = 0.5
    assert np.array_equal(
        load_cf_model(tmp_path / "cf", ratings=low.tocsr()).scores([0]), model.scores([0])
    )


def test_factor_models_load_without_ratings_and_missing_files_are_named(ratings, tmp_path):
    model = fit_cf(ratings, USER_IDS, ITEM_IDS, CONFIGS["puresvd"], seed=0)
    save_cf_model(model, tmp_path, "cf")
    assert np.array_equal(load_cf_model(tmp_path / "cf").scores([1, 2]), model.scores([1, 2]))
    (tmp_path / "cf" / FILES["item_factors"]).unlink()
    with pytest.raises(UsageError, match="item_factors.npy"):
        load_cf_model(tmp_path / "cf")
