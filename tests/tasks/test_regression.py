"""Regression check: baseline choice, paired and Welch intervals, the significance rule, the files.

Per-user tables are built so the answer is obvious: the same model twice (identical per-user
values) is never flagged; a model whose recall is lower for most users is; a drop smaller than
``min_drop`` is not. The real two-run case (a content-only model after the tuned one, through the
served nightly deployment) is in tests/flows/test_deployments.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.errors import InputDataError
from tasks.profile import NightlySection
from tasks.regression import (
    REGRESSION_COLUMNS,
    Baseline,
    compare_runs,
    find_baseline,
    regression_core,
)

COHORT_OF = ("cold", "light", "medium", "heavy")


def _per_user(n: int = 400, seed: int = 0, shift: float = 0.0, users=None) -> pd.DataFrame:
    """Per-user table like eval/per_user.parquet: recall/map/ndcg@10 of tuned_policy in [0, 1]."""
    rng = np.random.default_rng(seed)
    users = np.arange(1, n + 1) if users is None else np.asarray(users)
    base = rng.beta(2, 5, size=len(users))
    frame = {
        "user_id": users.astype(np.int32),
        "cohort": [COHORT_OF[u % 4] for u in users],
    }
    for metric, scale in (("recall", 1.0), ("map", 0.6), ("ndcg", 0.8)):
        frame[f"tuned_policy_{metric}@10"] = np.clip(scale * base + shift, 0, 1).astype(np.float32)
    return pd.DataFrame(frame)


def _cfg(**changes) -> NightlySection:
    return NightlySection(bootstrap_samples=300, **changes)


def test_the_same_model_twice_is_not_flagged():
    table = _per_user()
    rows = compare_runs(table, table.sample(frac=1.0, random_state=1), _cfg())  # row order differs
    assert list(rows.columns) == list(REGRESSION_COLUMNS)
    assert len(rows) == 5 * 3  # all + four cohorts, three metrics
    assert (rows["method"] == "paired bootstrap").all()
    assert (
        (rows["delta"] == 0).all() and (rows["ci_low"] == 0).all() and (rows["ci_high"] == 0).all()
    )
    assert not rows["significant"].any()


def test_a_worse_model_is_flagged_per_cohort_with_its_interval():
    good = _per_user()
    worse = _per_user(shift=-0.08)  # same users, every metric lower by up to 0.08
    rows = compare_runs(good, worse, _cfg()).set_index(["cohort", "metric"])
    assert rows["significant"].all()
    row = rows.loc[("all", "recall")]
    assert row["delta"] == pytest.approx(row["current"] - row["baseline"])
    assert row["ci_low"] <= row["delta"] <= row["ci_high"] < 0
    assert row["n_users"] == 400 and rows.loc[("cold", "recall"), "n_users"] == 100
    # Bonferroni over 15 comparisons
    assert row["confidence"] == pytest.approx(1 - 0.05 / 15)


def test_an_improvement_or_a_drop_below_min_drop_is_not_flagged():
    good = _per_user()
    assert not compare_runs(good, _per_user(shift=0.05), _cfg())["significant"].any()
    slightly = _per_user(shift=-0.01)
    assert compare_runs(good, slightly, _cfg())["significant"].any()
    assert not compare_runs(good, slightly, _cfg(min_drop=0.05))["significant"].any()


def test_different_users_use_welch_and_still_find_a_large_drop():
    good = _per_user(seed=1)
    worse = _per_user(seed=2, shift=-0.15, users=np.arange(1001, 1401))
    rows = compare_runs(good, worse, _cfg())
    assert (rows["method"] == "welch").all()
    row = rows.set_index(["cohort", "metric"]).loc[("all", "recall")]
    assert row["significant"] and row["ci_high"] < 0
    # Welch, by hand: delta +- t * sqrt(s1^2/n1 + s2^2/n2) at the Bonferroni level
    from scipy import stats

    a = worse["tuned_policy_recall@10"].to_numpy(np.float64)
    b = good["tuned_policy_recall@10"].to_numpy(np.float64)
    v1, v2 = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    dof = (v1 + v2) ** 2 / (v1**2 / (a.size - 1) + v2**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + row["confidence"] / 2, dof) * np.sqrt(v1 + v2)
    assert row["ci_high"] == pytest.approx(a.mean() - b.mean() + half)
    # random noise between two equally good models on different users: nothing flagged
    same_quality = _per_user(seed=3, users=np.arange(1001, 1401))
    assert not compare_runs(good, same_quality, _cfg())["significant"].any()


def test_small_cohorts_are_left_out_and_missing_columns_named():
    good, worse = _per_user(n=40), _per_user(n=40, shift=-0.1)
    rows = compare_runs(good, worse, _cfg(min_users=15))
    assert set(rows["cohort"]) == {"all"}  # each cohort has 10 users
    with pytest.raises(InputDataError, match="tuned_policy_recall@20"):
        compare_runs(good, worse, _cfg(k=20))


def _run(root: Path, name: str, status: str = "complete", decision: str | None = None, table=None):
    run = root / "ci" / name
    (run / "logs").mkdir(parents=True)
    (run / "eval").mkdir()
    (run / "logs" / "run_status.json").write_text(json.dumps({"status": status}))
    (table if table is not None else _per_user()).to_parquet(run / "eval" / "per_user.parquet")
    if decision:
        (run / "signoff").mkdir()
        (run / "signoff" / "signoff.json").write_text(json.dumps({"decision": decision}))
    return run


def test_find_baseline_last_approved_and_previous(tmp_path: Path):
    assert find_baseline(tmp_path, "ci", "previous").run_dir is None
    approved = _run(tmp_path, "20260101T000000Z-aaaaaa", decision="APPROVE")
    later = _run(tmp_path, "20260102T000000Z-bbbbbb", decision="NEEDS WORK")
    _run(tmp_path, "20260103T000000Z-cccccc", status="failed", decision="APPROVE")
    current = _run(tmp_path, "20260104T000000Z-dddddd", status="running")
    (tmp_path / "ci" / ".eval-parts").mkdir()

    choice = find_baseline(tmp_path, "ci", "last_approved", exclude=current)
    assert choice.run_dir == str(approved) and "APPROVE" in choice.reason
    assert choice.per_user.path == approved / "eval" / "per_user.parquet"
    assert find_baseline(tmp_path, "ci", "previous", exclude=current).run_dir == str(later)
    # the current run is never its own baseline, even once complete
    assert find_baseline(tmp_path, "ci", "previous", exclude=later).run_dir == str(approved)

    none = find_baseline(tmp_path / "elsewhere", "ci", "last_approved")
    assert none.run_dir is None and none.per_user is None and "no earlier complete run" in none.reason
    # no run approved: last_approved falls back to the newest complete run and says so
    (approved / "signoff" / "signoff.json").write_text(json.dumps({"decision": "REJECT"}))
    fallback = find_baseline(tmp_path, "ci", "last_approved", exclude=current)
    assert fallback.run_dir == str(later) and "instead" in fallback.reason, fallback.reason


def test_baseline_identity_is_part_of_the_cache_key(tmp_path: Path):
    """A newly approved run must invalidate the regression stage's cached result."""
    from types import SimpleNamespace

    from tasks.stage import stage_cache_key

    _run(tmp_path, "20260101T000000Z-aaaaaa", decision="APPROVE")
    first = find_baseline(tmp_path, "ci", "last_approved")
    _run(tmp_path, "20260102T000000Z-bbbbbb", decision="APPROVE", table=_per_user(seed=9))
    second = find_baseline(tmp_path, "ci", "last_approved")
    from tasks.regression import check_regression

    context = SimpleNamespace(task=check_regression)

    def key(baseline: Baseline) -> str:
        params = {"baseline": baseline, "cfg": _cfg(), "run_dir": "x", "budget_seconds": 1.0}
        return stage_cache_key(context, params)

    assert key(first) == key(first)
    assert key(first) != key(second)


