"""The artifact manifest's format: which files of a run it lists, their kinds and producing stages.

Shared by the ``inventory`` stage (:mod:`tasks.inventory` hashes and validates every file and
writes ``inventory/artifact_manifest.json``) and the ``handoff`` stage (:mod:`tasks.signoff` reads
the manifest for the validation gates and checks that it lists every file of the run). Neither of
those two modules imports the other; both import this one. Nothing here runs a suite.

- :func:`scan_run_dir` walks a run directory (``os.walk`` without following symbolic links) and
  returns one :class:`Entry` per file or link: relative path, size, sha256 (streamed), kind
  (:func:`classify`, by extension) and producing stage (:func:`producing_stage`: the stages' own
  artifact lists when given, else :data:`STAGE_RULES`, whose stages are those of
  ``flows.pipeline.PIPELINE_STAGES`` plus ``flow`` for the files the flow itself writes).
- A symbolic link is never followed to read its target: its "hash" is the sha256 of the link
  text, and it is flagged when it resolves outside the run.
- :data:`EXCLUDED`: ``logs/stages.json`` and ``logs/run_status.json`` (written by the flow after
  every stage) and the manifest / inventory page themselves (they cannot hold their own hash).
- :func:`load_manifest`, :func:`manifest_table` (the table the ``artifact_manifest`` suite
  validates) and :func:`summarise_manifest` (counts, validation rate, failed files).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.io import file_fingerprint

__all__ = [
    "DATA_DOCS_DIR",
    "EXCLUDED",
    "INVENTORY_MD",
    "KINDS",
    "MANIFEST",
    "SELF_FILES",
    "STAGE_RULES",
    "WRITTEN_AFTER_STAGES",
    "Entry",
    "classify",
    "load_manifest",
    "manifest_table",
    "producing_stage",
    "scan_run_dir",
    "summarise_manifest",
]

MANIFEST = "inventory/artifact_manifest.json"
INVENTORY_MD = "inventory/artifact_inventory.md"
DATA_DOCS_DIR = "inventory/data_docs"
#: Written by the flow after every stage (``logs/``), or the manifest files themselves.
WRITTEN_AFTER_STAGES = frozenset({"logs/stages.json", "logs/run_status.json"})
SELF_FILES = frozenset({MANIFEST, INVENTORY_MD})
EXCLUDED = WRITTEN_AFTER_STAGES | SELF_FILES

KINDS = (
    "table",
    "csv",
    "json",
    "markdown",
    "png",
    "array",
    "toml",
    "text",
    "html",
    "other",
    "symlink",
)
_EXTENSIONS = {
    ".parquet": "table",
    ".csv": "csv",
    ".json": "json",
    ".md": "markdown",
    ".png": "png",
    ".npy": "array",
    ".npz": "array",
    ".toml": "toml",
    ".html": "html",
    ".htm": "html",
    ".journal": "text",  # Optuna's journal file (tuning/study.journal): one JSON object per line
    **dict.fromkeys((".txt", ".log", ".css", ".svg", ".yaml", ".yml", ".js", ".tsv"), "text"),
}

#: Producing stage by path when the stages' own artifact lists do not name a file (first match
#: wins; ``*`` also matches ``/``). Stages are those of ``flows.pipeline.PIPELINE_STAGES``, plus
#: ``flow`` for what the flow writes itself.
STAGE_RULES: tuple[tuple[str, str], ...] = (
    ("profile.toml", "flow"),
    ("logs/*", "flow"),
    ("data/ratings.parquet", "ingest"),
    ("data/movies.parquet", "ingest"),
    ("data/*", "split"),
    ("models/cf/*", "collaborative"),
    ("models/content_*", "features"),
    ("models/item_*", "features"),
    ("tuning/*", "tuning"),
    ("figures/tuning_*", "tuning"),
    ("hybrid/*", "candidates"),
    ("eval/regression*", "regression"),
    ("reports/regression*", "regression"),
    ("eval/*", "evaluation"),
    ("figures/*", "evaluation"),
    ("reports/offline*", "evaluation"),
    ("reports/cf_eval*", "evaluation"),
    ("reports/content_eval*", "evaluation"),
    ("reports/case_studies*", "case_studies"),
    ("case_studies/*", "case_studies"),
    ("reports/edge_cases*", "edge_cases"),
    ("edge_cases/*", "edge_cases"),
    ("inventory/*", "inventory"),
    ("reports/final_report*", "handoff"),
    ("signoff/*", "handoff"),
)


def classify(relpath: str) -> str:
    """The kind of a file from its extension (:data:`KINDS`).

    >>> classify("data/ratings.parquet"), classify("reports/final_report.md"), classify("x.bin")
    ('table', 'markdown', 'other')
    >>> classify("tuning/study.journal"), classify("models/cf/item_knn/knn_similarity.npz")
    ('text', 'array')
    """
    return _EXTENSIONS.get(Path(relpath).suffix.lower(), "other")


def producing_stage(relpath: str, stage_of: Mapping[str, str] | None = None) -> str:
    """The stage that wrote ``relpath``: from the stages' artifacts when listed, else :data:`STAGE_RULES`.

    >>> producing_stage("hybrid/candidates/user_1_candidates.parquet")
    'candidates'
    >>> producing_stage("models/cf/policy/cf_meta.json"), producing_stage("figures/tuning_history.png")
    ('collaborative', 'tuning')
    >>> producing_stage("figures/x.png", {"figures/x.png": "case_studies"})
    'case_studies'
    """
    if stage_of and relpath in stage_of:
        return stage_of[relpath]
    for pattern, stage in STAGE_RULES:
        if fnmatch.fnmatch(relpath, pattern):
            return stage
    return "unknown"


@dataclass
class Entry:
    """One file (or symbolic link) of a run and its validation (``checks``, filled by the
    inventory: one dict per suite run, ``success`` among them)."""

    path: str
    bytes: int
    sha256: str
    kind: str
    stage: str
    link_target: str | None = None
    inside_run: bool = True
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["success"] for c in self.checks)

    def validation_text(self) -> str:
        if self.passed:
            return "passed"
        if not self.checks:
            return "failed: not validated"
        if self.kind == "symlink" and not self.inside_run:
            return f"failed: points outside the run ({self.link_target})"
        first = next(c for c in self.checks if not c["success"])
        reason = first["failed"][0] if first.get("failed") else f"suite '{first['suite']}' failed"
        return f"failed: {reason}"

    def as_dict(self, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "kind": self.kind,
            "stage": self.stage,
            "run_id": run_id,
            "status": "passed" if self.passed else "failed",
            "validation": self.validation_text(),
            "checks": self.checks,
        }
        if self.kind == "symlink":
            out["link_target"] = self.link_target
            out["inside_run"] = self.inside_run
        return out


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies under it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _symlink_entry(
    run_dir: Path, full: str, relpath: str, stage_of: Mapping[str, str] | None
) -> Entry:
    """A symbolic link, never followed to read its target (its 'hash' is that of the link text)."""
    target = os.readlink(full)
    resolved = os.path.realpath(full)  # resolves the path only; no file is opened
    is_inside = inside(resolved, os.path.realpath(run_dir))
    text = target.encode("utf-8", "surrogateescape")
    return Entry(
        path=relpath,
        bytes=len(text),
        sha256=hashlib.sha256(text).hexdigest(),
        kind="symlink",
        stage=producing_stage(relpath, stage_of),
        link_target=target if is_inside else resolved,
        inside_run=is_inside,
    )


def scan_run_dir(
    run_dir: Path | str,
    *,
    stage_of: Mapping[str, str] | None = None,
    exclude: Iterable[str] = EXCLUDED,
    exclude_dirs: Iterable[str] = (),
    hash_files: bool = True,
    fingerprint: Callable[[str], str] | None = None,
) -> list[Entry]:
    """Every file and symbolic link under ``run_dir`` (sorted by path), hashed, never following links.

    ``exclude``: relative paths left out (:data:`EXCLUDED`); ``exclude_dirs``: relative folders left
    out (the Data Docs while they are being rebuilt); ``fingerprint``: the sha256 function (default
    :func:`tasks.io.file_fingerprint`; the inventory passes a memo by file identity).
    """
    run_dir = Path(run_dir)
    excluded = set(exclude)
    skip_dirs = {d.rstrip("/") for d in exclude_dirs}
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(run_dir, followlinks=False):
        rel_dir = os.path.relpath(dirpath, run_dir)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(dirpath, name)
            if os.path.islink(full):  # os.walk does not descend into it; list the link itself
                if rel not in excluded:
                    entries.append(_symlink_entry(run_dir, full, rel, stage_of))
            elif rel not in skip_dirs:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in excluded:
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                entries.append(_symlink_entry(run_dir, full, rel, stage_of))
                continue
            entries.append(
                Entry(
                    path=rel,
                    bytes=os.lstat(full).st_size,
                    sha256=(fingerprint or file_fingerprint)(full) if hash_files else "",
                    kind=classify(rel),
                    stage=producing_stage(rel, stage_of),
                )
            )
    return sorted(entries, key=lambda e: e.path)


def manifest_table(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """The manifest's files as a table (validated by the ``artifact_manifest`` suite)."""
    columns = ["path", "bytes", "sha256", "kind", "stage", "run_id", "status"]
    rows = [{c: f.get(c) for c in columns} for f in manifest.get("files", [])]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"bytes": "int64"}) if len(table) else table


