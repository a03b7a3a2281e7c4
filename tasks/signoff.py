"""Sign-off package and final report (stage ``handoff``, issues 4.4.1 and 4.4.3): the decision.

Place in the pipeline: the last stage, after ``inventory``. It reads the run's own tables and the
earlier stages' facts, measures every gate, computes the recommendation and writes
``reports/final_report.md``, ``signoff/handoff.md``, ``signoff/signoff_form.md`` (blank) and
``signoff/signoff.json``; then it adds these four files to the artifact manifest (hashed and
validated, :func:`tasks.inventory.append_to_manifest`). Never cached: its output names the run.

Gates (thresholds from the profile's ``[signoff]`` section - the old system's values are the
defaults - and ``edge_cases.min_pass_rate``); "measured" always comes from the run's own files:

====================================  =====================================================  ========
gate                                  measured (source)                                      effect
====================================  =====================================================  ========
better_than_best_baseline             tuned Recall@10 / best baseline's - 1 (metrics.parquet)  reject
artifact_validation_rate              files passing GX / files (artifact_manifest.json)      reject
recall_at_10 >= min_recall_at_10      tuned policy, all users, K=10 (eval/metrics.parquet)   approve
map_at_10 >= min_map_at_10            idem                                                   approve
user_coverage_at_10 >= min_user_cov.  idem                                                   approve
edge_case_pass_rate >= min_pass_rate  edge_cases stage facts (or edge_cases/results.parquet) approve
artifact_validation_failures == 0     failed files in the manifest                           approve
evaluation_acceptance_gates == 1      share of eval/gates.json gates passed (if required)    approve
no_significant_regression == 0        significant rows of eval/regression.json (if present)  approve
====================================  =====================================================  ========

Decision rule (:func:`decide`, a pure function of the gates):

- **REJECT** when a gate with effect "reject" fails: the tuned policy is not better than its best
  baseline, or the artifact validation rate is below ``min_artifact_validation``;
- **APPROVE** when every gate passes (so any failed artifact validation, any significant regression
  and any gate that could not be measured - e.g. a stage that did not run - prevents APPROVE);
- **NEEDS WORK** otherwise. The reasons list every failed gate with its measured value.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.io import ArtifactRef, file_fingerprint, write_json, write_text
from tasks.profile import RunProfile
from tasks.stage import StageOutput, run_stage_core

__all__ = [
    "DECISIONS",
    "FILES",
    "build_handoff",
    "collect_measures",
    "compute_gates",
    "decide",
    "handoff_core",
    "signoff_check_frame",
]

DECISIONS = ("APPROVE", "NEEDS WORK", "REJECT")
FILES = {
    "final_report": "reports/final_report.md",
    "handoff": "signoff/handoff.md",
    "signoff_form": "signoff/signoff_form.md",
    "signoff": "signoff/signoff.json",
}
#: Packages whose versions the reproducibility record lists.
PACKAGES = (
    "movie-rec-optimizer",
    "prefect",
    "great_expectations",
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "implicit",
    "matplotlib",
    "pydantic",
)
REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# gates and the decision (pure)


def passes(measured: float | None, threshold: float, comparison: str) -> bool:
    """``measured <comparison> threshold``; a value that was not measured (None/NaN) never passes.

    >>> passes(0.31, 0.30, ">="), passes(None, 0.30, ">="), passes(0.0, 0.0, ">"), passes(0, 0, "<=")
    (True, False, False, True)
    """
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return False
    ops = {">=": measured >= threshold, ">": measured > threshold, "<=": measured <= threshold}
    if comparison not in ops:
        raise ValueError(f"unknown comparison {comparison!r}; use one of {sorted(ops)}")
    return bool(ops[comparison])


def _gate(
    name: str,
    label: str,
    measured: float | None,
    threshold: float,
    comparison: str,
    source: str,
    effect: str = "approve",
    note: str = "",
) -> dict[str, Any]:
    if measured is not None:
        measured = float(measured)
        if math.isnan(measured):
            measured = None
    return {
        "name": name,
        "label": label,
        "measured": measured,
        "threshold": float(threshold),
        "comparison": comparison,
        "passed": passes(measured, threshold, comparison),
        "effect": effect,
        "source": source,
        "note": note,
    }


def compute_gates(
    measures: Mapping[str, Any],
    cfg: Any,
    min_edge_pass_rate: float,
) -> list[dict[str, Any]]:
    """The gates from measured values (:func:`collect_measures`) and the thresholds.

    ``cfg`` is the profile's :class:`~tasks.profile.SignoffSection`. A measure that is missing or
    None gives a gate that fails with the note "not measured".

    >>> from tasks.profile import SignoffSection
    >>> m = {"recall_at_10": 0.31, "map_at_10": 0.26, "user_coverage_at_10": 0.9, "lift": 0.1,
    ...      "edge_case_pass_rate": 0.9, "validation_rate": 1.0, "failed_validations": 0,
    ...      "eval_gates_share": 1.0}
    >>> decide(compute_gates(m, SignoffSection(), 0.8))[0]
    'APPROVE'
    >>> decide(compute_gates(m, SignoffSection(min_recall_at_10=0.35), 0.8))[0]
    'NEEDS WORK'
    """
    best = measures.get("best_baseline") or "best baseline"
    gates = [
        _gate(
            "better_than_best_baseline",
            f"tuned policy Recall@10 lift over {best}",
            measures.get("lift"),
            0.0,
            ">",
            "eval/metrics.parquet (recall, K=10, cohort all)",
            effect="reject",
        ),
        _gate(
            "artifact_validation_rate",
            "artifact validation rate (GX)",
            measures.get("validation_rate"),
            cfg.min_artifact_validation,
            ">=",
            "inventory/artifact_manifest.json",
            effect="reject",
        ),
        _gate(
            "recall_at_10",
            "Recall@10, tuned policy, all users",
            measures.get("recall_at_10"),
            cfg.min_recall_at_10,
            ">=",
            "eval/metrics.parquet",
        ),
        _gate(
            "map_at_10",
            "MAP@10, tuned policy, all users",
            measures.get("map_at_10"),
            cfg.min_map_at_10,
            ">=",
            "eval/metrics.parquet",
        ),
        _gate(
            "user_coverage_at_10",
            "user coverage at K=10, tuned policy",
            measures.get("user_coverage_at_10"),
            cfg.min_user_coverage,
            ">=",
            "eval/metrics.parquet",
        ),
        _gate(
            "edge_case_pass_rate",
            "edge-case pass rate",
            measures.get("edge_case_pass_rate"),
            min_edge_pass_rate,
            ">=",
            measures.get("edge_case_source", "edge_cases stage"),
        ),
        _gate(
            "artifact_validation_failures",
            "artifacts failing validation",
            measures.get("failed_validations"),
            0.0,
            "<=",
            "inventory/artifact_manifest.json",
        ),
    ]
    if cfg.require_eval_gates:
        gates.append(
            _gate(
                "evaluation_acceptance_gates",
                "share of the evaluation's acceptance gates passed",
                measures.get("eval_gates_share"),
                1.0,
                ">=",
                "eval/gates.json",
                note=", ".join(measures.get("eval_failed_gates", [])),
            )
        )
    if cfg.require_no_regression and measures.get("regression_checked"):
        gates.append(
            _gate(
                "no_significant_regression",
                "significant drops vs the baseline run",
                measures.get("significant_regressions"),
                0.0,
                "<=",
                "eval/regression.json",
            )
        )
    return gates


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def _reason(g: Mapping[str, Any]) -> str:
    text = f"{g['name']}: {g['label']} = {_gate_value(g)}, needs {_gate_threshold(g)}"
    if g.get("note"):
        text += f" ({g['note']})"
    return text


def decide(gates: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The recommendation and its reasons from the gates (module docstring: the rule).

    >>> g = lambda name, ok, effect="approve": {"name": name, "label": name, "measured": 1.0,
    ...     "threshold": 0.0, "comparison": ">=", "passed": ok, "effect": effect, "note": ""}
    >>> decide([g("a", True), g("b", True)])[0]
    'APPROVE'
    >>> decide([g("a", True), g("b", False)])[0]
    'NEEDS WORK'
    >>> decide([g("a", False, "reject"), g("b", False)])[0]
    'REJECT'
    """
    if not gates:
        return "NEEDS WORK", ["no gate could be evaluated"]
    failed = [g for g in gates if not g["passed"]]
    rejecting = [g for g in failed if g.get("effect") == "reject"]
    if rejecting:
        reasons = [f"REJECT because {_reason(g)}" for g in rejecting]
        reasons += [_reason(g) for g in failed if g.get("effect") != "reject"]
        return "REJECT", reasons
    if failed:
        return "NEEDS WORK", [_reason(g) for g in failed]
    return "APPROVE", [f"every gate passed ({len(gates)} gates)"]


