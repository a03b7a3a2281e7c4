"""What the sign-off measures, from the run's own files (part of :mod:`tasks.signoff`).

:func:`collect_measures` reads ``eval/metrics.parquet`` and ``eval/paired_tests.parquet`` (the
comparison with the baselines, through :func:`tasks.tuning.acceptance_gates` - never
``eval/gates.json``), ``tuning/validation_metrics.csv``, ``tuning/policy.json``,
``tuning/tuning_results.csv``, the artifact manifest, ``eval/regression.json`` and the stages'
facts. No threshold is applied here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.manifest import MANIFEST
from tasks.signoff._gates import finite

__all__ = ["METRICS", "POLICY", "collect_measures", "recorded_facts"]

#: The tuned policy's name in the metrics tables, and the metrics the reports show at K=10.
POLICY = "tuned_policy"
METRICS = ("recall", "map", "ndcg")

# ---------------------------------------------------------------------------------------------
# measures from the run's own files


def _metric_row(
    metrics: pd.DataFrame, model: str, metric: str, k: int = 10, cohort: str = "all"
) -> pd.Series | None:
    rows = metrics.loc[
        (metrics["model"].astype(str) == model)
        & (metrics["cohort"].astype(str) == cohort)
        & (metrics["metric"].astype(str) == metric)
        & (metrics["k"].astype(int) == k)
    ]
    return rows.iloc[0] if len(rows) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except ValueError:
        return None


def recorded_facts(run_dir: Path | str) -> dict[str, dict[str, Any]]:
    """The stages' facts a finished run recorded (``logs/run_status.json``), and the evaluation's
    own record (``eval/eval_manifest.json``) when the flow's log is absent: what the sign-off needs
    to re-decide a run from its directory alone."""
    root = Path(run_dir)
    status = _read_json(root / "logs/run_status.json")
    facts = dict(status.get("facts") or {}) if isinstance(status, dict) else {}
    if "evaluation" not in facts:
        manifest = _read_json(root / "eval/eval_manifest.json")
        if isinstance(manifest, dict) and isinstance(manifest.get("facts"), dict):
            facts["evaluation"] = manifest["facts"]
    return {k: v for k, v in facts.items() if isinstance(v, dict)}


def _comparison_measures(metrics: pd.DataFrame, paired: pd.DataFrame | None) -> dict[str, Any]:
    """Lift, the paired difference to the best baseline and the cohort checks, through
    :func:`tasks.tuning.acceptance_gates` (its ``min_lift`` does not change a measured value)."""
    from tasks.tuning import acceptance_gates

    models = list(dict.fromkeys(metrics["model"].astype(str)))
    baselines = [m for m in models if m != POLICY]
    out: dict[str, Any] = {"baselines": baselines}
    if not baselines:
        return out
    found = acceptance_gates(metrics, paired, min_lift=0.0, baselines=baselines)
    by_name = {g["name"]: g for g in found["gates"]}
    lift = by_name["lift_over_best_baseline"]
    if isinstance(lift.get("details"), dict) and lift["details"]:
        details = lift["details"]
        out["best_baseline"] = details["best_baseline"]
        out["best_baseline_recall_at_10"] = details["baseline_value"]
        out["lift"] = finite(lift["measured"])
        if out["lift"] is None:
            out["lift_note"] = f"{details['best_baseline']} scores {details['baseline_value']:g}"
    sig = by_name["significantly_better_than_best_baseline"]
    if isinstance(sig.get("details"), dict) and "ci_high" in sig["details"]:
        d = sig["details"]
        out["paired_best"] = {
            "baseline": d["best_baseline"],
            "mean_diff": d["mean_diff"],
            "ci_low": d["ci_low"],
            "ci_high": d["ci_high"],
            "p_value": _paired_p(paired, d["best_baseline"], "all"),
            "n_users": d["n_users"],
        }
    cohorts: dict[str, dict[str, Any] | None] = {}
    for name, gate in by_name.items():
        if not name.startswith("no_cohort_worse_"):
            continue
        cohort = name.removeprefix("no_cohort_worse_")
        d = gate.get("details")
        if gate["passed"] is None or not isinstance(d, dict):
            cohorts[cohort] = None
            continue
        entry = {
            "best_baseline": d["best_baseline"],
            "policy_value": d["policy_value"],
            "baseline_value": d["baseline_value"],
            "n_users": d["n_users"],
            "rule": d.get("rule"),
        }
        if d.get("rule") == "paired":
            entry.update(
                mean_diff=float(gate["measured"]),
                ci_low=d["ci_low"],
                ci_high=d["ci_high"],
                p_value=_paired_p(paired, d["best_baseline"], cohort),
                measured=d["ci_high"],
            )
        else:
            entry.update(
                mean_diff=d["policy_value"] - d["baseline_value"],
                measured=d["policy_value"] - d["baseline_ci_low"],
            )
        cohorts[cohort] = entry
    out["cohorts"] = cohorts
    return out


def _paired_p(paired: pd.DataFrame | None, baseline: str, cohort: str) -> float | None:
    if paired is None or "p_value" not in paired.columns:
        return None
    hit = paired.loc[
        (paired["model"].astype(str) == POLICY)
        & (paired["baseline"].astype(str) == baseline)
        & (paired["cohort"].astype(str) == cohort)
        & (paired["metric"].astype(str) == "recall")
        & (paired["k"].astype(int) == 10)
    ]
    return None if hit.empty else finite(hit.iloc[0]["p_value"])


def _models_table(
    metrics: pd.DataFrame | None, validation: pd.DataFrame | None
) -> list[dict[str, Any]]:
    """One row per model (tuned policy first): validation Recall/MAP/NDCG@10
    (tuning/validation_metrics.csv) and test Recall/MAP/NDCG@10 with the Recall CI, all users."""
    order: list[str] = [POLICY]
    if metrics is not None:
        order += list(metrics["model"].astype(str))
    if validation is not None:
        order += list(validation["model"].astype(str))
    rows = []
    for model in dict.fromkeys(order):
        row: dict[str, Any] = {"model": model, "validation": None, "test": None}
        if validation is not None:
            hit = validation.loc[validation["model"].astype(str) == model]
            if len(hit):
                r = hit.iloc[0]
                row["validation"] = {m: finite(r.get(f"{m}@10")) for m in METRICS} | {
                    "users": int(r["users"]) if "users" in r and pd.notna(r["users"]) else None
                }
        if metrics is not None:
            test: dict[str, Any] = {}
            for m in METRICS:
                r = _metric_row(metrics, model, m)
                if r is not None:
                    test[m] = float(r["value"])
                    test["users"] = int(r["n_users"])
                    if m == "recall":
                        test["recall_ci"] = [float(r["ci_low"]), float(r["ci_high"])]
            row["test"] = test or None
        if row["validation"] is not None or row["test"] is not None:
            rows.append(row)
    return rows


def _selection(policy: Mapping[str, Any]) -> dict[str, Any]:
    """What the reports say about how the policy was chosen, from tuning/policy.json."""
    search = policy.get("search") or {}
    trials = search.get("trials")
    return {
        "how_selected": (policy.get("provenance") or {}).get("how_selected"),
        "model": (policy.get("collab") or {}).get("model"),
        "alphas": policy.get("alphas"),
        "lambda_div": (policy.get("ranking") or {}).get("lambda_div"),
        "validation": policy.get("validation") or {},
        "policy_trials": trials.get("policy") if isinstance(trials, dict) else trials,
        "n_trials": search.get("n_trials"),
        "cut_short": search.get("cut_short"),
        "cut_short_studies": list(search.get("cut_short_studies") or []),
        "seconds": search.get("seconds"),
        "seed": search.get("seed"),
    }


def collect_measures(run_dir: Path | str, facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every measured value the gates and the reports need, from the run's own files.

    ``facts``: stage name -> that stage's facts (``edge_cases`` may be absent: then the edge-case
    gate is "not measured", unless ``edge_cases/results.parquet`` has a boolean ``passed`` column).
    The comparison with the baselines comes from ``eval/metrics.parquet`` and
    ``eval/paired_tests.parquet`` (:func:`_comparison_measures`); thresholds are not applied here.
    """
    root = Path(run_dir)
    out: dict[str, Any] = {}
    metrics = paired = validation = None
    if (root / "eval/metrics.parquet").is_file():
        metrics = pd.read_parquet(root / "eval/metrics.parquet")
    if (root / "eval/paired_tests.parquet").is_file():
        paired = pd.read_parquet(root / "eval/paired_tests.parquet")
    if (root / "tuning/validation_metrics.csv").is_file():
        validation = pd.read_csv(root / "tuning/validation_metrics.csv")
    if metrics is not None:
        for key, metric in (
            ("recall_at_10", "recall"),
            ("map_at_10", "map"),
            ("ndcg_at_10", "ndcg"),
            ("user_coverage_at_10", "user_coverage"),
        ):
            row = _metric_row(metrics, POLICY, metric)
            out[key] = None if row is None else float(row["value"])
            if row is not None and metric == "recall":
                out["recall_at_10_ci"] = [float(row["ci_low"]), float(row["ci_high"])]
                out["n_users"] = int(row["n_users"])
        out.update(_comparison_measures(metrics, paired))
    out["models"] = _models_table(metrics, validation)
    policy = _read_json(root / "tuning/policy.json")
    if isinstance(policy, dict):
        out["selection"] = _selection(policy)
        cut = (policy.get("search") or {}).get("cut_short")
        if cut is not None:
            out["search_completed"] = not bool(cut)
            out["cut_short_studies"] = out["selection"]["cut_short_studies"]
    if (root / "tuning/tuning_results.csv").is_file():
        splits = pd.read_csv(root / "tuning/tuning_results.csv", usecols=lambda c: c == "split")
        out["tuning_splits"] = (
            sorted(set(splits["split"].astype(str))) if "split" in splits.columns else []
        )
    edge = facts.get("edge_cases") or {}
    if edge.get("pass_rate") is not None:
        out["edge_case_pass_rate"] = float(edge["pass_rate"])
        out["edge_case_source"] = "edge_cases stage facts (edge_cases/results.parquet)"
        out["edge_case_per_category"] = dict(edge.get("per_category", {}))
    elif (root / "edge_cases/results.parquet").is_file():
        results = pd.read_parquet(root / "edge_cases/results.parquet")
        if "passed" in results.columns and len(results):
            out["edge_case_pass_rate"] = float(results["passed"].astype(bool).mean())
            out["edge_case_source"] = "edge_cases/results.parquet"
    manifest = _read_json(root / MANIFEST)
    if isinstance(manifest, dict):
        out["validation_rate"] = manifest.get("validation_rate")
        out["failed_validations"] = len(manifest.get("failed", []))
        out["failed_files"] = [f["path"] for f in manifest.get("failed", [])]
        out["n_files"] = manifest.get("n_files")
        out["data_docs"] = manifest.get("data_docs")
    regression = _read_json(root / "eval/regression.json")
    if isinstance(regression, dict):
        compared = bool(regression.get("compared", regression.get("baseline_run") is not None))
        out["regression"] = regression
        out["regression_compared"] = compared
        if compared:
            rows = regression.get("rows", []) or []
            out["significant_regressions"] = sum(1 for r in rows if r.get("significant"))
            out["significant_drop"] = bool(regression.get("significant_drop"))
            if out["significant_drop"] and not out["significant_regressions"]:
                out["significant_regressions"] = 1  # the stage says so even without a flagged row
    return out
