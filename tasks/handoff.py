"""The ``handoff`` stage: the sign-off package, added to the run's artifact manifest.

Place in the pipeline: the last stage, after ``inventory``. It composes the two modules that must
not import each other: :mod:`tasks.signoff` measures the gates from the run's files, decides and
writes ``reports/final_report.md`` and ``signoff/`` (:func:`tasks.signoff.signoff_core`), then
:mod:`tasks.inventory` hashes and validates those four files and appends them to
``inventory/artifact_manifest.json`` (:func:`tasks.inventory.append_to_manifest`), so the manifest
covers every file of the run, the decision included. A sign-off file that fails its own suite is a
bug in :mod:`tasks.signoff` and stops the stage. Never cached: its output names the run.

Both need the manifest format and the decision rule, which live in :mod:`tasks.manifest` and
:mod:`tasks.decision`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.inventory import append_to_manifest
from tasks.io import ArtifactRef
from tasks.manifest import MANIFEST
from tasks.profile import RunProfile
from tasks.signoff import FILES, signoff_core
from tasks.stage import StageOutput, run_stage_core

__all__ = ["build_handoff", "handoff_core"]


def handoff_core(
    run_dir: str,
    profile: RunProfile,
    facts: Mapping[str, Mapping[str, Any]],
    input_refs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Pure core of the ``handoff`` stage (module docstring): :func:`tasks.signoff.signoff_core`,
    then the four files into the manifest when the run has one. Returns refs + facts."""
    from tasks.budget import report_progress

    root = Path(run_dir)
    result = signoff_core(run_dir, profile, facts, input_refs)
    refs = dict(result["artifacts"])
    if (root / MANIFEST).is_file():
        report_progress(0.7, "adding the sign-off files to the manifest")
        manifest = append_to_manifest(root, [r.relpath for r in refs.values()], stage="handoff")
        bad = [
            f for f in manifest["files"] if f["path"] in FILES.values() and f["status"] != "passed"
        ]
        if bad:
            raise RuntimeError(
                "the handoff stage wrote files that fail their own validation (a bug in "
                "tasks/signoff.py): " + "; ".join(f"{f['path']}: {f['validation']}" for f in bad)
            )
        refs["manifest"] = ArtifactRef.of(root, MANIFEST)
    report_progress(1.0, f"recommendation {result['facts']['decision']}")
    return {"artifacts": refs, "facts": result["facts"]}


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
):  # pragma: no cover - manual check: python -m tasks.handoff RUN_DIR PROFILE
    from tasks.profile import load_profile

    print(json.dumps(handoff_core(sys.argv[1], load_profile(sys.argv[2]), {})["facts"], indent=2))