def signoff_check_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """signoff.json as the ``signoff`` suite's facts table: one row per gate; ``pass_consistent``
    (the recorded flag equals measured vs threshold) and ``decision_matches_gates`` (the recorded
    decision equals :func:`decide` on the recorded gates)."""
    gates = list(data.get("gates", []))
    recomputed = decide(gates)[0] if gates else None
    rows = []
    for g in gates:
        measured = g.get("measured")
        rows.append(
            {
                "name": str(g.get("name")),
                "measured": float("nan") if measured is None else float(measured),
                "threshold": float(g.get("threshold", float("nan"))),
                "passed": bool(g.get("passed")),
                "pass_consistent": bool(g.get("passed"))
                == passes(measured, float(g.get("threshold", 0.0)), str(g.get("comparison", ">="))),
                "decision": str(data.get("decision")),
                "decision_matches_gates": recomputed == data.get("decision"),
            }
        )
    columns = ["name", "measured", "threshold", "passed", "pass_consistent", "decision"]
    return pd.DataFrame(rows, columns=[*columns, "decision_matches_gates"])


# ---------------------------------------------------------------------------------------------
# measures from the run's own files


def _metric(
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
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def collect_measures(run_dir: Path | str, facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every measured value the gates need, from the run's own tables and the stages' facts.

    ``facts``: stage name -> that stage's facts (``edge_cases`` may be absent: then the edge-case
    gate is "not measured", unless ``edge_cases/results.parquet`` has a boolean ``passed`` column).
    """
    from tasks.tuning import BASELINE_MODELS, POLICY_MODEL

    root = Path(run_dir)
    out: dict[str, Any] = {}
    metrics_path = root / "eval/metrics.parquet"
    if metrics_path.is_file():
        metrics = pd.read_parquet(metrics_path)
        for key, metric in (
            ("recall_at_10", "recall"),
            ("map_at_10", "map"),
            ("user_coverage_at_10", "user_coverage"),
        ):
            row = _metric(metrics, POLICY_MODEL, metric)
            out[key] = None if row is None else float(row["value"])
            if row is not None and metric != "user_coverage":
                out[f"{key}_ci"] = [float(row["ci_low"]), float(row["ci_high"])]
                out["n_users"] = int(row["n_users"])
        base = [(m, _metric(metrics, m, "recall")) for m in BASELINE_MODELS]
        base = [(m, float(r["value"])) for m, r in base if r is not None]
        if base and out.get("recall_at_10") is not None:
            best, value = max(base, key=lambda mv: (mv[1], mv[0]))
            mine = out["recall_at_10"]
            out["best_baseline"], out["best_baseline_recall_at_10"] = best, value
            out["lift"] = (mine - value) / value if value > 0 else (math.inf if mine > 0 else None)
        out["models_at_10"] = _models_table(metrics)
    gates_doc = _read_json(root / "eval/gates.json")
    if isinstance(gates_doc, dict) and gates_doc.get("gates"):
        eval_gates = gates_doc["gates"]
        out["eval_gates_share"] = sum(1 for g in eval_gates if g.get("passed")) / len(eval_gates)
        out["eval_failed_gates"] = [g["name"] for g in eval_gates if not g.get("passed")]
    elif "evaluation" in facts and "gates_passed" in facts["evaluation"]:
        ev = facts["evaluation"]
        out["eval_gates_share"] = 1.0 if ev["gates_passed"] else 0.0
        out["eval_failed_gates"] = list(ev.get("failed_gates", []))
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
    manifest = _read_json(root / "inventory/artifact_manifest.json")
    if isinstance(manifest, dict):
        out["validation_rate"] = manifest.get("validation_rate")
        out["failed_validations"] = len(manifest.get("failed", []))
        out["failed_files"] = [f["path"] for f in manifest.get("failed", [])]
        out["n_files"] = manifest.get("n_files")
        out["data_docs"] = manifest.get("data_docs")
    regression = _read_json(root / "eval/regression.json")
    if isinstance(regression, dict):
        rows = regression.get("rows", []) or []
        out["regression_checked"] = True
        out["significant_regressions"] = sum(1 for r in rows if r.get("significant"))
        out["significant_drop"] = bool(regression.get("significant_drop"))
        if out["significant_drop"] and not out["significant_regressions"]:
            out["significant_regressions"] = 1  # the stage says so even without a flagged row
        out["regression"] = regression
    return out


def _models_table(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Recall / MAP / NDCG / user coverage at K=10 over all users, one row per model (with CIs)."""
    rows = []
    for model in dict.fromkeys(metrics["model"].astype(str)):
        row: dict[str, Any] = {"model": model}
        for metric in ("recall", "map", "ndcg", "user_coverage"):
            r = _metric(metrics, model, metric)
            if r is not None:
                row[metric] = float(r["value"])
                row[f"{metric}_ci"] = [float(r["ci_low"]), float(r["ci_high"])]
                row["n_users"] = int(r["n_users"])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# checklist and reproducibility


def _stage_validation_ok(stage_facts: Mapping[str, Any], names: Sequence[str]) -> bool | None:
    validation = stage_facts.get("validation") if stage_facts else None
    if not isinstance(validation, Mapping):
        return None
    found = [validation.get(n) for n in names]
    if any(v is None for v in found):
        return None
    return all(bool(v.get("success")) for v in found)


def qa_checklist(
    run_dir: Path,
    facts: Mapping[str, Mapping[str, Any]],
    measures: Mapping[str, Any],
    gates: Sequence[Mapping[str, Any]],
    profile: RunProfile,
    repro: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Each box from a real status: ``{"item", "status": True | False | None (not run), "evidence"}``."""
    from tasks.inventory import MANIFEST, scan_run_dir

    by_name = {g["name"]: g for g in gates}
    ev = facts.get("evaluation", {})
    items: list[dict[str, Any]] = []

    def add(item: str, status: bool | None, evidence: str) -> None:
        items.append({"item": item, "status": status, "evidence": evidence})

    ok = _stage_validation_ok(facts.get("ingest", {}), ["ratings", "movies"])
    add(
        "Input tables (ratings, movies) passed their GX suites at ingest",
        ok,
        "ingest facts: validation",
    )
    ok = _stage_validation_ok(facts.get("split", {}), ["train", "test", "cohorts"])
    add(
        "Split outputs (train, test, cohorts) passed their GX suites", ok, "split facts: validation"
    )
    if "users_eval" in ev:
        every = (
            ev.get("users_eval") == ev.get("users_with_relevant") and profile.eval.sample_users == 0
        )
        add(
            "Every test user with a relevant held-out item was evaluated (no sampling)",
            bool(every),
            f"{ev.get('users_eval')} of {ev.get('users_with_relevant')} users; eval.sample_users = "
            f"{profile.eval.sample_users}",
        )
    else:
        add(
            "Every test user with a relevant held-out item was evaluated",
            None,
            "evaluation facts absent",
        )
    for name, item in (
        ("better_than_best_baseline", "Tuned policy beats its best baseline on Recall@10"),
        ("evaluation_acceptance_gates", "Evaluation acceptance gates pass (eval/gates.json)"),
        ("edge_case_pass_rate", "Edge cases run and pass at the required rate"),
        ("artifact_validation_failures", "Every artifact passed its Great Expectations validation"),
        ("no_significant_regression", "No significant regression against the baseline run"),
    ):
        g = by_name.get(name)
        if g is None:
            add(item, None, "not required by the profile or not run")
        else:
            status = None if g["measured"] is None else bool(g["passed"])
            add(item, status, f"{_gate_value(g)}, needs {_gate_threshold(g)}; {g['source']}")
    case = facts.get("case_studies") or {}
    report = run_dir / "reports/case_studies.md"
    add(
        "Case studies produced (triptychs and error taxonomy)",
        True if (case or report.is_file()) else None,
        "reports/case_studies.md"
        if report.is_file()
        else ("case_studies facts" if case else "stage did not run"),
    )
    manifest_path = run_dir / MANIFEST
    if manifest_path.is_file():
        listed = {f["path"] for f in json.loads(manifest_path.read_text(encoding="utf-8"))["files"]}
        present = {e.path for e in scan_run_dir(run_dir, hash_files=False)} - set(FILES.values())
        unlisted = sorted(present - listed)
        add(
            "The artifact inventory lists every file of the run (sha256, kind, stage, validation)",
            not unlisted,
            f"{len(listed)} files listed; not listed: {', '.join(unlisted[:5]) or 'none'}",
        )
    else:
        add(
            "The artifact inventory lists every file of the run",
            None,
            "inventory stage did not run",
        )
    docs = measures.get("data_docs")
    add(
        "Great Expectations Data Docs built into the run",
        bool(docs and (run_dir / docs).is_file()) if docs is not None else None,
        str(docs or "no Data Docs recorded"),
    )
    add(
        "Reproducibility recorded (seed, profile, package versions, git commit, input hashes)",
        repro.get("git_commit") != "unknown" and bool(repro.get("input_data")),
        f"git commit {repro.get('git_commit')}; {len(repro.get('input_data', {}))} input hashes",
    )
    return items


def git_commit(repo: Path = REPO_ROOT) -> str:
    """``git rev-parse HEAD`` of the code that ran, or "unknown" (no git, not a checkout)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = done.stdout.strip()
    return text if done.returncode == 0 and len(text) >= 7 else "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def reproducibility(
    run_dir: Path,
    profile: RunProfile,
    facts: Mapping[str, Mapping[str, Any]],
    input_refs: Mapping[str, str],
) -> dict[str, Any]:
    """Seed, profile, versions, git commit and input data hashes.

    ``input_refs``: relative path -> sha256 of the ingest artifacts (the canonical tables). The
    source files named by the ingest facts are hashed too when they still exist.
    """
    ingest = facts.get("ingest", {})
    sources = {}
    for role, path in sorted((ingest.get("source_files") or {}).items()):
        p = Path(path)
        sources[role] = {
            "path": str(p),
            "sha256": file_fingerprint(p) if p.is_file() else "file gone",
        }
    profile_file = run_dir / "profile.toml"
    return {
        "seed": profile.run.seed,
        "eval_seed": profile.eval.seed,
        "profile": profile.name,
        "profile_file": "profile.toml" if profile_file.is_file() else None,
        "profile_sha256": file_fingerprint(profile_file) if profile_file.is_file() else None,
        "profile_toml": profile.to_toml(),
        "data_source": profile.data.source,
        "data_format": ingest.get("format"),
        "git_commit": git_commit(),
        "package_versions": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}",
        "command": f"movierec run --profile artifacts/{profile.name}/{run_dir.name}/profile.toml"
        + (" --data-dir DIR" if profile.data.source == "movielens" else ""),
        "input_data": dict(sorted(input_refs.items())),
        "source_files": sources,
    }


