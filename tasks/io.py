"""Artifact references, atomic writes and run directories.

Tasks never pass arrays or DataFrames to each other: they pass :class:`ArtifactRef` (a file's path
plus a sha256 fingerprint of its bytes). Every file is written atomically (a temporary name in the
same folder, then ``os.replace``), so a killed run never leaves a half-written file under its final
name. A run lives in ``artifacts/<profile>/<run-id>/``; ``artifacts/<profile>/LATEST`` names the
newest *complete* run and is written only when a run finishes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

#: Write bits cleared on a file shared between runs by a hard link (see :func:`adopt_into_run`).
READ_ONLY_MASK = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

__all__ = [
    "RUN_SUBDIRS",
    "ArtifactRef",
    "READ_ONLY_MASK",
    "adopt_into_run",
    "atomic_path",
    "file_fingerprint",
    "latest_run",
    "load_array",
    "mark_run_complete",
    "new_run_dir",
    "read_table",
    "resolve_artifact",
    "save_array",
    "write_json",
    "write_table",
    "write_text",
]

RUN_SUBDIRS = (
    "data",
    "models",
    "hybrid",
    "tuning",
    "eval",
    "reports",
    "figures",
    "case_studies",
    "edge_cases",
    "inventory",
    "signoff",
    "logs",
)
_CHUNK = 1 << 22


class ArtifactRef(BaseModel):
    """A file written by a stage: where it is (``run_dir`` / ``relpath``) and what it holds.

    Only ``fingerprint`` and ``relpath`` take part in cache keys, so the same content in another
    run directory is the same input.
    """

    model_config = ConfigDict(frozen=True)

    run_dir: str
    relpath: str
    fingerprint: str

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / self.relpath

    def cache_token(self) -> str:
        return f"{self.relpath}@{self.fingerprint}"

    @classmethod
    def of(cls, run_dir: Path | str, relpath: str) -> ArtifactRef:
        """Reference an existing file, fingerprinting its bytes."""
        return cls(run_dir=str(run_dir), relpath=relpath, fingerprint=file_fingerprint(Path(run_dir) / relpath))


def file_fingerprint(path: Path | str) -> str:
    """sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        if not exc.filename:  # a library's write error (pyarrow: a full disk) names no file
            exc.filename = str(final)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_table(df: pd.DataFrame | pa.Table, run_dir: Path | str, relpath: str) -> ArtifactRef:
    """Write a parquet table atomically and return its reference."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(Path(run_dir) / relpath) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return ArtifactRef.of(run_dir, relpath)


def read_table(ref: ArtifactRef | Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a parquet table written by :func:`write_table`."""
    path = ref.path if isinstance(ref, ArtifactRef) else Path(ref)
    return pq.read_table(path, columns=columns).to_pandas()


def save_array(arr: np.ndarray, run_dir: Path | str, relpath: str) -> ArtifactRef:
    """Write a ``.npy`` atomically (through a file handle, so numpy adds no second suffix)."""
    with atomic_path(Path(run_dir) / relpath) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
    return ArtifactRef.of(run_dir, relpath)


def load_array(ref: ArtifactRef | Path | str, mmap: bool = False) -> np.ndarray:
    """Read a ``.npy`` written by :func:`save_array` (optionally memory-mapped)."""
    path = ref.path if isinstance(ref, ArtifactRef) else Path(ref)
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def write_text(text: str, run_dir: Path | str, relpath: str) -> ArtifactRef:
    """Write a UTF-8 text file atomically."""
    with atomic_path(Path(run_dir) / relpath) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return ArtifactRef.of(run_dir, relpath)


def write_json(data: Any, run_dir: Path | str, relpath: str) -> ArtifactRef:
    """Write JSON atomically (sorted keys, indented, so diffs between runs are readable)."""
    return write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", run_dir, relpath)


def adopt_into_run(ref: ArtifactRef, run_dir: Path | str) -> ArtifactRef | None:
    """Make a (cached) artifact from another run part of ``run_dir``: hard link, else copy.

    A hard link shares the file's bytes between the runs (no copy of gigabytes at 32M scale), so
    the shared file is made read-only (write bits cleared on the one inode): an editor or a script
    cannot change one run's file through another. Every writer of this project replaces files by
    rename (:func:`atomic_path`), which gives a run its own new file and leaves the other runs'
    alone. (The superuser ignores permission bits; ``movierec validate`` still catches a changed
    file by its sha256.) Returns the reference inside ``run_dir``, or ``None`` when the source is
    gone or its bytes no longer match the fingerprint (the caller then recomputes the stage).
    """
    run_dir = Path(run_dir)
    if Path(ref.run_dir).resolve() == run_dir.resolve():
        return ref if ref.path.exists() else None
    if not ref.path.exists() or file_fingerprint(ref.path) != ref.fingerprint:
        return None
    target = run_dir / ref.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        try:
            os.link(ref.path, tmp)
        except OSError:
            shutil.copy2(ref.path, tmp)
        else:
            os.chmod(tmp, stat.S_IMODE(tmp.stat().st_mode) & ~READ_ONLY_MASK)
    return ArtifactRef(run_dir=str(run_dir), relpath=ref.relpath, fingerprint=ref.fingerprint)


def resolve_artifact(
    source: Path | str | Mapping[str, ArtifactRef],
    name: str,
    files: Mapping[str, str],
    *,
    stage: str,
    optional: frozenset[str] = frozenset(),
) -> Path | None:
    """Path of artifact ``name`` from a run directory (via ``files``) or a stage's artifact refs.

    An optional artifact missing from the refs gives ``None``; a required one raises
    :class:`~tasks.errors.UsageError` naming what is there and which stage's artifacts to pass.
    """
    if isinstance(source, Mapping):
        if name in source:
            return source[name].path
        if name in optional:
            return None
        from tasks.errors import UsageError

        raise UsageError(f"no artifact '{name}' among {sorted(source)}: pass the {stage} stage's artifacts.")
    return Path(source) / files[name]


def new_run_dir(artifacts_root: Path | str, profile_name: str) -> Path:
    """Create ``artifacts/<profile>/<run-id>/`` with its standard subfolders.

    The run id is a UTC timestamp plus a random suffix, so two runs started together never collide.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(artifacts_root) / profile_name / f"{stamp}-{secrets.token_hex(3)}"
    for sub in RUN_SUBDIRS:
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return run_dir


def mark_run_complete(run_dir: Path | str) -> Path:
    """Point ``artifacts/<profile>/LATEST`` at ``run_dir`` (atomic rename; call only on success)."""
    run_dir = Path(run_dir)
    latest = run_dir.parent / "LATEST"
    with atomic_path(latest) as tmp:
        tmp.write_text(run_dir.name + "\n", encoding="utf-8")
    return latest


def latest_run(artifacts_root: Path | str, profile_name: str) -> Path | None:
    """The newest complete run of a profile, or ``None`` when there is none."""
    latest = Path(artifacts_root) / profile_name / "LATEST"
    if not latest.exists():
        return None
    run_dir = latest.parent / latest.read_text(encoding="utf-8").strip()
    return run_dir if run_dir.is_dir() else None
