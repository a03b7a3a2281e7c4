"""The QA checklist and the reproducibility record of the sign-off (part of :mod:`tasks.signoff`).

Every box of the checklist comes from a status the run recorded; the reproducibility record names
the seeds, the resolved profile, package versions, the git commit and the input hashes.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.decision import format_threshold, format_value
from tasks.io import file_fingerprint
from tasks.manifest import MANIFEST, scan_run_dir
from tasks.profile import RunProfile
from tasks.signoff._documents import FILES

__all__ = ["git_commit", "package_versions", "qa_checklist", "reproducibility"]

#: Packages whose versions the reproducibility record lists.
PACKAGES = (
    "movie-rec-optimizer",
    "prefect",
    "great_expectations",
    "optuna",
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "implicit",
    "matplotlib",
    "pydantic",
)
REPO_ROOT = Path(__file__).resolve().parents[2]
_SPLIT_OUTPUTS = ("train", "test", "cohorts", "train_fit", "validation", "dropped_history")


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
    by_name = {g["name"]: g for g in gates}
    ev = facts.get("evaluation", {})
    items: list[dict[str, Any]] = []

    def add(item: str, status: bool | None, evidence: str) -> None:
        items.append({"item": item, "status": status, "evidence": evidence})

    def gate_evidence(g: Mapping[str, Any]) -> str:
        unit = g.get("unit", "number")
        return f"{format_value(g['measured'], unit)}, needs {format_threshold(g)}; {g['source']}"

    add(
        "Input tables (ratings, movies) passed their GX suites at ingest",
        _stage_validation_ok(facts.get("ingest", {}), ["ratings", "movies"]),
        "ingest facts: validation",
    )
    add(
        f"Split outputs ({', '.join(_SPLIT_OUTPUTS)}) passed their GX suites",
        _stage_validation_ok(facts.get("split", {}), _SPLIT_OUTPUTS),
        "split facts: validation",
    )
    splits = measures.get("tuning_splits")
    add(
        "Every choice was made on the validation split (tuning/tuning_results.csv: split)",
        None if splits is None else splits == ["validation"],
        "not run" if splits is None else f"splits recorded: {', '.join(splits) or 'none'}",
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
        ("search_completed", "The search finished within its budget"),
        ("lift_over_best_baseline", "Tuned policy beats the best baseline by at least min_lift"),
        (
            "significantly_better_than_best_baseline",
            "Tuned policy significantly better than the best baseline (paired CI above 0)",
        ),
        (
            "not_significantly_worse_than_best_baseline",
            "Tuned policy not significantly worse than the best baseline",
        ),
    ):
        g = by_name.get(name)
        add(
            item,
            None if g is None or g["measured"] is None else bool(g["passed"]),
            gate_evidence(g) if g else "not run",
        )
    cohort_gates = [g for g in gates if g["name"].startswith("no_cohort_worse_")]
    if cohort_gates:
        worse = [
            g["name"].removeprefix("no_cohort_worse_") for g in cohort_gates if not g["passed"]
        ]
        add(
            "No cohort significantly worse than its best baseline",
            not worse,
            f"{len(cohort_gates)} cohorts checked; worse: {', '.join(worse) or 'none'}",
        )
    else:
        add("No cohort significantly worse than its best baseline", None, "no cohort measured")
    for name, item in (
        ("edge_case_pass_rate", "Edge cases run and pass at the required rate"),
        ("artifact_validation_failures", "Every artifact passed its Great Expectations validation"),
    ):
        g = by_name.get(name)
        add(
            item,
            None if g is None or g["measured"] is None else bool(g["passed"]),
            gate_evidence(g) if g else "not run",
        )
    g = by_name.get("no_significant_regression")
    if g is not None:
        add(
            "No significant regression against the baseline run",
            bool(g["passed"]),
            gate_evidence(g),
        )
    else:
        regression = measures.get("regression")
        why = (
            f"not compared: {regression.get('reason')}"
            if isinstance(regression, Mapping) and not measures.get("regression_compared")
            else "not run"
            if regression is None
            else "not required by the profile"
        )
        add("No significant regression against the baseline run", None, why)
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
        "tuning_seed": profile.tuning.seed,
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
