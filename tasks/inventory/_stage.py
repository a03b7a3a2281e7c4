"""The ``inventory`` stage: scan, hash, validate (cached), Data Docs, manifest and inventory page.

Place in the pipeline: the first stage of the ``handoff`` flow, after ``edge_cases`` and before the
sign-off. :func:`inventory_core` walks the run directory (:func:`tasks.manifest.scan_run_dir`:
``os.walk`` without following symbolic links), and for every file records its relative path, size,
sha256 (streamed, 4 MiB blocks), kind, producing stage, the run id and its Great Expectations
checks (:func:`tasks.inventory._run.validate_entries`). Checks whose inputs are unchanged since a
stored passing result come from the validation cache beside the runs
(:mod:`tasks.inventory._cache`, ``<artifacts>/<profile>/.validation-cache/``) and are recorded with
``"cached": true``. It writes ``inventory/artifact_manifest.json`` (for machines; its
``validation_cache`` says how many suite runs were reused), ``inventory/artifact_inventory.md``
(for people) and the GX Data Docs into ``inventory/data_docs/`` (:mod:`tasks.inventory._docs`).

- Big tables (more than ``sample_rows`` rows; 32M ratings on the bench profile) are validated on a
  seeded row sample; the manifest says so per file (``sampled_rows`` of ``total_rows``, seed).
- A symbolic link is never followed to read its target: its "hash" is the sha256 of the link text,
  and it passes only when it resolves inside the run to an existing file (``symlink_facts``); a
  link pointing outside the run is listed with validation ``failed: points outside the run
  (<target>)``.
- What the manifest covers: ``logs/stages.json`` and ``logs/run_status.json`` are written by the
  flow after every stage, and the manifest / inventory files cannot contain their own hash, so
  these four paths are outside it (:data:`tasks.manifest.EXCLUDED`). The ``handoff`` stage
  (:mod:`tasks.handoff`) appends the sign-off files afterwards (:func:`append_to_manifest`), so
  the manifest covers every other file. The stage is never cached by Prefect (its output names the
  run); its validations are, file by file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.inventory._cache import ValidationCache, cache_dir_for, code_fingerprint
from tasks.inventory._checks import declared_checks
from tasks.inventory._docs import build_data_docs, render_inventory_md
from tasks.inventory._hashes import HashMemo
from tasks.inventory._run import DocsRecorder, validate_entries
from tasks.io import ArtifactRef, write_json, write_text
from tasks.manifest import (
    DATA_DOCS_DIR,
    INVENTORY_MD,
    KINDS,
    MANIFEST,
    SELF_FILES,
    WRITTEN_AFTER_STAGES,
    Entry,
    load_manifest,
    manifest_table,
    scan_run_dir,
    summarise_manifest,
)
from tasks.stage import StageOutput, run_stage_core


def _check_manifest_table(manifest: Mapping[str, Any]) -> None:
    from tasks.validation import require_valid

    require_valid(
        manifest_table(manifest),
        "artifact_manifest",
        source=MANIFEST,
        parameters={"kinds": list(KINDS), "run_ids": [manifest["run_id"]]},
    )


def _write_manifest(run_dir: Path, manifest: dict[str, Any]) -> dict[str, ArtifactRef]:
    summarise_manifest(manifest)
    _check_manifest_table(manifest)
    return {
        "manifest": write_json(manifest, run_dir, MANIFEST),
        "inventory_md": write_text(render_inventory_md(manifest), run_dir, INVENTORY_MD),
    }


def _recorded_parameters(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Suite parameters recorded in a finished run's ``logs/run_status.json`` (stage facts)."""
    try:
        facts = json.loads((run_dir / "logs" / "run_status.json").read_text(encoding="utf-8"))[
            "facts"
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    edge = (facts.get("edge_cases") or {}).get("validation_parameters")
    return {"edge_cases": dict(edge)} if isinstance(edge, dict) else {}


def _data_docs_entries(root: Path) -> list[Entry]:
    """The files of ``inventory/data_docs/`` (only that folder is walked and hashed again)."""
    folder = root / DATA_DOCS_DIR
    if not folder.is_dir():
        return []
    entries = scan_run_dir(folder, stage_of={}, exclude=())
    for e in entries:
        e.path = f"{DATA_DOCS_DIR}/{e.path}"
        e.stage = "inventory"
    return entries


def open_validation_cache(
    run_dir: Path | str, cache_dir: Path | str | None = None
) -> ValidationCache:
    """The validation cache of a run: ``cache_dir``, else ``<artifacts>/<profile>/.validation-cache``
    beside the run; its code fingerprint includes the modules of suites' own check frames."""
    modules = sorted({c.check_frame.partition(":")[0] for c in declared_checks() if c.check_frame})
    folder = Path(cache_dir) if cache_dir is not None else cache_dir_for(run_dir)
    return ValidationCache(folder, code=code_fingerprint(modules))


def _cache_summary(
    root: Path, cache: ValidationCache | None, entries: list[Entry]
) -> dict[str, Any] | None:
    """How many suite runs of the manifest came from the cache (``reused`` of ``checks``)."""
    if cache is None:
        return None
    checks = [c for e in entries for c in e.checks]
    return {
        "dir": os.path.relpath(cache.folder, root.resolve()),
        "checks": len(checks),
        "reused": sum(1 for c in checks if c.get("cached")),
        **{k: v for k, v in cache.stats.items() if k != "hits"},
    }


def inventory_core(
    run_dir: str,
    stage_of: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
    table_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    sample_rows: int = 2_000_000,
    seed: int = 0,
    build_docs: bool = True,
    cache: bool = True,
    cache_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Pure core of the ``inventory`` stage: scan, hash, validate, Data Docs, manifest + inventory.

    ``stage_of`` maps relative paths to the stage that wrote them (from the stages' artifacts);
    ``table_parameters`` holds suite parameters by name (``{"ratings": {...}}``: the rating scale
    ingest validated with). ``cache``: reuse and store check results in the validation cache
    (``cache_dir``, default beside the run: :func:`open_validation_cache`). Returns
    ``{"artifacts", "facts"}``; facts: ``validation_rate``, ``n_files``, ``n_bytes``,
    ``failed_validations``, ``symlinks_outside``, ``data_docs``, ``validation_cache`` (reused of
    checks, misses, damaged and stored entries) and ``seconds`` (hash, validate, docs, total).
    """
    from tasks.budget import report_progress

    started = time.perf_counter()
    # a finished run re-inventoried (tests, by hand): the parameters its stages recorded come first
    table_parameters = {**_recorded_parameters(Path(run_dir)), **dict(table_parameters or {})}
    root = Path(run_dir)
    run_id = root.name
    report_progress(0.0, "hashing every file of the run")
    validation_cache = open_validation_cache(root, cache_dir) if cache else None
    memo = HashMemo(validation_cache.folder) if validation_cache is not None else None
    entries = scan_run_dir(
        root,
        stage_of=stage_of,
        exclude_dirs=[DATA_DOCS_DIR],
        fingerprint=memo.fingerprint if memo is not None else None,
    )
    if memo is not None:
        memo.save()
    hashed = time.perf_counter()
    recorder = DocsRecorder() if build_docs else None
    validate_entries(
        root,
        entries,
        sample_rows=sample_rows,
        seed=seed,
        table_parameters=table_parameters,
        recorder=recorder,
        progress=lambda f, m: report_progress(0.05 + 0.8 * f, m),
        cache=validation_cache,
    )
    validated = time.perf_counter()
    docs = None
    if recorder is not None:
        report_progress(0.87, "building Great Expectations Data Docs")
        docs, rendered = build_data_docs(root, recorder)
        if validation_cache is not None and docs:
            validation_cache.store_pages(root / DATA_DOCS_DIR, rendered)
        doc_entries = _data_docs_entries(root)
        validate_entries(
            root, doc_entries, sample_rows=sample_rows, seed=seed, cache=validation_cache
        )
        entries = sorted(entries + doc_entries, key=lambda e: e.path)
    documented = time.perf_counter()
    cache_summary = _cache_summary(root, validation_cache, entries)
    if cache_summary is not None and memo is not None:
        cache_summary["sha256_reused"] = memo.reused  # files not hashed again (tasks.inventory._hashes)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "profile": profile or root.parent.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hash": "sha256",
        "sample_rows": sample_rows,
        "seed": seed,
        "table_parameters": {k: dict(v) for k, v in (table_parameters or {}).items()},
        "data_docs": docs,
        "validation_cache": cache_summary,
        "excluded": {
            "written_after_stages": sorted(WRITTEN_AFTER_STAGES),
            "self": sorted(SELF_FILES),
        },
        "appended": {},
        "files": [e.as_dict(run_id) for e in entries],
    }
    report_progress(0.95, "writing the manifest and the inventory")
    artifacts = _write_manifest(root, manifest)
    if docs:
        artifacts["data_docs"] = ArtifactRef.of(root, docs)
    seconds = {
        "hash": round(hashed - started, 3),
        "validate": round(validated - hashed, 3),
        "docs": round(documented - validated, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    report_progress(
        1.0, f"{manifest['n_files']} files, validation rate {manifest['validation_rate']:.4f}"
    )
    return {
        "artifacts": artifacts,
        "facts": {
            "validation_rate": manifest["validation_rate"],
            "n_files": manifest["n_files"],
            "n_bytes": manifest["n_bytes"],
            "failed_validations": [f["path"] for f in manifest["failed"]],
            "symlinks_outside": [s["path"] for s in manifest["symlinks_outside"]],
            "data_docs": docs,
            "validation_cache": cache_summary,
            "seconds": seconds,
        },
    }


def append_to_manifest(
    run_dir: Path | str, relpaths: Iterable[str], *, stage: str
) -> dict[str, Any]:
    """Hash and validate files written after the inventory (the handoff's) and add them to the
    manifest and the inventory page. Returns the updated manifest."""
    root = Path(run_dir)
    manifest = load_manifest(root)
    wanted = set(relpaths)
    entries = [
        e for e in scan_run_dir(root, stage_of={p: stage for p in wanted}) if e.path in wanted
    ]
    if len(entries) != len(wanted):
        missing = sorted(wanted - {e.path for e in entries})
        raise FileNotFoundError(f"cannot add {missing} to {root / MANIFEST}: no such file")
    validate_entries(
        root,
        entries,
        sample_rows=manifest.get("sample_rows", 2_000_000),
        seed=manifest.get("seed", 0),
        table_parameters=manifest.get("table_parameters"),
    )
    files = {f["path"]: f for f in manifest["files"]}
    for e in entries:
        files[e.path] = e.as_dict(manifest["run_id"])
    manifest["files"] = [files[p] for p in sorted(files)]
    manifest["appended"] = {**manifest.get("appended", {}), stage: sorted(wanted)}
    _write_manifest(root, manifest)
    return manifest


def artifact_stages(stages: Mapping[str, StageOutput]) -> dict[str, str]:
    """relative path -> producing stage, from the stages' artifact references."""
    return {ref.relpath: name for name, out in stages.items() for ref in out.artifacts.values()}


def table_parameters_from(stages: Mapping[str, StageOutput]) -> dict[str, dict[str, Any]]:
    """Suite parameters the stages validated with: the ratings suite's rating scale (ingest) and
    the edge-case count of a run narrowed by ``edge_cases.only`` (edge_cases)."""
    out: dict[str, dict[str, Any]] = {}
    ingest = stages.get("ingest")
    params = ((ingest.facts if ingest else {}).get("validation", {}) or {}).get("ratings", {})
    params = params.get("parameters") if isinstance(params, dict) else None
    if params:
        out["ratings"] = dict(params)
    edge = stages.get("edge_cases")
    edge_params = (edge.facts if edge else {}).get("validation_parameters")
    if edge_params:
        out["edge_cases"] = dict(edge_params)
    return out


@task(name="inventory", cache_policy=NO_CACHE, persist_result=True)
def build_inventory(
    stages: dict[str, StageOutput],
    sample_rows: int,
    seed: int,
    profile_name: str,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Prefect task: the inventory stage under its budget. Never cached (its output names the run)."""
    result = run_stage_core(
        "inventory",
        budget_seconds,
        inventory_core,
        run_dir,
        artifact_stages(stages),
        profile=profile_name,
        table_parameters=table_parameters_from(stages),
        sample_rows=sample_rows,
        seed=seed,
    )
    return StageOutput.from_result("inventory", result)
