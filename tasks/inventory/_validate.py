"""``movierec validate RUN_DIR``: re-check a finished run against its manifest.

The tamper check of a run: every file is hashed again and every suite re-run (never the
validation cache of :mod:`tasks.inventory._cache`: a check reused by key would trust exactly what
this command exists to doubt). Nothing under the run is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.inventory._run import Progress, validate_entries
from tasks.manifest import load_manifest, scan_run_dir


def validate_run_dir(run_dir: Path | str, progress: Progress | None = None) -> dict[str, Any]:
    """Recompute every hash and re-run every suite of a finished run against its manifest.

    Returns ``{"ok", "changed", "missing", "added", "failed", "symlinks_outside", "checked"}``:
    ``changed`` (sha256 or size differs), ``missing`` (listed, gone), ``failed`` (a suite fails now)
    and ``symlinks_outside`` make ``ok`` False; ``added`` (files not in the manifest) is
    informational unless such a file fails its validation. Nothing under the run is written.
    """
    root = Path(run_dir)
    manifest = load_manifest(root)
    listed = {f["path"]: f for f in manifest.get("files", [])}
    current = scan_run_dir(root)
    by_path = {e.path: e for e in current}
    changed = []
    for path, old in sorted(listed.items()):
        new = by_path.get(path)
        if new is None:
            continue
        if new.sha256 != old["sha256"] or new.bytes != old["bytes"] or new.kind != old["kind"]:
            changed.append(
                {
                    "path": path,
                    "old_sha256": old["sha256"],
                    "new_sha256": new.sha256,
                    "old_bytes": old["bytes"],
                    "new_bytes": new.bytes,
                }
            )
        new.stage = old.get("stage", new.stage)
    missing = sorted(p for p in listed if p not in by_path)
    added = sorted(p for p in by_path if p not in listed)
    validate_entries(
        root,
        current,
        sample_rows=manifest.get("sample_rows", 2_000_000),
        seed=manifest.get("seed", 0),
        table_parameters=manifest.get("table_parameters"),
        progress=progress,
        cache=None,  # the tamper check never reuses a stored result
    )
    failed = [{"path": e.path, "reason": e.validation_text()} for e in current if not e.passed]
    outside = [
        {"path": e.path, "target": e.link_target}
        for e in current
        if e.kind == "symlink" and not e.inside_run
    ]
    return {
        "run_dir": str(root),
        "run_id": manifest.get("run_id"),
        "ok": not (changed or missing or failed or outside),
        "checked": len(current),
        "listed": len(listed),
        "changed": changed,
        "missing": missing,
        "added": added,
        "failed": failed,
        "symlinks_outside": outside,
    }
