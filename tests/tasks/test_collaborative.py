"""Tests for tasks/collaborative.py: the checkerboard known answer, the index convention, files."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.collaborative import (
    collab_core,
    factor_row_table,
    fit_collab,
    fit_collaborative,
    interaction_matrix,
    load_collab_model,
    save_collab_model,
)
from tasks.columns import Col
from tasks.content import ITEM_IDX, USER_IDX
from tasks.errors import InputDataError
from tasks.io import ArtifactRef, write_table
from tasks.profile import CollabSection

N = 50


def checkerboard_train(n: int = N) -> pd.DataFrame:
    """Even users rated every even item, odd users every odd item - except item == user (withheld).

    The withheld item is liked by every other user of the same parity, so it must come first.
    Ids are offset (users 1001.., items 5..) so positions, not ids, are tested.
    """
    users, items = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = ((users + items) % 2 == 0) & (users != items)
    return pd.DataFrame(
        {
            Col.USER: (users[keep] + 1001).astype(np.int32),
            Col.ITEM: (items[keep] * 2 + 5).astype(np.int32),
            Col.RATING: np.full(int(keep.sum()), 4.0, np.float32),
            Col.TIMESTAMP: np.arange(int(keep.sum()), dtype=np.int64),
        }
    )


USER_IDS = np.arange(N, dtype=np.int32) + 1001
ITEM_IDS = np.arange(N, dtype=np.int32) * 2 + 5


def top_unseen(model, train: pd.DataFrame) -> np.ndarray:
    scores = model.scores(np.arange(len(model.user_ids)))
    seen = interaction_matrix(train, model.user_ids, model.item_ids).toarray() > 0
    scores[seen] = -np.inf
    return scores.argmax(axis=1)


@pytest.mark.parametrize(
    "cfg",
    [
        CollabSection(
            model="als", factors=2, regularization=0.01, iterations=15, confidence_alpha=10.0
        ),
        CollabSection(model="puresvd", factors=4),
    ],
    ids=["als", "puresvd"],
)
def test_checkerboard_withheld_item_is_recommended_first(cfg):
    train = checkerboard_train()
    model = fit_collaborative(train, USER_IDS, ITEM_IDS, cfg, seed=3)
    assert model.model_name == cfg.model
    assert model.user_factors.shape == (N, cfg.factors) and model.user_factors.dtype == np.float32
    assert model.item_factors.shape == (N, cfg.factors) and model.item_factors.dtype == np.float32
    assert np.array_equal(top_unseen(model, train), np.arange(N))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_als_default_profile_also_finds_the_withheld_item(seed):
    train = checkerboard_train()
    model = fit_collaborative(train, USER_IDS, ITEM_IDS, CollabSection(), seed=seed)
    assert np.array_equal(top_unseen(model, train), np.arange(N))


@pytest.mark.parametrize("name", ["als", "puresvd"])
def test_deterministic_for_a_seed(name):
    train = checkerboard_train(20)
    cfg = CollabSection(model=name, factors=5, iterations=5)
    a = fit_collaborative(train, USER_IDS[:20], ITEM_IDS[:20], cfg, seed=11)
    b = fit_collaborative(train, USER_IDS[:20], ITEM_IDS[:20], cfg, seed=11)
    assert np.array_equal(a.user_factors, b.user_factors)
    assert np.array_equal(a.item_factors, b.item_factors)


@pytest.mark.parametrize("name", ["als", "puresvd"])
def test_users_and_items_without_ratings_get_zero_rows(name):
    train = checkerboard_train(10)
    user_ids = np.concatenate([USER_IDS[:10], [5000]]).astype(np.int32)  # a test-only user
    item_ids = np.concatenate([[1], ITEM_IDS[:10], [9999]]).astype(np.int32)  # two unrated movies
    model = fit_collaborative(
        train, user_ids, item_ids, CollabSection(model=name, factors=4), seed=1
    )
    assert model.user_factors.shape == (11, 4) and model.item_factors.shape == (12, 4)
    assert model.user_has_factors.tolist() == [True] * 10 + [False]
    assert model.item_has_factors.tolist() == [False] + [True] * 10 + [False]
    assert not model.user_factors[10].any()
    assert not model.item_factors[[0, 11]].any()
    assert model.item_index([9999]).tolist() == [11]
    table = factor_row_table(model.item_factors, model.item_has_factors)
    assert table["zero_iff_no_factors"].all() and table["all_finite"].all()


def test_confidence_weighting_in_the_matrix():
    train = pd.DataFrame(
        {
            Col.USER: [1, 1, 2],
            Col.ITEM: [10, 20, 20],
            Col.RATING: [5.0, 1.0, 3.0],
            Col.TIMESTAMP: [1, 2, 3],
        }
    )
    m = interaction_matrix(train, np.array([1, 2]), np.array([10, 20, 30]))
    assert m.shape == (2, 3) and m.toarray().tolist() == [[5.0, 1.0, 0.0], [0.0, 3.0, 0.0]]


def test_unknown_ids_are_input_errors():
    train = checkerboard_train(6)
    with pytest.raises(InputDataError, match="user_id"):
        fit_collaborative(train, USER_IDS[:5], ITEM_IDS[:6], CollabSection(), seed=0)
    with pytest.raises(InputDataError, match="sorted"):
        fit_collaborative(train, USER_IDS[:6][::-1], ITEM_IDS[:6], CollabSection(), seed=0)


def test_als_on_movielens_beats_chance(ml_small_dir: Path):
    """ALS on ml-latest-small, per-user temporal 80/20 split: Recall@10 far above random (~0.001)."""
    r = pd.read_csv(ml_small_dir / "ratings.csv").rename(
        columns={
            "userId": Col.USER,
            "movieId": Col.ITEM,
            "rating": Col.RATING,
            "timestamp": Col.TIMESTAMP,
        }
    )
    r = r.sort_values([Col.USER, Col.TIMESTAMP, Col.ITEM], kind="stable")
    pos = r.groupby(Col.USER).cumcount()
    size = r.groupby(Col.USER)[Col.ITEM].transform("size")
    is_test = pos >= size - np.maximum(1, np.round(0.2 * size))
    train, test = r[~is_test], r[is_test & (r[Col.RATING] >= 4.0)]
    items = np.unique(pd.read_csv(ml_small_dir / "movies.csv")["movieId"]).astype(np.int32)
    users = np.unique(r[Col.USER]).astype(np.int32)
    model = fit_collaborative(train, users, items, CollabSection(), seed=42)
    u = model.user_index(test[Col.USER].unique())
    scores = model.scores(u)
    seen = interaction_matrix(train, model.user_ids, model.item_ids)[u].toarray() > 0
    scores[seen] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    truth = test.groupby(Col.USER)[Col.ITEM].agg(
        lambda s: set(model.item_index(s.to_numpy()).tolist())
    )
    recall = np.mean(
        [
            len(set(top[j].tolist()) & truth[uid]) / len(truth[uid])
            for j, uid in enumerate(model.user_ids[u])
        ]
    )
    assert 0.03 < recall < 0.3  # honest full-catalogue recall on MovieLens is about 0.07


def test_save_load_and_stage(tmp_path):
    train = checkerboard_train(12)
    cohorts = pd.DataFrame(
        {
            Col.USER: np.concatenate([USER_IDS[:12], [7777]]).astype(np.int32),
            Col.N_TRAIN: np.zeros(13, np.int32),
            Col.COHORT: ["light"] * 13,
            Col.SIMULATED_COLD: [False] * 13,
        }
    )
    movies = pd.DataFrame({Col.ITEM: ITEM_IDS[:12][::-1].copy(), Col.TITLE: ["m"] * 12})
    refs = {
        "train": write_table(train, tmp_path, "data/train.parquet"),
        "cohorts": write_table(cohorts, tmp_path, "data/cohorts.parquet"),
        "movies": write_table(movies, tmp_path, "data/movies.parquet"),
    }
    cfg = CollabSection(factors=4, iterations=5)
    result = collab_core(
        *(str(refs[k].path) for k in ("train", "cohorts", "movies")), cfg, 2, str(tmp_path)
    )
    assert set(result["artifacts"]) >= {
        "user_factors",
        "item_factors",
        "user_index",
        "collab_item_index",
    }
    assert all(isinstance(ref, ArtifactRef) for ref in result["artifacts"].values())
    assert result["facts"]["users_with_factors"] == 12 and result["facts"]["n_users"] == 13
    assert not list((tmp_path / "models").glob("*.npy.npy"))
    users = pd.read_parquet(tmp_path / "models" / "user_index.parquet")
    assert users.columns.tolist() == [Col.USER, USER_IDX, "has_factors"]
    assert users[Col.USER].is_monotonic_increasing and users["has_factors"].tolist() == [
        True
    ] * 12 + [False]
    items = pd.read_parquet(tmp_path / "models" / "collab_item_index.parquet")
    assert items[Col.ITEM].tolist() == sorted(ITEM_IDS[:12].tolist()) and items[
        ITEM_IDX
    ].tolist() == list(range(12))
    for source in (tmp_path, result["artifacts"]):
        back = load_collab_model(source)
        fresh = fit_collaborative(train, back.user_ids, back.item_ids, cfg, seed=2)
        assert np.array_equal(back.user_factors, fresh.user_factors)
        assert np.array_equal(back.item_factors, fresh.item_factors)
        assert back.model_name == "als" and back.user_has_factors.sum() == 12
    out = fit_collab.fn(
        refs["train"], refs["cohorts"], refs["movies"], cfg, 2, str(tmp_path / "run2"), 60.0
    )
    assert out.stage == "collaborative"
    # same inputs, same bytes: every file of the re-run has the same fingerprint
    assert {k: r.fingerprint for k, r in out.artifacts.items()} == {
        k: r.fingerprint for k, r in result["artifacts"].items()
    }


def _als_workers_of(parent_pid: int) -> dict[int, str]:
    """ALS worker processes started by ``parent_pid``: pid -> work folder (their arguments)."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[-2] == str(parent_pid).encode() and b"movierec-als-" in argv[-3]:
            found[int(proc.name)] = argv[-3].decode()
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_als_worker_dies_with_a_killed_stage():
    """A stage killed at its budget takes its ALS worker process with it."""
    rng = np.random.default_rng(0)
    n = 300_000
    train = pd.DataFrame(
        {
            Col.USER: rng.integers(0, 5000, n).astype(np.int32),
            Col.ITEM: rng.integers(0, 3000, n).astype(np.int32),
            Col.RATING: np.full(n, 4.0, np.float32),
        }
    )
    cfg = CollabSection(factors=64, iterations=500)
    pid = os.fork()
    if pid == 0:  # the "stage": fits until killed
        try:
            fit_collaborative(train, np.arange(5000), np.arange(3000), cfg, seed=0)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 20
        while not _als_workers_of(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _als_workers_of(pid)
        assert workers, "the ALS worker never started"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    deadline = time.monotonic() + 5
    while _als_workers_of(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _als_workers_of(pid)
    for folder in workers.values():  # a killed stage cannot clean its temporary folder
        shutil.rmtree(folder, ignore_errors=True)


def test_save_collab_model_writes_float32(tmp_path):
    model = fit_collaborative(
        checkerboard_train(8), USER_IDS[:8], ITEM_IDS[:8], CollabSection(factors=3), 0
    )
    save_collab_model(model, tmp_path)
    assert np.load(tmp_path / "models" / "user_factors.npy").dtype == np.float32