# ---------------------------------------------------------------------------------------------
# documents


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.2f}%"


def _gate_value(g: Mapping[str, Any]) -> str:
    if g["name"] in (
        "artifact_validation_rate",
        "edge_case_pass_rate",
        "evaluation_acceptance_gates",
    ):
        return _pct(g["measured"])
    if g["name"] == "better_than_best_baseline":
        return "not measured" if g["measured"] is None else f"{100 * g['measured']:+.2f}%"
    if g["name"] in ("artifact_validation_failures", "no_significant_regression"):
        return "not measured" if g["measured"] is None else f"{int(g['measured'])}"
    return _fmt(g["measured"])


def _gate_threshold(g: Mapping[str, Any]) -> str:
    if g["name"] in (
        "artifact_validation_rate",
        "edge_case_pass_rate",
        "evaluation_acceptance_gates",
    ):
        return f"{g['comparison']} {_pct(g['threshold'])}"
    if g["name"] == "better_than_best_baseline":
        return f"{g['comparison']} {100 * g['threshold']:+.2f}%"
    if g["name"] in ("artifact_validation_failures", "no_significant_regression"):
        return f"{g['comparison']} {int(g['threshold'])}"
    return f"{g['comparison']} {_fmt(g['threshold'])}"


def gate_table(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| gate | measured | threshold | pass | effect if failed | source |",
        "|---|---:|---:|:---:|---|---|",
    ]
    for g in gates:
        mark = "PASS" if g["passed"] else "FAIL"
        effect = "REJECT" if g["effect"] == "reject" else "blocks APPROVE"
        note = f" ({g['note']})" if g.get("note") else ""
        lines.append(
            f"| {g['label']} | {_gate_value(g)} | {_gate_threshold(g)} | {mark} | {effect} | "
            f"`{g['source']}`{note} |"
        )
    return lines