def test_regression_core_writes_the_json_and_the_report_section(tmp_path: Path):
    baseline_run = _run(tmp_path, "20260101T000000Z-aaaaaa", decision="APPROVE")
    current = tmp_path / "current"
    (current / "eval").mkdir(parents=True)
    _per_user(shift=-0.1).to_parquet(current / "eval" / "per_user.parquet")
    baseline = find_baseline(tmp_path, "ci", "last_approved")

    out = regression_core(str(current), current / "eval" / "per_user.parquet", baseline, _cfg())
    doc = json.loads((current / "eval" / "regression.json").read_text())
    assert doc["significant_drop"] is True and doc["baseline_run"] == str(baseline_run)
    assert doc["compare_with"] == "last_approved" and len(doc["rows"]) == 15
    assert set(doc["rows"][0]) >= {
        "cohort", "metric", "k", "baseline", "current", "delta", "ci_low", "ci_high", "significant",
    }  # fmt: skip
    assert out["facts"]["significant_drop"] is True and "all recall@10" in out["facts"]["dropped"]
    report = (current / "reports" / "regression.md").read_text()
    assert report.startswith("## Regression check") and "**Significant drop**" in report
    assert "| all | recall@10 | 400 |" in report

    assert doc["compared"] is True and out["facts"]["status"] == "compared"

    # no baseline: "not compared" - never a drop, and never a pass either
    none = Baseline(compare_with="last_approved", reason="no approved run yet")
    out = regression_core(str(current), current / "eval" / "per_user.parquet", none, _cfg())
    doc = json.loads((current / "eval" / "regression.json").read_text())
    assert doc["significant_drop"] is False and doc["rows"] == [] and doc["baseline_run"] is None
    assert doc["compared"] is False
    assert out["facts"]["status"] == "not compared" and out["facts"]["compared"] is False
    report = (current / "reports" / "regression.md").read_text()
    assert "**Not compared**: no approved run yet" in report and "not a pass" in report


