"""A run's ranking arrays, built once and memory-mapped by every later reader (part of
:mod:`tasks.ranking`).

:meth:`RecommenderArrays.from_parts` derives a user-by-item CSR, taste profiles, seed items,
quality and popularity from the whole training table: about 18 s at 32M ratings, and the
candidates, evaluation, case-study and edge-case stages and every ``movierec recommend`` did it
again. Now the first of them stores the result in ``<artifacts>/<profile>/.arrays/<key>/`` (one
``.npy`` per array, two small parquet files for the text columns, ``meta.json``) and the others
load it with ``np.load(mmap_mode="r")``: pages are read when touched (one user's row for a
recommendation) and shared between processes through the page cache.

``key`` = sha256 of the inputs' file identities (device, inode, size, mtime in ns - a cached
stage's files are hard links of the same inode, so a cached re-run shares the entry; a rewritten
file is a new inode), the settings (split, relevance threshold, prior weight) and the source of
the modules that compute the arrays. Written to a temporary folder and renamed, so a reader sees
a whole entry or none; the newest :data:`KEEP_ENTRIES` entries per profile are kept. A folder that
cannot be written only means no store: the arrays are built as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["KEEP_ENTRIES", "STORE_DIR", "load_stored", "store", "store_key"]

STORE_DIR = ".arrays"
#: Entries kept per ``<artifacts>/<profile>/`` folder (each is about 0.7 GB at 32M ratings).
KEEP_ENTRIES = 4
_FORMAT = 1
#: The modules whose code decides the stored values.
_SOURCES = (
    "tasks/ranking/_arrays.py",
    "tasks/ranking/_store.py",
    "tasks/content/_profiles.py",
    "tasks/content/_numeric.py",
    "tasks/content/_files.py",
    "tasks/columns.py",
)
_CSR_FIELDS = ("seen", "exclude")
_TEXT_FIELDS = ("cohorts", "titles")
_SKIP_FIELDS = ("cf", "info", "genre_names", "provider_names")


def store_key(inputs: Iterable[Path | None], settings: dict[str, Any]) -> str:
    """sha256 of the inputs' file identities, the settings and the code (module docstring)."""
    digest = hashlib.sha256(json.dumps([_FORMAT, settings], sort_keys=True).encode())
    root = Path(__file__).resolve().parents[2]
    for rel in _SOURCES:
        with contextlib.suppress(OSError):
            digest.update((root / rel).read_bytes())
    for path in inputs:
        if path is None:
            digest.update(b"absent")
            continue
        st = os.stat(path)
        digest.update(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _entry(folder: Path, key: str) -> Path:
    return folder / STORE_DIR / key


def load_stored(cls: type, folder: Path, key: str) -> Any | None:
    """The stored arrays of ``key`` under ``folder`` (memory-mapped), or None when there are none."""
    entry = _entry(folder, key)
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        obj = object.__new__(cls)  # the stored values are the validated result of __post_init__
        for name, value in meta["scalars"].items():
            setattr(obj, name, value)
        for name in meta["arrays"]:
            setattr(obj, name, np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False))
        for name in meta["none"]:
            setattr(obj, name, None)
        for name, shape in meta["csr"].items():
            parts = [
                np.load(entry / f"{name}.{p}.npy", mmap_mode="r", allow_pickle=False)
                for p in ("data", "indices", "indptr")
            ]
            matrix = sp.csr_matrix(tuple(parts), shape=tuple(shape), copy=False)
            matrix.has_sorted_indices = True  # stored sorted (__post_init__ sorted them)
            setattr(obj, name, matrix)
        if meta.get("exclude_is_seen"):
            obj.exclude = obj.seen
        if meta.get("emb_mmr_is_embeddings"):
            obj.emb_mmr = obj.embeddings
        import pyarrow.parquet as pq

        for name in meta["text"]:
            column = pq.read_table(entry / f"{name}.parquet").column(0)
            setattr(obj, name, np.asarray(column.to_pylist(), dtype=object))
        obj.cf = None
        obj.info = dict(meta.get("info", {}))
    except (OSError, ValueError, KeyError) as exc:  # a damaged entry: removed, built again
        print(f"warning: ignoring the stored ranking arrays {entry}: {exc}", flush=True)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    with contextlib.suppress(OSError):
        os.utime(entry)  # recently used: kept by the pruning below
    return obj


def store(arrays: Any, folder: Path, key: str) -> None:
    """Write ``arrays`` (a :class:`RecommenderArrays` without CF model) as entry ``key``."""
    final = _entry(folder, key)
    if final.exists():
        return
    tmp = final.with_name(f".{key}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        tmp.mkdir(parents=True)
        meta: dict[str, Any] = {
            "scalars": {}, "arrays": [], "none": [], "csr": {}, "text": [],
            "info": json.loads(json.dumps(arrays.info, default=str)),
            "exclude_is_seen": arrays.exclude is arrays.seen,
            "emb_mmr_is_embeddings": arrays.emb_mmr is arrays.embeddings,
        }  # fmt: skip
        for f in dataclasses.fields(arrays):
            name, value = f.name, getattr(arrays, f.name)
            if name in _SKIP_FIELDS:
                continue
            if name in _TEXT_FIELDS and value is not None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({name: pa.array([str(v) for v in value])}), tmp / f"{name}.parquet")
                meta["text"].append(name)
            elif name in _CSR_FIELDS:
                if name == "exclude" and meta["exclude_is_seen"]:
                    continue
                for part in ("data", "indices", "indptr"):
                    np.save(tmp / f"{name}.{part}.npy", getattr(value, part), allow_pickle=False)
                meta["csr"][name] = list(value.shape)
            elif name == "emb_mmr" and meta["emb_mmr_is_embeddings"]:
                continue
            elif value is None:
                meta["none"].append(name)
            elif isinstance(value, np.ndarray):
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
                meta["arrays"].append(name)
            else:
                meta["scalars"][name] = value
        meta["scalars"]["genre_names"] = list(arrays.genre_names)
        meta["scalars"]["provider_names"] = list(arrays.provider_names)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process stored the same entry first: same content
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(final.parent)
    except OSError as exc:  # a read-only or full artifacts folder: no store, nothing else changes
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"warning: could not store the ranking arrays in {final.parent}: {exc}", flush=True)


def _prune(store_dir: Path) -> None:
    """Keep the :data:`KEEP_ENTRIES` most recently used entries (a mapped file outlives its unlink)."""
    entries = [p for p in store_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP_ENTRIES:]:
        shutil.rmtree(old, ignore_errors=True)
