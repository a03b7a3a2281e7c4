"""The search on a planted structure: item blocks that co-occur (what EASE and item kNN see) and
content that says nothing. A tiny search (3 trials per study) must end at least as good as the
best tuned baseline on validation, prefer a CF model to popularity, and lean on CF (alpha 0 is
always on the grid). Re-running it with the same trial store computes nothing and chooses the
same; a trial missing from the store is recomputed with the same result."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.columns import Col
from tasks.profile import CandidatesSection, CollabSection, PolicySection, TuningSection
from tasks.ranking import RankingPolicy, RecommenderArrays
from tasks.tuning import TrialStore, ValidationBench, run_search

N_BLOCKS, BLOCK_ITEMS, USERS_PER_BLOCK = 4, 30, 40


def _planted(seed: int = 0):
    """Users of block b rated most items of block b (and a few random popular ones); each user's
    validation item is an unrated item of its own block. Content embeddings are random noise."""
    rng = np.random.default_rng(seed)
    n_items = N_BLOCKS * BLOCK_ITEMS
    rows, t_rows = [], []
    user = 0
    for b in range(N_BLOCKS):
        items = np.arange(b * BLOCK_ITEMS, (b + 1) * BLOCK_ITEMS)
        for _ in range(USERS_PER_BLOCK):
            user += 1
            liked = rng.choice(items, size=12, replace=False)
            noise = rng.choice(n_items, size=2, replace=False)
            for ts, item in enumerate(np.unique(np.r_[liked[:-1], noise])):
                rows.append((user, int(item) + 1, 5.0 if item in liked else 2.0, 1_000_000 + ts))
            t_rows.append((user, int(liked[-1]) + 1, 5.0, 2_000_000))
    train = pd.DataFrame(rows, columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]).astype(
        {Col.USER: "int32", Col.ITEM: "int32", Col.RATING: "float32", Col.TIMESTAMP: "int64"}
    )
    train = train.drop_duplicates([Col.USER, Col.ITEM], keep="first")
    val = pd.DataFrame(t_rows, columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP])
    val = val.merge(train[[Col.USER, Col.ITEM]], how="left", indicator=True)
    val = val.loc[val["_merge"] == "left_only"].drop(columns="_merge")
    emb = rng.normal(size=(n_items, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    nb = np.argsort(-(emb @ emb.T), axis=1)[:, 1:11].astype(np.int32)
    content = types.SimpleNamespace(
        item_ids=np.arange(1, n_items + 1, dtype=np.int32),
        embeddings=emb,
        neighbor_idx=nb,
        genre_names=["Drama"],
        genre_matrix=np.ones((n_items, 1), bool),
        provider_names=[],
        provider_matrix=np.zeros((n_items, 0), bool),
        numeric=pd.DataFrame({Col.YEAR: pd.array([2000] * n_items, dtype="Int32")}),
    )
    users = np.arange(1, user + 1, dtype=np.int32)
    n_train = train.groupby(Col.USER).size().reindex(users).to_numpy()
    cohorts = pd.DataFrame({Col.USER: users, Col.COHORT: np.where(n_train <= 12, "light", "medium")})
    base = RecommenderArrays.from_parts(content, None, train, user_ids=users, cohorts=cohorts)
    u = base.user_index(val[Col.USER].to_numpy())
    i = val[Col.ITEM].to_numpy() - 1
    relevant = sp.csr_matrix((np.ones(len(u), bool), (u, i)), shape=(base.n_users, base.n_items))
    bench_users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    return base, bench_users, relevant[bench_users]


@pytest.fixture(scope="module")
def planted():
    from tasks.cf import ImplicitWorker

    base, users, relevant = _planted()
    with ImplicitWorker(num_threads=1) as worker:
        yield base, users, relevant, worker


def _search(planted, store_dir, n_trials=3, budget_seconds=900.0):
    import optuna

    base, users, relevant, worker = planted
    bench = ValidationBench(base, users, relevant, seed=1, threads=1, worker=worker)
    candidates = CandidatesSection(n_cf_seed=60, c_max=100, k_final=20, m_seed_items=5, k_neighbors=10)
    cfg = TuningSection(n_trials=n_trials, alpha_grid=(0.0, 0.5, 1.0), seed=7, budget_seconds=budget_seconds)
    seed_cf = CollabSection(model="als", factors=8, iterations=5)
    seed_policy = RankingPolicy.from_profile(candidates, PolicySection())
    outcome = run_search(
        bench, cfg, seed_cf, candidates, seed_policy, 4.0,
        storage=optuna.storages.InMemoryStorage(), store=TrialStore(store_dir), ease_allowed=True,
    )  # fmt: skip
    return outcome


def test_the_search_ends_at_least_as_good_as_the_best_tuned_baseline(planted, tmp_path):
    outcome = _search(planted, tmp_path / "store")
    studies = outcome.studies
    best_baseline = max(v.best_value for k, v in studies.items() if k != "policy" and not v.skipped)
    assert studies["policy"].best_value >= best_baseline - 1e-12
    cf_models = [studies[m].best_value for m in ("ease", "item_knn")]
    assert max(cf_models) > studies["popularity"].best_value  # the blocks are learnable
    assert studies["policy"].best_attrs["alphas"]["light"] < 1.0  # content is noise here
    assert all(s.n_trials >= 1 for s in studies.values())
    assert not outcome.cut_short
    # the warm starts (each tuned CF baseline as a pure-CF policy, then the seed) all ran
    warm = [t for t in studies["policy"].trials if t["enqueued"]]
    assert len(warm) >= 3 and all(t["state"] == "complete" for t in studies["policy"].trials)


def test_one_trial_per_study_still_runs_every_warm_start(planted, tmp_path):
    outcome = _search(planted, tmp_path / "store", n_trials=1)
    policy = outcome.studies["policy"]
    assert sum(t["enqueued"] for t in policy.trials) == policy.n_trials >= 3
    best_cf = max(outcome.studies[m].best_value for m in ("ease", "item_knn", "als"))
    assert policy.best_value >= best_cf - 1e-12


def test_a_rerun_reads_every_trial_back_and_chooses_the_same(planted, tmp_path):
    first = _search(planted, tmp_path / "store")
    again = _search(planted, tmp_path / "store")
    for name, study in again.studies.items():
        if name != "popularity":
            assert study.n_cached == study.n_trials, name
        assert study.best_params == first.studies[name].best_params
        assert study.best_value == pytest.approx(first.studies[name].best_value)
    # a "killed" search: drop the policy study's stored trials; they are recomputed, same answer
    for path in (tmp_path / "store" / "policy").glob("*.json"):
        path.unlink()
    resumed = _search(planted, tmp_path / "store")
    assert resumed.studies["policy"].n_cached < resumed.studies["policy"].n_trials
    assert resumed.studies["policy"].best_params == first.studies["policy"].best_params


def test_what_the_search_chooses_does_not_depend_on_a_time_budget_that_does_not_bind(planted, tmp_path):
    """Only the inputs, the seed and the trial count decide: a budget 10^6 times larger that
    binds neither gives the same choice (fresh stores: nothing read back)."""
    a = _search(planted, tmp_path / "a", budget_seconds=600.0)
    b = _search(planted, tmp_path / "b", budget_seconds=6e8)
    assert not a.cut_short and not b.cut_short
    for name in a.studies:
        assert a.studies[name].best_params == b.studies[name].best_params, name
    assert a.studies["policy"].best_attrs["alphas"] == b.studies["policy"].best_attrs["alphas"]
