"""Evaluation: exact top-k and MMR helpers, the alpha re-ranker equals the real candidate path,
checkpoint/resume (an exception injected in batch 3), the grid's time budget, and the whole stage
end to end on ml-latest-small (reports, charts, the metrics suite, every test user evaluated)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks import evaluation as ev
from tasks.candidates import (
    SUB_BATCH,
    RecommenderArrays,
    _concat_pools,
    _context,
    _generate,
    _Workspace,
    mmr_rerank,
    recommend_batch,
)
from tasks.columns import Col
from tasks.hybrid import policy_alphas
from tasks.io import ArtifactRef
from tasks.metrics import metrics_long_table, paired_tests_table
from tasks.profile import CandidatesSection, load_profile
from tasks.stage import StageOutput

# --------------------------------------------------------------------------------------------
# small random arrays (cold users, items without factors, ties)
# --------------------------------------------------------------------------------------------
CFG = CandidatesSection(
    n_cf_seed=40, m_seed_items=4, k_neighbors=6, c_max=70, k_final=10, lambda_div=0.3
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def small_arrays(
    seed: int = 3, n_users: int = 70, n_items: int = 300, dim: int = 24
) -> RecommenderArrays:
    rng = np.random.default_rng(seed)
    emb = _unit(rng.standard_normal((n_items, dim)))
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    neighbors = np.argsort(-sims, axis=1, kind="stable")[:, :6].astype(np.int32)
    seen = sp.random(
        n_users, n_items, density=0.05, random_state=seed, format="csr", dtype=np.float32
    )
    seen.data = rng.choice(np.arange(1, 11) / 2, size=seen.nnz).astype(np.float32)
    keep = np.ones(n_users, np.float32)
    keep[5] = 0.0  # a user without history
    seen = sp.csr_matrix(sp.diags(keep) @ seen)
    seen.eliminate_zeros()
    user_f = rng.standard_normal((n_users, 5)).astype(np.float32)
    user_has = np.ones(n_users, bool)
    user_has[[5, 9]] = False
    user_f[~user_has] = 0
    item_f = rng.standard_normal((n_items, 5)).astype(np.float32)
    item_has = rng.random(n_items) > 0.1
    item_f[~item_has] = 0
    profiles = np.zeros((n_users, dim), np.float32)
    for u in range(n_users):
        row = seen[u]
        if row.nnz:
            profiles[u] = _unit((row.data[:, None] * emb[row.indices]).sum(axis=0, keepdims=True))[
                0
            ]
    seeds = np.full((n_users, 4), -1, np.int32)
    for u in range(n_users):
        items = seen[u].indices[:4]
        seeds[u, : len(items)] = items
    return RecommenderArrays(
        item_ids=np.arange(1, n_items + 1, dtype=np.int32) * 3,
        user_ids=np.arange(1, n_users + 1, dtype=np.int32) * 7,
        embeddings=emb,
        neighbor_idx=neighbors,
        user_factors=user_f,
        item_factors=item_f,
        user_has_factors=user_has,
        item_has_factors=item_has,
        profiles=profiles,
        quality=np.round(rng.random(n_items), 1).astype(np.float32),  # rounded: ties in the boosts
        recency=rng.random(n_items).astype(np.float32),
        genre_names=["A", "B"],
        genre_matrix=rng.random((n_items, 2)) < 0.5,
        provider_names=["P"],
        provider_matrix=rng.random((n_items, 1)) < 0.3,
        seen=seen,
        seed_items=seeds,
        cohorts=rng.choice(np.array(["cold", "light", "medium", "heavy"], dtype=object), n_users),
        content_rank=8,
        mmr_rank=12,
    )


ARRAYS = small_arrays()


def _pools(arrays, users, cfg=CFG, k=10):
    ctx = _context(arrays, cfg, None, None, k)
    ws = _Workspace(SUB_BATCH, arrays.n_items)
    pool = _concat_pools(
        [
            _generate(arrays, users[i : i + SUB_BATCH], cfg, ctx, ws)
            for i in range(0, len(users), SUB_BATCH)
        ],
        cfg.c_max,
    )
    return pool, ctx, ws


@pytest.mark.parametrize("alpha", [0.0, 0.15, 0.5, 1.0])
def test_rerank_alphas_equals_the_real_candidate_path(alpha):
    users = np.arange(ARRAYS.n_users)
    pool, ctx, ws = _pools(ARRAYS, users)
    cos = ARRAYS.profiles[users] @ ARRAYS.embeddings.T
    parts = ev._pool_parts(ARRAYS, users, pool, CFG, ctx, ws, cos)
    mine = ev.rerank_alphas(ARRAYS, parts, alpha, CFG, CFG.k_final)
    real = recommend_batch(ARRAYS, users, np.full(len(users), alpha, np.float32), CFG)["item_idx"]
    np.testing.assert_array_equal(mine, real)


def test_mmr_select_equals_mmr_rerank_including_ties():
    rng = np.random.default_rng(0)
    emb = _unit(rng.standard_normal((50, 6)))
    pool = np.stack([rng.permutation(50)[:20] for _ in range(30)])
    pool[0, 15:] = -1
    rel = np.round(rng.random((30, 20)), 1).astype(np.float32)  # many ties
    rel[1, 3] = np.nan
    g = emb[np.maximum(pool, 0)]
    sim = np.matmul(g, g.transpose(0, 2, 1))
    for lam in (0.0, 0.25, 1.0):
        np.testing.assert_array_equal(
            ev.mmr_select(pool, rel, sim, lam, 12),
            mmr_rerank(pool, rel, None, lam, 12, similarity=sim),
        )


def test_top_k_dense_matches_a_stable_sort_with_ties_and_minus_inf():
    rng = np.random.default_rng(1)
    s = np.round(rng.standard_normal((40, 5000)), 1).astype(np.float32)  # heavy ties
    s[0, :] = -np.inf
    s[1, 4990:] = 9.0
    s[2, :4995] = -np.inf  # fewer than k finite entries
    got = ev.top_k_dense(s, 20)
    for r in range(len(s)):
        finite = np.flatnonzero(np.isfinite(s[r]))
        order = finite[np.lexsort((finite, -s[r, finite]))][:20]
        expect = np.full(20, -1)
        expect[: len(order)] = order
        np.testing.assert_array_equal(got[r], expect)


def test_cf_full_from_pool_is_the_exact_catalogue_top_k():
    users = np.flatnonzero(ARRAYS.user_has_factors)
    pool, _, _ = _pools(ARRAYS, users)
    got = ev._cf_full_from_pool(pool, ARRAYS, 10)
    scores = ARRAYS.user_factors[users] @ ARRAYS.item_factors.T
    scores[:, ~(ARRAYS.item_has_factors & ARRAYS.has_metadata)] = -np.inf
    seen = ARRAYS.seen[users].toarray() > 0
    scores[seen] = -np.inf
    for r in range(len(users)):
        cols = np.flatnonzero(np.isfinite(scores[r]))
        expect = cols[np.lexsort((cols, -scores[r, cols]))][:10]
        np.testing.assert_array_equal(got[r][: len(expect)], expect)


def test_popularity_lists_skip_seen_items_and_heavy_users():
    seen = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], np.float32))
    order = np.array([0, 1, 2, 3, 4])
    assert ev.popularity_lists(seen, np.array([0, 1]), order, 3).tolist() == [[3, 4, -1], [0, 1, 2]]


def test_stacked_bootstrap_tables_equal_one_call_per_model():
    rng = np.random.default_rng(2)
    n = 120
    labels = rng.choice(np.array(["cold", "light", "heavy"], dtype=object), n)
    per = {
        m: {(x, k): rng.random(n) for x in ("recall", "map", "novelty") for k in (5, 10)}
        for m in ev.MODELS
    }
    recs = {m: np.argsort(rng.random((n, 30)), axis=1)[:, :10].astype(np.int32) for m in ev.MODELS}
    stacked = ev._stacked_metrics_table(per, recs, labels, 40, 100, 0.95, 7)
    single = pd.concat(
        [
            metrics_long_table(m, labels, per[m], 100, 0.95, 7, recs=recs[m], n_items=40)
            for m in ev.MODELS
        ]
    )
    key = ["model", "cohort", "metric", "k"]
    a, b = stacked.set_index(key).sort_index(), single.set_index(key).sort_index()
    assert a.index.equals(b.index)
    np.testing.assert_allclose(
        a[["value", "ci_low", "ci_high"]], b[["value", "ci_low", "ci_high"]], atol=1e-12
    )
    tuned = {k: v for k, v in per["tuned_policy"].items() if k[0] != "novelty"}
    bases = {m: {k: per[m][k] for k in tuned} for m in ev.BASELINE_MODELS}
    paired = ev._stacked_paired_table(tuned, bases, labels, 100, 0.95, 7)
    ref = pd.concat(
        [
            paired_tests_table(
                "tuned_policy", m, labels, tuned, bases[m], 100, 0.95, 7, wilcoxon=False
            )
            for m in bases
        ]
    )
    key = ["baseline", "cohort", "metric", "k"]
    a, b = paired.set_index(key).sort_index(), ref.set_index(key).sort_index()
    cols = ["mean_diff", "ci_low", "ci_high", "p_value"]
    np.testing.assert_allclose(a[cols], b[cols], atol=1e-12)


# --------------------------------------------------------------------------------------------
# ml-latest-small: one run directory built by the real stage cores, shared by the tests below
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml_run(ml_small_dir, tmp_path_factory):
    from tasks.collaborative import collab_core
    from tasks.content import features_core
    from tasks.ingest import ingest_core
    from tasks.split import split_core

    prof = load_profile("ml-latest-small", environ={})
    run = tmp_path_factory.mktemp("artifacts") / prof.name / "run-1"
    run.mkdir(parents=True)
    (run / "profile.toml").write_text(prof.to_toml())
    seed = prof.run.seed
    ing = ingest_core(prof, str(ml_small_dir), str(run))["artifacts"]
    spl = split_core(str(ing["ratings"].path), prof.split, seed, str(run))["artifacts"]
    fea = features_core(
        str(ing["movies"].path), str(spl["train"].path), prof.content, seed, str(run)
    )["artifacts"]
    col = collab_core(
        str(spl["train"].path),
        str(spl["cohorts"].path),
        str(ing["movies"].path),
        prof.collab,
        seed,
        str(run),
    )
    models = {
        **fea,
        **col["artifacts"],
        "train": spl["train"],
        "cohorts": spl["cohorts"],
        "movies": ing["movies"],
    }
    outputs = {
        "features": StageOutput(stage="features", artifacts=fea),
        "collab": StageOutput(stage="collaborative", artifacts=col["artifacts"]),
        "split": spl,
        "movies": ing["movies"],
    }
    return {"run": run, "profile": prof, "models": models, "test": spl["test"], "outputs": outputs}


def _core(ml_run, tmp_path, *, eval_cfg=None, **kwargs):
    prof = ml_run["profile"]
    refs = {**ml_run["models"], "test": ml_run["test"]}
    return ev.evaluation_core(
        str(ml_run["run"]),
        refs,
        eval_cfg or prof.eval,
        prof.candidates,
        prof.policy,
        prof.split,
        prof.run.seed,
        **kwargs,
    )


def _users_with_relevant(test_ref: ArtifactRef) -> int:
    test = pd.read_parquet(test_ref.path)
    return int(test.loc[test[Col.RELEVANT], Col.USER].nunique())


@pytest.mark.slow
def test_end_to_end_on_ml_latest_small(ml_run):
    """The stage task's shell (forked child, budget) on the real data: outputs exist and hold."""
    from tasks.charts import FIGURE_FILES
    from tasks.reports import REPORT_FILES
    from tasks.validation import validate_table

    prof, run = ml_run["profile"], ml_run["run"]
    stages = ml_run["outputs"]
    out = ev.evaluate_models.fn(
        features=stages["features"],
        collab=stages["collab"],
        train=stages["split"]["train"],
        test=stages["split"]["test"],
        cohorts=stages["split"]["cohorts"],
        movies=stages["movies"],
        eval_cfg=prof.eval,
        candidates_cfg=prof.candidates,
        policy=prof.policy,
        split_cfg=prof.split,
        seed=prof.run.seed,
        run_dir=str(run),
        budget_seconds=600,
    )
    facts = out.facts
    assert (
        facts["users_eval"] == _users_with_relevant(ml_run["test"]) == facts["users_with_relevant"]
    )
    for rel in [*REPORT_FILES.values(), *ev.EVAL_FILES.values()]:
        assert (run / rel).is_file(), rel
    for rel in FIGURE_FILES.values():
        data = (run / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, rel
    metrics = pd.read_parquet(run / ev.EVAL_FILES["metrics"])
    summary = validate_table(
        ev.metrics_check_frame(metrics), "metrics", source="eval/metrics.parquet"
    )
    assert summary["success"], summary["failed"]
    assert set(metrics["model"]) == set(ev.MODELS)
    all_rows = metrics.loc[metrics["cohort"] == "all"]
    assert (all_rows["n_users"] == facts["users_eval"]).all()
    tuning = pd.read_csv(run / ev.EVAL_FILES["tuning_results"])
    for col in (
        "alpha",
        "cohort",
        "users_eval",
        "users_skipped",
        "mean_cand",
        "recall@10",
        "map@10",
        "alpha_time_sec",
        "alpha_timed_out",
    ):
        assert col in tuning.columns
    assert set(tuning["alpha"]) == set(prof.eval.alpha_grid)
    assert (tuning.loc[tuning.cohort == "all", "users_eval"] == facts["users_eval"]).all()
    policy = json.loads((run / ev.EVAL_FILES["policy"]).read_text())
    assert {"version", "alphas", "provenance"} <= set(policy)
    assert set(policy["alphas"]) == {"cold", "light", "medium", "heavy"}
    assert all(a in prof.eval.alpha_grid for a in policy["alphas"].values())
    gates = json.loads((run / ev.EVAL_FILES["gates"]).read_text())
    assert gates["all_passed"] == all(g["passed"] is True for g in gates["gates"])
    text = (run / "reports/offline_metrics.md").read_text()
    assert "FAILED" in text if not gates["all_passed"] else "all gates passed" in text
    assert facts["real_path_check"]["identical"] == facts["real_path_check"]["users"] > 0
    # the tuned policy is each user's grid list at its cohort's alpha: its Recall@10 per cohort
    # equals the grid's number at the chosen alpha
    for cohort, alpha in policy["alphas"].items():
        grid = tuning.loc[(tuning.cohort == cohort) & np.isclose(tuning.alpha, alpha), "recall@10"]
        tuned = metrics.loc[
            (metrics.model == "tuned_policy")
            & (metrics.cohort == cohort)
            & (metrics.metric == "recall")
            & (metrics.k == 10),
            "value",
        ]
        if len(tuned):
            assert tuned.iloc[0] == pytest.approx(grid.iloc[0], abs=1e-6)
    # where the tuned alpha is the seed's, the lists are the same: the difference is exactly 0
    paired = pd.read_parquet(run / ev.EVAL_FILES["paired_tests"])
    for cohort, alpha in policy["alphas"].items():
        if alpha == prof.policy.as_dict()[cohort]:
            same = paired.loc[(paired.baseline == "seed_policy") & (paired.cohort == cohort)]
            assert (same["mean_diff"] == 0).all() and (same["ci_high"] == 0).all()
    per_user = pd.read_parquet(run / ev.EVAL_FILES["per_user"])
    assert len(per_user) == facts["users_eval"]


def test_checkpoint_resume_after_an_exception_in_batch_3(ml_run, tmp_path):
    prof = ml_run["profile"]
    small = prof.eval.model_copy(
        update={"batch_size": 100, "alpha_grid": (0.0, 0.4, 1.0), "bootstrap_samples": 50}
    )
    metrics_file = ml_run["run"] / ev.EVAL_FILES["metrics"]

    straight = _core(
        ml_run, tmp_path, eval_cfg=small, parts_root=str(tmp_path / "a"), threads=1, reports=False
    )
    expected = pd.read_parquet(metrics_file)
    n_batches = straight["facts"]["batches"]
    assert n_batches >= 5

    def fail_at_3(batch: int) -> None:
        if batch == 3:
            raise RuntimeError("injected failure in batch 3")

    with pytest.raises(RuntimeError, match="injected failure in batch 3"):
        _core(
            ml_run,
            tmp_path,
            eval_cfg=small,
            parts_root=str(tmp_path / "b"),
            on_batch=fail_at_3,
            reports=False,
        )
    parts = sorted(p.name for p in (tmp_path / "b").glob("*/batch-*.parquet"))
    assert parts == [f"batch-{i:05d}.parquet" for i in range(3)]

    computed: list[int] = []
    resumed = _core(
        ml_run,
        tmp_path,
        eval_cfg=small,
        parts_root=str(tmp_path / "b"),
        on_batch=computed.append,
        threads=2,
        reports=False,
    )
    assert computed == list(range(3, n_batches))  # batches 0-2 came from their checkpoints
    assert resumed["facts"]["batches_reused"] == 3
    pd.testing.assert_frame_equal(pd.read_parquet(metrics_file), expected)

    again: list[int] = []
    unchanged = _core(
        ml_run,
        tmp_path,
        eval_cfg=small,
        parts_root=str(tmp_path / "b"),
        on_batch=again.append,
        reports=False,
    )
    assert again == [] and unchanged["facts"]["batches_computed"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(metrics_file), expected)


def test_a_grid_point_out_of_time_is_reported_not_dropped(ml_run, tmp_path):
    prof = ml_run["profile"]
    cfg = prof.eval.model_copy(
        update={"batch_size": 100, "alpha_grid": (0.0, 0.25, 1.0), "bootstrap_samples": 50}
    )
    out = _core(
        ml_run,
        tmp_path,
        eval_cfg=cfg,
        parts_root=str(tmp_path / "p"),
        threads=1,
        reports=False,
        alpha_budget_seconds=1e-9,
    )
    tuning = pd.read_csv(ml_run["run"] / ev.EVAL_FILES["tuning_results"])
    everyone = tuning.loc[tuning.cohort == "all"].set_index("alpha")
    # 0.25 ran on the first chunk only (its budget was spent), 0 and 1 feed baselines: complete
    assert bool(everyone.loc[0.25, "alpha_timed_out"]) is True
    assert 0 < everyone.loc[0.25, "users_eval"] < out["facts"]["users_eval"]
    assert (
        everyone.loc[0.25, "users_skipped"]
        == out["facts"]["users_eval"] - everyone.loc[0.25, "users_eval"]
    )
    assert not everyone.loc[[0.0, 1.0], "alpha_timed_out"].any()
    assert (everyone.loc[[0.0, 1.0], "users_eval"] == out["facts"]["users_eval"]).all()
    assert out["facts"]["timed_out_alphas"] == [0.25]
    assert 0.25 not in out["facts"]["policy"].values()


def test_evaluation_plan_counts_users_with_a_relevant_item():
    test = pd.DataFrame(
        {Col.USER: [7, 7, 14, 21], Col.ITEM: [3, 6, 3, 9], Col.RELEVANT: [True, False, False, True]}
    )
    cohorts = pd.DataFrame({Col.USER: [7, 14, 21], Col.COHORT: ["light", "heavy", "cold"]})
    plan = ev.evaluation_plan(np.array([7, 14, 21]), np.array([3, 6, 9]), test, cohorts, 2)
    assert plan.users.tolist() == [0, 2]
    assert plan.eligible == {"all": 2, "cold": 1, "light": 1, "medium": 0, "heavy": 0}
    with pytest.raises(ValueError, match="not in models/item_index.parquet"):
        ev.evaluation_plan(np.array([7, 14, 21]), np.array([3, 6]), test, cohorts, 2)


def test_seed_alphas_off_the_grid_are_still_evaluated():
    prof = load_profile("ci", environ={})
    settings = ev.EvalSettings.from_profile(prof.eval, prof.candidates, prof.policy)
    assert settings.grid == (0.0, 0.4, 0.8, 1.0)
    assert set(settings.alphas) == {0.0, 0.4, 0.8, 1.0, 0.15, 0.6}
    assert settings.required.tolist() == [
        a in {0.0, 1.0, 0.15, 0.4, 0.6, 0.8} for a in settings.alphas
    ]
    labels = np.array(["cold", "heavy"], dtype=object)
    idx = ev._alpha_of_users(settings, labels, settings.seed_policy)
    assert [settings.alphas[i] for i in idx] == [0.15, 0.8]
    assert policy_alphas(labels, settings.seed_policy).tolist() == pytest.approx([0.15, 0.8])


def test_part_key_changes_with_inputs_and_settings_not_with_threads(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"1")
    ref = ArtifactRef.of(tmp_path, "a.bin")
    prof = load_profile("ci", environ={})
    s1 = ev.EvalSettings.from_profile(prof.eval, prof.candidates, prof.policy, threads=1)
    s2 = ev.EvalSettings.from_profile(prof.eval, prof.candidates, prof.policy, threads=2)
    key = ev.part_key({"x": ref}, s1, {"t": 4.0})
    assert key == ev.part_key({"x": ref}, s2, {"t": 4.0})
    assert key != ev.part_key({"x": ref}, s1, {"t": 3.5})
    (tmp_path / "a.bin").write_bytes(b"2")
    assert key != ev.part_key({"x": ArtifactRef.of(tmp_path, "a.bin")}, s1, {"t": 4.0})
    other = ev.EvalSettings.from_profile(
        prof.eval.model_copy(update={"alpha_grid": (0.0, 1.0)}), prof.candidates, prof.policy
    )
    assert key != ev.part_key({"x": ref}, other, {"t": 4.0})


def test_module_docstring_names_its_outputs():
    for rel in ev.EVAL_FILES.values():
        assert Path(rel).name in ev.__doc__ or rel in ev.__doc__


def test_sampling_only_when_the_profile_asks(ml_run, tmp_path):
    prof = ml_run["profile"]
    cfg = prof.eval.model_copy(
        update={"sample_users": 100, "alpha_grid": (0.0, 1.0), "bootstrap_samples": 50}
    )
    out = _core(ml_run, tmp_path, eval_cfg=cfg, parts_root=str(tmp_path / "s"), reports=False)
    eligible = _users_with_relevant(ml_run["test"])
    assert out["facts"]["users_eval"] == 100 and out["facts"]["users_with_relevant"] == eligible
    tuning = pd.read_csv(ml_run["run"] / ev.EVAL_FILES["tuning_results"])
    everyone = tuning.loc[tuning.cohort == "all"]
    assert (everyone["users_eval"] == 100).all() and (
        everyone["users_skipped"] == eligible - 100
    ).all()
