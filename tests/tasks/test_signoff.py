"""Sign-off: the decision follows the gates, measured from the run's own tables, and the profile's
thresholds (min_lift, floors); a significantly worse policy is rejected; a search cut short and a
failed validation block APPROVE; "no baseline run" is "not compared", never a pass.

Known-answer run directories are built by hand (tiny tables whose lift and paired interval are
obvious); the real ml-latest-small run is at the end (it needs the shared pipeline fixture).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tasks.decision import decide, signoff_check_frame
from tasks.profile import load_profile
from tasks.signoff import (
    OLD_REPORT_CLAIMS,
    collect_measures,
    compute_gates,
    qa_checklist,
    signoff_core,
)

#: Measures of a good run (what collect_measures returns from a run's files).
GOOD = {
    "recall_at_10": 0.087,
    "map_at_10": 0.051,
    "user_coverage_at_10": 0.97,
    "lift": 0.12,
    "best_baseline": "ease",
    "paired_best": {"baseline": "ease", "mean_diff": 0.01, "ci_low": 0.004, "ci_high": 0.02},
    "cohorts": {
        "cold": {
            "best_baseline": "item_knn",
            "rule": "paired",
            "mean_diff": -0.008,
            "measured": 0.035,
            "n_users": 59,
        },
        "heavy": {
            "best_baseline": "ease",
            "rule": "paired",
            "mean_diff": 0.001,
            "measured": 0.005,
            "n_users": 184,
        },
        "light": None,  # no evaluated user: no gate
    },
    "search_completed": True,
    "edge_case_pass_rate": 0.9,
    "validation_rate": 1.0,
    "failed_validations": 0,
}


def _decision(measures, *overrides):
    profile = load_profile("ci", list(overrides))
    return decide(compute_gates(measures, profile.signoff, profile.edge_cases.min_pass_rate))


def _names(measures, *overrides):
    profile = load_profile("ci", list(overrides))
    return [g["name"] for g in compute_gates(measures, profile.signoff, 0.8)]


def test_the_gates_and_their_effects():
    names = _names(GOOD)
    assert names[:3] == [
        "lift_over_best_baseline",
        "significantly_better_than_best_baseline",
        "not_significantly_worse_than_best_baseline",
    ]
    assert "no_cohort_worse_cold" in names and "no_cohort_worse_heavy" in names
    assert "no_cohort_worse_light" not in names  # a cohort without users has no gate
    # the old gates are gone; floors are off by default
    assert not {"better_than_best_baseline", "evaluation_acceptance_gates"} & set(names)
    assert not {"recall_at_10", "map_at_10"} & set(names)
    profile = load_profile("ci")
    effects = {
        g["name"]: g["effect"]
        for g in compute_gates(GOOD, profile.signoff, 0.8)
        if g["effect"] == "reject"
    }
    assert set(effects) == {
        "not_significantly_worse_than_best_baseline",
        "artifact_validation_rate",
    }


def test_min_lift_and_the_floors_in_the_profile_change_the_decision():
    assert _decision(GOOD)[0] == "APPROVE"
    assert _decision(GOOD, "signoff.min_lift=0.10")[0] == "APPROVE"  # lift 0.12
    decision, reasons = _decision(GOOD, "signoff.min_lift=0.15")
    assert decision == "NEEDS WORK"
    assert reasons == [
        "lift_over_best_baseline: relative Recall@10 lift of the tuned policy over ease = +12.00%, "
        "needs >= +15.00%"
    ]
    # absolute floors only when set
    assert (
        _decision(GOOD, "signoff.min_recall_at_10=0.05", "signoff.min_map_at_10=0.05")[0]
        == "APPROVE"
    )
    decision, reasons = _decision(GOOD, "signoff.min_recall_at_10=0.30")
    assert decision == "NEEDS WORK"
    assert reasons == ["recall_at_10: Recall@10, tuned policy, all users = 0.0870, needs >= 0.3000"]
    assert _decision(GOOD, "signoff.min_map_at_10=0.25")[0] == "NEEDS WORK"
    assert _decision(GOOD, "edge_cases.min_pass_rate=0.95")[0] == "NEEDS WORK"


def test_a_significantly_worse_policy_is_rejected():
    worse = {
        **GOOD,
        "lift": -0.2,
        "paired_best": {"baseline": "ease", "mean_diff": -0.02, "ci_low": -0.03, "ci_high": -0.01},
    }
    decision, reasons = _decision(worse)
    assert decision == "REJECT"
    assert reasons[0].startswith("REJECT because not_significantly_worse_than_best_baseline")
    # worse but not significantly (the interval holds 0): not better either -> NEEDS WORK
    tie = {
        **worse,
        "paired_best": {"baseline": "ease", "mean_diff": -0.002, "ci_low": -0.01, "ci_high": 0.006},
    }
    decision, reasons = _decision(tie)
    assert decision == "NEEDS WORK"
    assert {r.split(":")[0] for r in reasons} == {
        "lift_over_best_baseline",
        "significantly_better_than_best_baseline",
    }
    # no paired test at all: the reject gate cannot be measured -> REJECT
    assert _decision({k: v for k, v in GOOD.items() if k != "paired_best"})[0] == "REJECT"


def test_a_search_cut_short_is_needs_work_at_best():
    cut = {**GOOD, "search_completed": False, "cut_short_studies": ["policy", "als"]}
    decision, reasons = _decision(cut)
    assert decision == "NEEDS WORK"
    assert reasons == [
        "search_completed: the search finished within its budget (not cut short) = no, needs yes "
        "(cut short: policy, als)"
    ]
    assert _decision({**GOOD, "search_completed": None})[0] == "NEEDS WORK"  # no policy.json
    worse = {**cut, "paired_best": {**GOOD["paired_best"], "ci_low": -0.03, "ci_high": -0.01}}
    assert _decision(worse)[0] == "REJECT"


def test_cohorts_validation_and_regression_block_approve():
    cold_worse = {**GOOD, "cohorts": {"cold": {**GOOD["cohorts"]["cold"], "measured": -0.01}}}
    decision, reasons = _decision(cold_worse)
    assert decision == "NEEDS WORK" and reasons[0].startswith("no_cohort_worse_cold")
    one_failed = {**GOOD, "validation_rate": 0.99, "failed_validations": 1}
    decision, reasons = _decision(one_failed)
    assert decision == "NEEDS WORK" and reasons[0].startswith("artifact_validation_failures")
    assert _decision({**GOOD, "validation_rate": 0.9, "failed_validations": 12})[0] == "REJECT"
    assert _decision({**GOOD, "validation_rate": None, "failed_validations": None})[0] == "REJECT"
    assert (
        _decision({k: v for k, v in GOOD.items() if k != "edge_case_pass_rate"})[0] == "NEEDS WORK"
    )
    regressed = {**GOOD, "regression_compared": True, "significant_regressions": 2}
    assert _decision(regressed)[0] == "NEEDS WORK"
    assert _decision(regressed, "signoff.require_no_regression=false")[0] == "APPROVE"
    # nothing to compare with: no gate (not a pass either: the reports say "not compared")
    not_compared = {
        **GOOD,
        "regression_compared": False,
        "regression": {"reason": "no approved run"},
    }
    assert "no_significant_regression" not in _names(not_compared)
    assert _decision(not_compared)[0] == "APPROVE"


def test_signoff_check_frame_detects_a_hand_edited_decision():
    profile = load_profile("ci")
    gates = compute_gates(GOOD, profile.signoff, 0.8)
    frame = signoff_check_frame({"decision": "APPROVE", "gates": gates})
    assert frame["decision_matches_gates"].all() and frame["pass_consistent"].all()
    edited = signoff_check_frame({"decision": "REJECT", "gates": gates})
    assert not edited["decision_matches_gates"].any()
    gates[0] = {**gates[0], "passed": not gates[0]["passed"]}
    assert not signoff_check_frame({"decision": "APPROVE", "gates": gates})["pass_consistent"].all()


# ---------------------------------------------------------------------------------------------
# hand-made run directories (known answers)

MODELS = ("tuned_policy", "ease", "item_knn", "popularity")


def _metrics(recall: dict[str, float], cohort_recall: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for model, value in recall.items():
        for metric, v in (
            ("recall", value),
            ("map", value / 2),
            ("ndcg", value * 1.2),
            ("user_coverage", 1.0),
        ):
            rows.append(("all", model, metric, v, 400))
        for cohort, values in cohort_recall.items():
            rows.append((cohort, model, "recall", values[model], 100))
    return pd.DataFrame(
        [
            {"model": m, "cohort": c, "metric": metric, "k": 10, "value": v, "ci_low": v - 0.01,
             "ci_high": v + 0.01, "n_users": n}
            for c, m, metric, v, n in rows
        ]
    )  # fmt: skip


def _paired(diffs: dict[tuple[str, str], tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": "tuned_policy", "baseline": b, "cohort": c, "metric": "recall", "k": 10,
             "mean_diff": d, "ci_low": lo, "ci_high": hi, "p_value": 0.01, "n_users": 100}
            for (b, c), (d, lo, hi) in diffs.items()
        ]
    )  # fmt: skip


def make_run(
    root: Path,
    *,
    tuned: float = 0.11,
    paired_all: tuple[float, float, float] = (0.01, 0.004, 0.016),
    cut_short: bool = False,
    regression: dict | None = None,
) -> Path:
    """A run directory with the files the sign-off reads: test metrics (best baseline ease 0.10,
    popularity 0.05), paired tests, the policy document, validation metrics, the alpha grid, a
    manifest, and an eval/gates.json that disagrees with them (it must not be read)."""
    run = root / "ci" / "20260101T000000Z-abcdef"
    for d in ("eval", "tuning", "inventory", "data"):
        (run / d).mkdir(parents=True, exist_ok=True)
    recall = {"tuned_policy": tuned, "ease": 0.10, "item_knn": 0.08, "popularity": 0.05}
    cohorts = {
        "light": {"tuned_policy": 0.2, "ease": 0.18, "item_knn": 0.19, "popularity": 0.1},
        "heavy": {"tuned_policy": 0.05, "ease": 0.05, "item_knn": 0.04, "popularity": 0.02},
    }
    _metrics(recall, cohorts).to_parquet(run / "eval/metrics.parquet")
    _paired(
        {
            ("ease", "all"): paired_all,
            ("item_knn", "light"): (0.01, -0.01, 0.03),
            ("ease", "heavy"): (0.0, -0.004, 0.004),
        }
    ).to_parquet(run / "eval/paired_tests.parquet")
    (run / "eval/gates.json").write_text(
        json.dumps(
            {"gates": [], "all_passed": False, "best_baseline": "popularity", "min_lift": 9.0}
        )
    )
    policy = {
        "version": 2,
        "alphas": {"light": 0.6, "heavy": 0.4},
        "collab": {"model": "ease"},
        "ranking": {"lambda_div": 0.1},
        "validation": {"metric": "recall@10", "value": 0.13, "users": 560},
        "search": {"trials": {"policy": 3}, "n_trials": 3, "cut_short": cut_short,
                   "cut_short_studies": ["policy"] if cut_short else []},
        "provenance": {"how_selected": "chosen on the validation split only"},
    }  # fmt: skip
    (run / "tuning/policy.json").write_text(json.dumps(policy))
    pd.DataFrame(
        {
            "model": list(MODELS),
            "recall@10": [0.13, 0.12, 0.11, 0.07],
            "map@10": [0.07, 0.06, 0.05, 0.04],
            "ndcg@10": [0.13, 0.12, 0.1, 0.08],
            "users": 560,
            "trials": [3, 3, 3, 1],
            "params": "{}",
        }
    ).to_csv(run / "tuning/validation_metrics.csv", index=False)
    pd.DataFrame({"split": ["validation"] * 2, "alpha": [0.0, 0.5], "cohort": "all"}).to_csv(
        run / "tuning/tuning_results.csv", index=False
    )
    manifest = {"validation_rate": 1.0, "failed": [], "n_files": 9, "files": [], "data_docs": None}
    (run / "inventory/artifact_manifest.json").write_text(json.dumps(manifest))
    if regression is not None:
        (run / "eval/regression.json").write_text(json.dumps(regression))
    return run


EDGES = {"edge_cases": {"pass_rate": 0.9}}


def _signoff(run: Path, *overrides: str) -> dict:
    return signoff_core(str(run), load_profile("ci", list(overrides)), EDGES)["facts"]


def test_measures_come_from_the_tables_not_from_gates_json(tmp_path):
    run = make_run(tmp_path)
    m = collect_measures(run, {})
    assert m["best_baseline"] == "ease" and m["best_baseline_recall_at_10"] == pytest.approx(0.10)
    assert m["baselines"] == ["ease", "item_knn", "popularity"]  # every model but the tuned one
    assert m["lift"] == pytest.approx(0.1)
    assert m["paired_best"]["ci_low"] == pytest.approx(0.004)
    assert m["paired_best"]["ci_high"] == pytest.approx(0.016)
    assert m["cohorts"]["light"]["best_baseline"] == "item_knn"
    assert m["cohorts"]["light"]["measured"] == pytest.approx(0.03)  # upper end of the CI
    assert m["cohorts"]["cold"] is None  # no metrics rows for cold
    assert m["search_completed"] is True and m["tuning_splits"] == ["validation"]
    rows = {r["model"]: r for r in m["models"]}
    assert list(rows)[0] == "tuned_policy"
    assert rows["ease"]["validation"]["recall"] == pytest.approx(0.12)
    assert rows["ease"]["test"]["recall"] == pytest.approx(0.10)


def test_changing_min_lift_or_a_floor_changes_the_decision_of_a_run(tmp_path):
    run = make_run(tmp_path)  # lift 0.10, paired interval [0.004, 0.016]
    assert _signoff(run)["decision"] == "APPROVE"
    assert _signoff(run, "signoff.min_lift=0.05")["decision"] == "APPROVE"
    out = _signoff(run, "signoff.min_lift=0.2")
    assert out["decision"] == "NEEDS WORK"
    assert out["reasons"][0].startswith("lift_over_best_baseline")
    recorded = json.loads((run / "signoff/signoff.json").read_text())
    assert recorded["decision"] == "NEEDS WORK" and recorded["thresholds"]["min_lift"] == 0.2
    frame = signoff_check_frame(recorded)  # what the signoff suite recomputes
    assert frame["decision_matches_gates"].all() and frame["pass_consistent"].all()
    assert _signoff(run, "signoff.min_recall_at_10=0.10")["decision"] == "APPROVE"  # 0.11
    assert _signoff(run, "signoff.min_recall_at_10=0.12")["decision"] == "NEEDS WORK"
    assert _signoff(run, "signoff.min_map_at_10=0.06")["decision"] == "NEEDS WORK"  # 0.055


def test_significantly_worse_run_is_rejected_and_cut_short_is_needs_work(tmp_path):
    worse = make_run(tmp_path / "a", tuned=0.08, paired_all=(-0.02, -0.03, -0.01))
    out = _signoff(worse)
    assert out["decision"] == "REJECT"
    assert out["reasons"][0].startswith("REJECT because not_significantly_worse_than_best_baseline")
    assert _signoff(make_run(tmp_path / "b", cut_short=True))["decision"] == "NEEDS WORK"
    assert _signoff(make_run(tmp_path / "c", cut_short=True), "signoff.min_lift=-1")[
        "decision"
    ] == ("NEEDS WORK")


def test_reports_show_models_gates_paired_difference_selection_and_old_claims(tmp_path):
    none = {
        "baseline_run": None,
        "compare_with": "last_approved",
        "compared": False,
        "reason": "no complete run has sign-off decision APPROVE",
        "significant_drop": False,
        "rows": [],
    }
    run = make_run(tmp_path, regression=none)
    out = _signoff(run)
    assert out["decision"] == "APPROVE"  # nothing to compare with is no gate ...
    report = (run / "reports/final_report.md").read_text()
    handoff = (run / "signoff/handoff.md").read_text()
    for text in (report, handoff):
        # ... and is reported as not compared, never as passed
        assert "**not compared** - no complete run has sign-off decision APPROVE" in text
        assert "## Models at K=10: validation and test" in text
        assert (
            "| **tuned_policy** | 0.1300 | 0.0700 | 0.1300 | 0.1100 | 0.1000-0.1200 | 0.0550 |"
            in text
        )
        assert "| ease | 0.1200 | 0.0600 | 0.1200 | 0.1000 |" in text
        assert "| all | ease | 0.1100 | 0.1000 | +0.0100 | [+0.0040, +0.0160] |" in text
        assert "A seeded search of 3 trials (a budget of 3 per model) chose the ease CF model" in text
        assert "## Claimed by the old report vs measured here" in text
        for claim in OLD_REPORT_CLAIMS.values():
            assert (
                f"| {claim['label']} | {claim['claimed']:.3f} | {claim['threshold']:.2f} |" in text
            )
        assert "| Recall@10 | 0.342 | 0.30 | 0.1100 | no |" in text
        assert (
            "| relative Recall@10 lift of the tuned policy over ease | +10.00% | >= +0.00% | PASS |"
            in text
        )
    assert "Not compared: no complete run has sign-off decision APPROVE." in report
    recorded = json.loads((run / "signoff/signoff.json").read_text())
    assert recorded["regression"]["status"] == "not compared"
    assert recorded["old_report_claims"]["recall_at_10"]["measured"] == pytest.approx(0.11)
    assert recorded["old_report_claims"]["recall_at_10"]["claimed"] == 0.342


def test_qa_checklist_checks_every_split_output_and_the_validation_only_choice(tmp_path):
    run = make_run(tmp_path)
    profile = load_profile("ci")
    names = ["train", "test", "cohorts", "train_fit", "validation", "dropped_history"]
    ok = {n: {"success": True} for n in names}
    facts = {"split": {"validation": ok}}
    measures = collect_measures(run, facts)
    gates = compute_gates(measures, profile.signoff, 0.8)
    repro = {"git_commit": "abc1234", "input_data": {"data/ratings.parquet": "x"}}

    def item(facts_, measures_=measures, prefix="Split outputs"):
        items = qa_checklist(run, facts_, measures_, gates, profile, repro)
        return next(i for i in items if i["item"].startswith(prefix))

    split = item(facts)
    assert split["status"] is True and "train_fit, validation, dropped_history" in split["item"]
    assert (
        item({"split": {"validation": {**ok, "dropped_history": {"success": False}}}})["status"]
        is False
    )
    missing = {k: v for k, v in ok.items() if k != "validation"}
    assert item({"split": {"validation": missing}})["status"] is None  # not recorded: not a pass
    choice = item(facts, prefix="Every choice was made on the validation split")
    assert choice["status"] is True
    on_test = {**measures, "tuning_splits": ["test", "validation"]}
    assert item(facts, on_test, prefix="Every choice was made")["status"] is False


def test_handoff_on_a_real_run_follows_its_tables(ml_ranking_run, tmp_path):
    """The real ml-latest-small run (the stage cores up to evaluation, tests/tasks/conftest.py):
    numbers from its own metrics table; a high min_lift changes the decision; a corrupted figure
    then blocks APPROVE; regression.json adds a report section."""
    from tasks.handoff import handoff_core
    from tasks.inventory import append_to_manifest, inventory_core

    src = Path(ml_ranking_run["run_dir"])
    run_dir = tmp_path / src.name
    shutil.copytree(src, run_dir, symlinks=True)
    facts = {k: dict(v) for k, v in ml_ranking_run["facts"].items()}
    facts["edge_cases"] = {"pass_rate": 0.9, "min_pass_rate": 0.8, "gate_passed": True}
    for stale in ("inventory", "signoff"):  # in case the fixture run already holds these stages
        shutil.rmtree(run_dir / stale, ignore_errors=True)
    (run_dir / "reports/final_report.md").unlink(missing_ok=True)
    inventory_core(str(run_dir), None, build_docs=False)

    metrics = pd.read_parquet(run_dir / "eval/metrics.parquet")
    tuned = metrics[
        (metrics.model == "tuned_policy") & (metrics.cohort == "all") & (metrics.k == 10)
    ]
    recall = float(tuned.loc[tuned.metric == "recall", "value"].iloc[0])

    first = handoff_core(str(run_dir), load_profile("ml-latest-small"), facts)["facts"]
    signoff = json.loads((run_dir / "signoff/signoff.json").read_text())
    assert first["decision"] == signoff["decision"]
    gate = next(g for g in signoff["gates"] if g["name"] == "lift_over_best_baseline")
    report = (run_dir / "reports/final_report.md").read_text()
    assert f"{recall:.4f}" in report and f"**Recommendation: {first['decision']}**" in report
    assert "| Recall@10 | 0.342 | 0.30 |" in report

    high = handoff_core(
        str(run_dir), load_profile("ml-latest-small", ["signoff.min_lift=5"]), facts
    )
    assert high["facts"]["decision"] != "APPROVE"
    assert any(r.startswith("lift_over_best_baseline") for r in high["facts"]["reasons"])
    if gate["passed"] and first["decision"] == "APPROVE":
        assert high["facts"]["decision"] == "NEEDS WORK"

    # a figure corrupted after the run: the inventory finds it, and APPROVE is no longer possible
    figure = next((run_dir / "figures").glob("*.png"))
    figure.write_bytes(figure.read_bytes()[:100])
    append_to_manifest(run_dir, [f"figures/{figure.name}"], stage="evaluation")  # re-validate
    out = handoff_core(str(run_dir), load_profile("ml-latest-small"), facts)["facts"]
    assert out["decision"] != "APPROVE"
    assert f"figures/{figure.name}" in out["failed_validations"]

    # a significant regression (nightly) adds a section to the final report and blocks APPROVE
    (run_dir / "eval/regression.json").write_text(
        json.dumps(
            {
                "baseline_run": "artifacts/ml-latest-small/older",
                "compare_with": "last_approved",
                "compared": True,
                "reason": "newest approved run of the profile",
                "significant_drop": True,
                "rows": [
                    {"cohort": "all", "metric": "recall", "k": 10, "baseline": 0.07, "current": 0.05,
                     "delta": -0.02, "ci_low": -0.03, "ci_high": -0.01, "significant": True}
                ],
            }
        )
    )  # fmt: skip
    out = handoff_core(str(run_dir), load_profile("ml-latest-small"), facts)["facts"]
    assert out["decision"] != "APPROVE"
    assert any(r.startswith("no_significant_regression") for r in out["reasons"])
    assert (
        "## Regression against the baseline run"
        in (run_dir / "reports/final_report.md").read_text()
    )
