"""Prefect UI artifacts of a run: the headline metrics table, the gate results and the decision.

Keys are ``<profile>-<name>`` (lowercase and dashes, :func:`artifact_key`): stable across the runs
of one profile, so the Prefect UI shows each profile's history on its own (ci runs do not mix with
ml-latest-small runs). Paths in them are relative to the run directory, which the description
names. Every value comes from the run's own facts and files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = [
    "artifact_key",
    "decided_state",
    "headline_rows",
    "publish_decision_artifact",
    "publish_on_parent",
    "publish_regression_artifact",
    "publish_run_artifacts",
]


def artifact_key(run_dir: str | Path, name: str) -> str:
    """``<profile>-<name>`` for a run directory ``artifacts/<profile>/<run id>``, in the characters
    Prefect allows in a key.

    >>> artifact_key("artifacts/ml-latest-small/20261207T120000Z-abc123", "headline-metrics")
    'ml-latest-small-headline-metrics'
    """
    profile = Path(run_dir).resolve().parent.name
    return re.sub(r"[^a-z0-9-]+", "-", f"{profile}-{name}".lower()).strip("-")


def headline_rows(evaluation_facts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model - the tuned policy first, then every tuned baseline by test Recall@10 -
    with Recall / MAP / NDCG@10 from the evaluation facts' ``headline``.

    >>> headline_rows({"headline": {"ease|recall@10": 0.08, "tuned_policy|recall@10": 0.09,
    ...     "popularity|recall@10": 0.05}})[0]["model"]
    'tuned_policy'
    """
    rows: dict[str, dict[str, Any]] = {}
    for key, value in evaluation_facts.get("headline", {}).items():
        model, metric = key.split("|", 1)
        rows.setdefault(model, {"model": model})[metric] = round(float(value), 4)
    ordered = sorted(rows.values(), key=lambda r: (r["model"] != "tuned_policy", -r.get("recall@10", 0.0), r["model"]))
    return ordered


def _gate_lines(run_dir: str) -> list[str]:
    """Measured value, threshold and pass of each acceptance gate (eval/gates.json)."""
    import json

    path = Path(run_dir) / "eval" / "gates.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    lines = ["| gate | measured | threshold | passed |", "|---|---|---|---|"]
    for g in doc.get("gates", []):
        measured = g.get("measured")
        shown = "not measured" if measured is None else f"{float(measured):.4f}"
        passed = {True: "yes", False: "**no**", None: "no evidence"}[g.get("passed")]
        lines.append(f"| {g['name']} | {shown} | {float(g.get('threshold', 0.0)):.4f} | {passed} |")
    best = doc.get("best_baseline")
    return [f"Best baseline on test: **{best}**.", "", *lines] if best else lines


def _key(run_dir: str, name: str, keyed: bool) -> str | None:
    return artifact_key(run_dir, name) if keyed else None


def publish_run_artifacts(evaluation_facts: dict[str, Any], run_dir: str, keyed: bool = True) -> None:
    """Create the ``<profile>-headline-metrics`` table and ``<profile>-acceptance-gates`` markdown
    artifacts (``keyed=False``: the same, without keys - copies on a parent flow run's page)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(
        key=_key(run_dir, "headline-metrics", keyed),
        table=headline_rows(evaluation_facts),
        description=f"Recall/MAP/NDCG@10 on test of the tuned policy and every tuned baseline ({run_dir})",
    )
    failed = evaluation_facts.get("failed_gates", [])
    verdict = "all gates passed" if evaluation_facts.get("gates_passed") else f"FAILED: {', '.join(failed)}"
    lines = ["# Acceptance gates", "", verdict, "", *_gate_lines(run_dir), ""]
    lines.append("Details: `eval/gates.json`, report `reports/offline_metrics.md` (in the run directory).")
    create_markdown_artifact(
        key=_key(run_dir, "acceptance-gates", keyed),
        markdown="\n".join(lines) + "\n",
        description=f"Acceptance gates of the tuned policy ({run_dir})",
    )


def publish_decision_artifact(handoff_facts: dict[str, Any], run_dir: str, keyed: bool = True) -> None:
    """Create the ``<profile>-signoff-decision`` markdown artifact: the decision and its reasons."""
    from prefect.artifacts import create_markdown_artifact

    decision = handoff_facts.get("decision", "unknown")
    reasons = handoff_facts.get("reasons", [])
    lines = [f"# Decision: {decision}", ""]
    lines += [f"- {reason}" for reason in reasons] or ["- (no reasons recorded)"]
    lines += [
        "",
        "Sign-off package: `signoff/handoff.md`, machine-readable `signoff/signoff.json`; final "
        f"report `reports/final_report.md` (in the run directory `{run_dir}`).",
    ]
    create_markdown_artifact(
        key=_key(run_dir, "signoff-decision", keyed),
        markdown="\n".join(lines) + "\n",
        description=f"APPROVE / NEEDS WORK / REJECT computed from the gates ({run_dir})",
    )


def publish_regression_artifact(run_dir: str, keyed: bool = True) -> None:
    """Create the ``<profile>-regression-check`` markdown artifact from ``reports/regression.md``."""
    from prefect.artifacts import create_markdown_artifact

    report = Path(run_dir) / "reports" / "regression.md"
    if not report.exists():
        return
    create_markdown_artifact(
        key=_key(run_dir, "regression-check", keyed),
        markdown=report.read_text(encoding="utf-8"),
        description=f"Tuned policy vs the baseline run, per cohort ({run_dir})",
    )


def publish_on_parent(summary: dict[str, Any]) -> None:
    """The run's headline, gates, regression and decision artifacts again, without keys, on the
    page of a flow run that ran the pipeline as a subflow (``nightly-reevaluation``): the parent
    run's page shows the outcome, and each key's history keeps one version per run."""
    run_dir = summary["run_dir"]
    publish_run_artifacts(summary, run_dir, keyed=False)
    publish_regression_artifact(run_dir, keyed=False)
    decision = {"decision": summary.get("decision"), "reasons": summary.get("decision_reasons", [])}
    publish_decision_artifact(decision, run_dir, keyed=False)


def decided_state(summary: dict[str, Any]) -> Any:
    """The final state of a flow run that decided: Completed, named after the decision (APPROVE,
    NEEDS WORK or REJECT) with the reasons as its message, so the Prefect UI's runs list shows the
    outcome instead of a plain "Completed". Calling the flow still returns ``summary``."""
    from prefect.states import Completed

    decision = summary.get("decision") or "unknown"
    reasons = list(summary.get("decision_reasons") or [])
    message = f"decision {decision}" + (f": {'; '.join(reasons)}" if reasons else "")
    return Completed(name=decision, message=message[:2000], data=summary)
