"""The sign-off package: measure, decide, write the four files (part of :mod:`tasks.signoff`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.decision import decide
from tasks.io import ArtifactRef, file_fingerprint, write_json, write_text
from tasks.profile import RunProfile
from tasks.signoff._checklist import qa_checklist, reproducibility
from tasks.signoff._documents import (
    FILES,
    OLD_REPORT_CLAIMS,
    render_final_report,
    render_form,
    render_handoff,
)
from tasks.signoff._gates import RULE_TEXT, compute_gates
from tasks.signoff._measures import collect_measures, recorded_facts

__all__ = ["signoff_core"]

# ---------------------------------------------------------------------------------------------
# the sign-off package


def signoff_core(
    run_dir: str,
    profile: RunProfile,
    facts: Mapping[str, Mapping[str, Any]],
    input_refs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Measure, decide and write the four sign-off files (module docstring); returns
    ``{"artifacts": {name: ArtifactRef}, "facts": {...}}``. ``facts``: stage name -> facts (the
    run's recorded facts, :func:`recorded_facts`, fill what is not given); ``input_refs``: relative
    path -> sha256 of the ingest tables (default: hashed here). The manifest is not touched here
    (:func:`tasks.handoff.handoff_core` adds the files to it)."""
    from tasks.budget import report_progress

    root = Path(run_dir)
    facts = {**recorded_facts(root), **facts}
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
    regression = measures.get("regression")
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
        "models": measures.get("models", []),
        "paired_best": measures.get("paired_best"),
        "cohorts": measures.get("cohorts", {}),
        "selection": measures.get("selection"),
        "old_report_claims": {
            key: {**claim, "measured": measures.get(key)}
            for key, claim in OLD_REPORT_CLAIMS.items()
        },
        "checklist": checklist,
        "reproducibility": {k: v for k, v in repro.items() if k != "profile_toml"},
        "regression": {
            "status": "not run"
            if regression is None
            else "compared"
            if measures.get("regression_compared")
            else "not compared",
            "significant_drop": bool(measures.get("significant_drop")),
            "baseline_run": regression.get("baseline_run")
            if isinstance(regression, Mapping)
            else None,
            "reason": regression.get("reason") if isinstance(regression, Mapping) else None,
        },
    }
    refs: dict[str, ArtifactRef] = {
        "signoff": write_json(signoff, root, FILES["signoff"]),
        "handoff": write_text(
            render_handoff(root, profile, decision, reasons, gates, checklist, repro, measures),
            root,
            FILES["handoff"],
        ),
        "signoff_form": write_text(
            render_form(root, profile, decision), root, FILES["signoff_form"]
        ),
        "final_report": write_text(
            render_final_report(root, profile, decision, reasons, gates, measures, facts),
            root,
            FILES["final_report"],
        ),
    }
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