RULE_TEXT = (
    "REJECT when the tuned policy is not better than its best baseline (Recall@10, all users) or the "
    "artifact validation rate is below its threshold; APPROVE only when every gate passes - so any "
    "failed artifact validation, any significant regression and any gate that could not be measured "
    "prevents APPROVE; NEEDS WORK otherwise."
)


def _link_or_absent(root: Path, relpath: str, from_dir: str, text: str | None = None) -> str:
    target = root / relpath
    label = text or relpath
    if target.exists() or relpath in FILES.values():  # the handoff's own files are all written
        rel = (
            Path(relpath).relative_to(from_dir).as_posix()
            if relpath.startswith(from_dir + "/")
            else None
        )
        href = rel or "../" * len(Path(from_dir).parts) + relpath
        return f"[{label}]({href})"
    return f"{label} (not produced by this run)"


def render_final_report(
    root: Path,
    profile: RunProfile,
    decision: str,
    reasons: Sequence[str],
    gates: Sequence[Mapping[str, Any]],
    measures: Mapping[str, Any],
    facts: Mapping[str, Mapping[str, Any]],
) -> str:
    """``reports/final_report.md``: decision, headline table, links to every section; numbers from
    the run's own files (metrics.parquet, gates.json, the manifest, the stages' facts)."""
    run_id = root.name
    link = lambda rel, text=None: _link_or_absent(root, rel, "reports", text)  # noqa: E731
    lines = [
        f"# Final report - {profile.name} run {run_id}",
        "",
        f"**Recommendation: {decision}** (computed from the gates below; the rule is in "
        f"{link('signoff/handoff.md', 'the sign-off package')}).",
        "",
        "## Executive summary",
        "",
    ]
    n_users = measures.get("n_users")
    if measures.get("recall_at_10") is not None:
        ci = measures.get("recall_at_10_ci", [None, None])
        lines.append(
            f"- The tuned policy reaches Recall@10 {_fmt(measures['recall_at_10'])} "
            f"(CI {_fmt(ci[0])}-{_fmt(ci[1])}) and MAP@10 {_fmt(measures.get('map_at_10'))} over "
            f"{n_users or 0:,} evaluated users (every test user with a relevant held-out item)."
        )
    if measures.get("best_baseline") is not None:
        lift = measures.get("lift")
        lift_text = "not measured" if lift is None else f"{100 * lift:+.2f}%"
        lines.append(
            f"- Best baseline: {measures['best_baseline']} with Recall@10 "
            f"{_fmt(measures['best_baseline_recall_at_10'])}; lift of the tuned policy {lift_text}."
        )
    if measures.get("validation_rate") is not None:
        lines.append(
            f"- Artifacts: {measures.get('n_files')} files inventoried, validation rate "
            f"{_pct(measures['validation_rate'])}, {measures.get('failed_validations', 0)} failed."
        )
    if measures.get("edge_case_pass_rate") is not None:
        lines.append(f"- Edge cases: pass rate {_pct(measures['edge_case_pass_rate'])}.")
    lines += ["", "Reasons for the recommendation:", ""] + [f"- {r}" for r in reasons]
    lines += ["", "## Headline gates", ""] + gate_table(gates)
    models = measures.get("models_at_10") or []
    if models:
        lines += [
            "",
            "## Models at K=10, all evaluated users",
            "",
            "From `eval/metrics.parquet` (bootstrap confidence intervals).",
            "",
            "| model | Recall@10 | 95% CI | MAP@10 | NDCG@10 | user coverage | users |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for m in models:
            ci = m.get("recall_ci", [None, None])
            lines.append(
                f"| {m['model']} | {_fmt(m.get('recall'))} | {_fmt(ci[0])}-{_fmt(ci[1])} | "
                f"{_fmt(m.get('map'))} | {_fmt(m.get('ndcg'))} | {_fmt(m.get('user_coverage'))} | "
                f"{m.get('n_users', '')} |"
            )
    regression = measures.get("regression")
    if isinstance(regression, Mapping):
        lines += ["", "## Regression against the baseline run", ""]
        baseline = regression.get("baseline_run")
        lines.append(
            f"Compared with: {baseline or 'no baseline run'} ({regression.get('compare_with')}); "
            f"{regression.get('reason', '')}."
        )
        lines.append(
            f"Significant drop: **{'yes' if regression.get('significant_drop') else 'no'}** "
            f"(details: `eval/regression.json`, {link('reports/regression.md')})."
        )
        rows = regression.get("rows") or []
        if rows:
            lines += [
                "",
                "| cohort | metric | K | baseline | current | delta | CI | significant |",
                "|---|---|---:|---:|---:|---:|---|:---:|",
            ]
            for r in rows:
                lines.append(
                    f"| {r.get('cohort')} | {r.get('metric')} | {r.get('k')} | {_fmt(r.get('baseline'))} | "
                    f"{_fmt(r.get('current'))} | {_fmt(r.get('delta'))} | {_fmt(r.get('ci_low'))}-"
                    f"{_fmt(r.get('ci_high'))} | {'yes' if r.get('significant') else 'no'} |"
                )
    case = facts.get("case_studies") or {}
    lines += [
        "",
        "## Sections",
        "",
        "- Offline metrics (4.1): "
        + ", ".join(
            link(rel)
            for rel in (
                "reports/offline_metrics.md",
                "reports/cf_eval.md",
                "reports/content_eval.md",
            )
        )
        + "; figures: "
        + (
            ", ".join(link(f"figures/{p.name}") for p in sorted((root / "figures").glob("*.png")))
            or "none"
        ),
        "- Case studies (4.2): "
        + link("reports/case_studies.md")
        + (
            "; category shares: "
            + ", ".join(
                f"{k} {_pct(v)}" for k, v in sorted((case.get("category_share") or {}).items())
            )
            if case.get("category_share")
            else ""
        ),
        "- Edge cases (4.3): "
        + link("reports/edge_cases.md")
        + (
            "; per category: "
            + ", ".join(
                f"{k} {_pct(v)}" for k, v in sorted(measures["edge_case_per_category"].items())
            )
            if measures.get("edge_case_per_category")
            else ""
        ),
        "- Artifact inventory (4.4.2): "
        + link("inventory/artifact_inventory.md")
        + ", "
        + link("inventory/artifact_manifest.json")
        + (
            ", " + link(measures["data_docs"], "Great Expectations Data Docs")
            if measures.get("data_docs")
            else ""
        ),
        "- Sign-off (4.4.3): "
        + ", ".join(
            link(rel) for rel in (FILES["handoff"], FILES["signoff_form"], FILES["signoff"])
        ),
        "- Acceptance gates of the evaluation: " + link("eval/gates.json"),
        "",
        f"Every number above was computed by this run ({run_id}).",
    ]
    return "\n".join(lines) + "\n"


def render_handoff(
    root: Path,
    profile: RunProfile,
    decision: str,
    reasons: Sequence[str],
    gates: Sequence[Mapping[str, Any]],
    checklist: Sequence[Mapping[str, Any]],
    repro: Mapping[str, Any],
) -> str:
    run_id = root.name
    link = lambda rel, text=None: _link_or_absent(root, rel, "signoff", text)  # noqa: E731
    box = {True: "[x]", False: "[ ]", None: "[ ]"}
    lines = [
        f"# Sign-off package - {profile.name} run {run_id}",
        "",
        f"**Recommendation: {decision}**",
        "",
        f"Rule: {RULE_TEXT}",
        "",
        "Reasons:",
        "",
        *[f"- {r}" for r in reasons],
        "",
        "## Decision table",
        "",
        f"Thresholds from the profile `{profile.name}` (`[signoff]`, `edge_cases.min_pass_rate`); "
        "the old system's values are the defaults (Recall@10 0.30, MAP@10 0.25, user coverage 0.85, "
        "edge-case pass rate 80%, artifact validation 95%).",
        "",
        *gate_table(gates),
        "",
        "## QA checklist",
        "",
        "Every box is derived from a status the run recorded (evidence in brackets); an unchecked box "
        "marked 'not run' means the stage did not produce the evidence.",
        "",
    ]
    for item in checklist:
        suffix = " - not run" if item["status"] is None else ""
        lines.append(f"- {box[item['status']]} {item['item']}{suffix} ({item['evidence']})")
    versions = repro["package_versions"]
    lines += [
        "",
        "## Reproducibility",
        "",
        f"- seed: {repro['seed']} (evaluation seed {repro['eval_seed']})",
        f"- profile: `{repro['profile']}`, resolved profile {link('profile.toml')} "
        f"(sha256 `{repro['profile_sha256']}`)",
        f"- git commit: `{repro['git_commit']}`",
        f"- platform: {repro['platform']}",
        "- package versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- data: {repro['data_source']} ({repro.get('data_format') or 'unknown format'})",
    ]
    for rel, digest in repro["input_data"].items():
        lines.append(f"- input table `{rel}`: sha256 `{digest}`")
    for role, src in repro["source_files"].items():
        lines.append(f"- source file {role} `{src['path']}`: sha256 `{src['sha256']}`")
    lines += [
        "",
        "## README snippets",
        "",
        "Reproduce this run (its resolved profile, every override included; the named profile "
        f"`{profile.name}` gives the same run when no override was used):",
        "",
        "```bash",
        repro["command"],
        "```",
        "",
        "Re-check every file of this run against its manifest (exit 1 when a file changed, went "
        "missing or fails its suite):",
        "",
        "```bash",
        f"movierec validate artifacts/{profile.name}/{run_id}",
        "```",
        "",
        "Try the recommender of this run:",
        "",
        "```bash",
        f"movierec recommend --run artifacts/{profile.name}/{run_id} --user 1 --k 10",
        "```",
        "",
        "README section (paste as is):",
        "",
        "```markdown",
        "## Sign-off",
        "",
        "Every run ends with `reports/final_report.md` (decision, headline gates, links to every section),",
        "`inventory/` (every file with sha256 and its Great Expectations result, plus Data Docs) and",
        "`signoff/` (`handoff.md`: decision table, QA checklist, reproducibility; `signoff_form.md`;",
        "`signoff.json`). The recommendation APPROVE / NEEDS WORK / REJECT is computed from the gates",
        "against the profile's `[signoff]` thresholds; `movierec validate RUN_DIR` re-checks a run.",
        "```",
        "",
        "## Files",
        "",
        f"- {link('reports/final_report.md', 'final report')}",
        f"- {link(FILES['signoff_form'], 'sign-off form (blank)')}",
        f"- {link(FILES['signoff'], 'signoff.json')} (the same facts for machines)",
        f"- {link('inventory/artifact_inventory.md', 'artifact inventory')}",
    ]
    return "\n".join(lines) + "\n"


def render_form(root: Path, profile: RunProfile, decision: str) -> str:
    return "\n".join(
        [
            f"# Sign-off form - {profile.name} run {root.name}",
            "",
            f"Computed recommendation: **{decision}** (see [handoff.md](handoff.md) and "
            "[the final report](../reports/final_report.md)). The reviewer's decision below may "
            "differ; say why.",
            "",
            "| field | entry |",
            "|---|---|",
            "| reviewer name | |",
            "| role | |",
            "| date | |",
            "| decision (APPROVE / NEEDS WORK / REJECT) | |",
            "| conditions or follow-ups | |",
            "| signature | |",
            "",
            "Checked before signing:",
            "",
            "- [ ] I read the final report and the decision table",
            "- [ ] I ran `movierec validate` on this run directory and it passed",
            "- [ ] I reviewed the failed gates and accept the listed follow-ups",
            "",
            "Comments:",
            "",
            "",
        ]
    )


# ---------------------------------------------------------------------------------------------
# stage


def handoff_core(
    run_dir: str,
    profile: RunProfile,
    facts: Mapping[str, Mapping[str, Any]],
    input_refs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Pure core of the ``handoff`` stage (module docstring). ``facts``: stage name -> facts;
    ``input_refs``: relative path -> sha256 of the ingest tables (default: hashed here)."""
    from tasks.budget import report_progress
    from tasks.inventory import MANIFEST, append_to_manifest

    root = Path(run_dir)
    report_progress(0.0, "measuring the gates")
    measures = collect_measures(root, facts)
    gates = compute_gates(measures, profile.signoff, profile.edge_cases.min_pass_rate)
    decision, reasons = decide(gates)
    if input_refs is None:
        input_refs = {
            rel: file_fingerprint(root / rel)
            for rel in ("data/ratings.parquet", "data/movies.parquet")
            if (root / rel).is_file()
        }
    repro = reproducibility(root, profile, facts, input_refs)
    checklist = qa_checklist(root, facts, measures, gates, profile, repro)
    report_progress(0.4, f"decision {decision}; writing the sign-off package")
    signoff = {
        "decision": decision,
        "reasons": reasons,
        "rule": RULE_TEXT,
        "gates": gates,
        "run_id": root.name,
        "profile": profile.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": repro["git_commit"],
        "seed": repro["seed"],
        "thresholds": {
            **profile.signoff.model_dump(mode="json"),
            "min_edge_case_pass_rate": profile.edge_cases.min_pass_rate,
        },
        "validation_rate": measures.get("validation_rate"),
        "failed_validations": measures.get("failed_files", []),
        "checklist": checklist,
        "reproducibility": {k: v for k, v in repro.items() if k != "profile_toml"},
        "regression": {
            "checked": bool(measures.get("regression_checked")),
            "significant_drop": bool(measures.get("significant_drop")),
        },
    }
    refs = {
        "signoff": write_json(signoff, root, FILES["signoff"]),
        "handoff": write_text(
            render_handoff(root, profile, decision, reasons, gates, checklist, repro),
            root,
            FILES["handoff"],
        ),
        "signoff_form": write_text(
            render_form(root, profile, decision), root, FILES["signoff_form"]
        ),
    }
    refs["final_report"] = write_text(
        render_final_report(root, profile, decision, reasons, gates, measures, facts),
        root,
        FILES["final_report"],
    )
    report_progress(0.7, "adding the sign-off files to the manifest")
    if (root / MANIFEST).is_file():
        manifest = append_to_manifest(root, [r.relpath for r in refs.values()], stage="handoff")
        bad = [
            f for f in manifest["files"] if f["path"] in FILES.values() and f["status"] != "passed"
        ]
        if bad:
            raise RuntimeError(
                "the handoff stage wrote files that fail their own validation (a bug in tasks/signoff.py): "
                + "; ".join(f"{f['path']}: {f['validation']}" for f in bad)
            )
        refs["manifest"] = ArtifactRef.of(root, MANIFEST)
    report_progress(1.0, f"recommendation {decision}")
    return {
        "artifacts": refs,
        "facts": {
            "decision": decision,
            "reasons": reasons,
            "validation_rate": measures.get("validation_rate"),
            "n_files": measures.get("n_files"),
            "failed_validations": measures.get("failed_files", []),
            "gates": [
                {k: g[k] for k in ("name", "measured", "threshold", "passed")} for g in gates
            ],
        },
    }


@task(name="handoff", cache_policy=NO_CACHE, persist_result=True)
def build_handoff(
    stages: dict[str, StageOutput],
    profile: RunProfile,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Prefect task: the handoff stage under its budget. Never cached (its output names the run)."""
    facts = {name: dict(out.facts) for name, out in stages.items()}
    ingest = stages.get("ingest")
    input_refs = (
        {ref.relpath: ref.fingerprint for ref in ingest.artifacts.values()} if ingest else None
    )
    result = run_stage_core(
        "handoff", budget_seconds, handoff_core, run_dir, profile, facts, input_refs
    )
    return StageOutput.from_result("handoff", result)


if (
    __name__ == "__main__"
):  # pragma: no cover - manual check: python -m tasks.signoff RUN_DIR PROFILE
    from tasks.profile import load_profile

    print(json.dumps(handoff_core(sys.argv[1], load_profile(sys.argv[2]), {})["facts"], indent=2))
