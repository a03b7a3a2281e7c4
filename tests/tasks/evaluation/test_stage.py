"""The evaluation stage on a real ml-latest-small run: every model is scored once on every test
user with a relevant item; the tables hold together; a batch that fails is resumed from the
checkpoints of the batches before it with identical metrics; the one bootstrap call over the
stacked models equals one call per model."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tasks.evaluation import (
    EVAL_FILES,
    MODELS,
    evaluation_core,
    stacked_metrics_table,
    stacked_paired_table,
)
from tasks.io import ArtifactRef
from tasks.metrics import metrics_long_table, paired_tests_table


def _refs(run) -> dict:
    names = {
        "train": "data/train.parquet",
        "test": "data/test.parquet",
        "cohorts": "data/cohorts.parquet",
        "movies": "data/movies.parquet",
        "dropped_history": "data/dropped_history.parquet",
        "policy": "tuning/policy.json",
        "baselines": "tuning/baselines.json",
        "cf_roles": "models/cf/roles.json",
    }
    from tasks.content import FILES

    refs = {k: ArtifactRef.of(run, v) for k, v in names.items()}
    refs.update({k: ArtifactRef.of(run, v) for k, v in FILES.items() if (run / v).exists()})
    return refs


@pytest.fixture()
def run_copy(ml_ranking_run, tmp_path):
    dst = tmp_path / "ml-latest-small" / ml_ranking_run["run_dir"].name
    shutil.copytree(ml_ranking_run["run_dir"], dst)
    return dst


def _core(run, prof, **kwargs):
    cfg = prof.eval.model_copy(update={"batch_size": 100, "bootstrap_samples": 50})
    return evaluation_core(
        str(run), _refs(run), cfg, prof.candidates, prof.policy, prof.split, prof.content,
        prof.signoff.min_lift, prof.run.seed, reports=False, **kwargs,
    )  # fmt: skip


def test_every_model_is_scored_on_every_evaluated_user(ml_ranking_run):
    run = ml_ranking_run["run_dir"]
    metrics = pd.read_parquet(run / EVAL_FILES["metrics"])
    test = pd.read_parquet(run / "data/test.parquet")
    n_users = int(test.loc[test["relevant"], "user_id"].nunique())
    at10 = metrics.loc[(metrics.metric == "recall") & (metrics.k == 10) & (metrics.cohort == "all")]
    assert set(at10.model) <= set(MODELS) and {"tuned_policy", "popularity", "seed_policy"} <= set(at10.model)
    assert (at10.n_users == n_users).all()
    per_user = pd.read_parquet(run / EVAL_FILES["per_user"])
    assert len(per_user) == n_users
    mean = per_user["tuned_policy_recall@10"].mean()
    assert mean == pytest.approx(float(at10.loc[at10.model == "tuned_policy", "value"].iloc[0]), abs=1e-6)
    gates = pd.read_json(run / EVAL_FILES["gates"], typ="series")
    assert gates["best_baseline"] in set(at10.model) - {"tuned_policy"}


def test_a_failed_batch_resumes_from_the_checkpoints_with_identical_metrics(ml_ranking_run, run_copy, tmp_path):
    prof = ml_ranking_run["profile"]
    straight = _core(run_copy, prof, parts_root=str(tmp_path / "a"), threads=1)
    expected = pd.read_parquet(run_copy / EVAL_FILES["metrics"])
    n = straight["facts"]["batches"]
    assert n >= 5

    def fail_at_3(batch: int) -> None:
        if batch == 3:
            raise RuntimeError("injected failure in batch 3")

    with pytest.raises(RuntimeError, match="injected failure in batch 3"):
        _core(run_copy, prof, parts_root=str(tmp_path / "b"), on_batch=fail_at_3)
    assert sorted(p.name for p in (tmp_path / "b").glob("*/batch-*.parquet")) == [f"batch-{i:05d}.parquet" for i in range(3)]
    computed: list[int] = []
    resumed = _core(run_copy, prof, parts_root=str(tmp_path / "b"), on_batch=computed.append, threads=2)
    assert computed == list(range(3, n)) and resumed["facts"]["batches_reused"] == 3
    pd.testing.assert_frame_equal(pd.read_parquet(run_copy / EVAL_FILES["metrics"]), expected)
    again: list[int] = []
    unchanged = _core(run_copy, prof, parts_root=str(tmp_path / "b"), on_batch=again.append)
    assert again == [] and unchanged["facts"]["batches_computed"] == 0


def test_stacked_bootstrap_tables_equal_one_call_per_model():
    rng = np.random.default_rng(2)
    n = 120
    labels = rng.choice(np.array(["cold", "light", "heavy"], dtype=object), n)
    per = {m: {(x, k): rng.random(n) for x in ("recall", "map", "novelty") for k in (5, 10)} for m in MODELS}
    recs = {m: np.argsort(rng.random((n, 30)), axis=1)[:, :10].astype(np.int32) for m in MODELS}
    stacked = stacked_metrics_table(MODELS, per, recs, labels, 40, 100, 0.95, 7)
    single = pd.concat(
        [metrics_long_table(m, labels, per[m], 100, 0.95, 7, recs=recs[m], n_items=40) for m in MODELS]
    )
    key = ["model", "cohort", "metric", "k"]
    a, b = stacked.set_index(key).sort_index(), single.set_index(key).sort_index()
    assert a.index.equals(b.index)
    np.testing.assert_allclose(a[["value", "ci_low", "ci_high"]], b[["value", "ci_low", "ci_high"]], atol=1e-12)
    tuned = {k: v for k, v in per["tuned_policy"].items() if k[0] != "novelty"}
    bases = {m: {k: per[m][k] for k in tuned} for m in MODELS if m != "tuned_policy"}
    paired = stacked_paired_table(tuned, bases, labels, 100, 0.95, 7)
    ref = pd.concat(
        [paired_tests_table("tuned_policy", m, labels, tuned, bases[m], 100, 0.95, 7, wilcoxon=False) for m in bases]
    )
    key = ["baseline", "cohort", "metric", "k"]
    a, b = paired.set_index(key).sort_index(), ref.set_index(key).sort_index()
    cols = ["mean_diff", "ci_low", "ci_high", "p_value"]
    np.testing.assert_allclose(a[cols], b[cols], atol=1e-12)