def summarise_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Fill the manifest's summary from its ``files``: ``n_files``, ``n_bytes``, ``n_passed``,
    ``validation_rate`` (passed / files), ``failed`` and ``symlinks_outside`` (in place; returned)."""
    files = manifest["files"]
    failed = [
        {"path": f["path"], "reason": f["validation"]} for f in files if f["status"] != "passed"
    ]
    manifest["n_files"] = len(files)
    manifest["n_bytes"] = int(sum(f["bytes"] for f in files))
    manifest["n_passed"] = len(files) - len(failed)
    manifest["validation_rate"] = (len(files) - len(failed)) / len(files) if files else 0.0
    manifest["failed"] = failed
    manifest["symlinks_outside"] = [
        {"path": f["path"], "target": f.get("link_target")}
        for f in files
        if f["kind"] == "symlink" and not f.get("inside_run", True)
    ]
    return manifest


def load_manifest(run_dir: Path | str) -> dict[str, Any]:
    """``inventory/artifact_manifest.json`` of a run; a clear error when it is missing."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        from tasks.errors import UsageError

        raise UsageError(
            f"{path}: no artifact manifest. Give the directory of a run that finished its inventory "
            "stage (artifacts/<profile>/<run-id>/), or re-run the pipeline."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        from tasks.errors import InputDataError

        raise InputDataError(
            f"{path}: not valid JSON ({exc}); re-run the inventory stage."
        ) from None