def _evaluation_per_user(shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A per-user table as the evaluation package writes it: every model's metric columns, the
    candidate columns and the tuned policy's list of movie ids."""
    table = _per_user(seed=seed, shift=shift)
    n = len(table)
    extra = {
        "n_relevant": np.full(n, 3, np.int32),
        "pool_size": np.full(n, 800, np.int32),
        "candidate_recall": np.full(n, 0.7, np.float32),
    }
    for model in ("ease", "item_knn", "als", "popularity", "content", "seed_policy"):
        for metric in ("recall", "map", "ndcg"):
            extra[f"{model}_{metric}@10"] = np.full(n, 0.05, np.float32)
    extra["tuned_policy_movie_ids"] = [[1, 2, 3]] * n
    return table.assign(**extra)


def test_the_evaluation_per_user_table_is_compared_on_the_tuned_policy(tmp_path: Path):
    """The new per-user table (every model, list column) works; only tuned_policy_* is compared,
    and [nightly] model can name another model of the table."""
    baseline_run = _run(
        tmp_path, "20260101T000000Z-aaaaaa", decision="APPROVE", table=_evaluation_per_user()
    )
    current = tmp_path / "current"
    (current / "eval").mkdir(parents=True)
    _evaluation_per_user(shift=-0.1).to_parquet(current / "eval" / "per_user.parquet")
    baseline = find_baseline(tmp_path, "ci", "last_approved")
    assert baseline.run_dir == str(baseline_run)
    out = regression_core(str(current), current / "eval" / "per_user.parquet", baseline, _cfg())
    assert out["facts"]["significant_drop"] and out["facts"]["method"] == "paired bootstrap"
    same = regression_core(
        str(current), current / "eval" / "per_user.parquet", baseline, _cfg(model="ease")
    )
    assert same["facts"]["compared"] and not same["facts"]["significant_drop"]
    with pytest.raises(InputDataError, match="cf_full_recall@10"):
        regression_core(
            str(current), current / "eval" / "per_user.parquet", baseline, _cfg(model="cf_full")
        )
