"""Artifact inventory (stage ``inventory``, issue 4.4.2): every file of a run, hashed and validated.

Place in the pipeline: after ``edge_cases`` and before ``handoff``. The stage walks the run directory
(``os.walk`` without following symbolic links), and for every file records its relative path, size,
sha256 (streamed, 4 MiB blocks), kind, producing stage, the run id and a Great Expectations
validation result. It writes ``inventory/artifact_manifest.json`` (for machines),
``inventory/artifact_inventory.md`` (for people, linking every file and its Data Docs page) and the
GX Data Docs into ``inventory/data_docs/``. ``movierec validate RUN_DIR`` (:func:`validate_run_dir`)
recomputes the hashes and re-runs the same suites later.

How each file is validated (every file gets at least one GX suite; the validation rate is computed):

- Kind by extension (:func:`classify`): ``table`` (.parquet), ``csv``, ``json``, ``markdown`` (.md),
  ``png``, ``array`` (.npy/.npz), ``toml``, ``text`` (.txt/.log/.css/.svg/...), ``html``, ``other``;
  ``symlink`` for a symbolic link.
- Every file goes through a *derived facts table* of its kind - one row per file, computed here -
  validated by a real GX suite (``expectations/<kind>_facts.json``): tables parse and every row
  group decodes; JSON parses, has its required keys (:data:`REQUIRED_JSON_KEYS`) and no NaN;
  markdown is UTF-8 with a heading and links that resolve inside the run; PNGs decode with a
  non-zero size; arrays load without pickle and are finite; HTML links resolve; other files read
  and are not empty. One GX run per kind; when it fails, each row of that kind is re-validated
  alone so the failure is attributed to the right file.
- Files that have their own suite are validated by it as well (:data:`SUITE_CHECKS`: the canonical
  tables, candidates, metrics, tuning results, embeddings, factors, neighbours, manifests,
  signoff.json), with the same derived check frames their stages use. A suite can also claim files
  itself: ``meta.artifacts`` (a list of glob patterns relative to the run) plus optional
  ``meta.check_frame`` (``"module:function"``, called with the loaded table / array / JSON). A
  parquet table no rule claims is validated by a suite of the same name as its stem when one exists.
- Big tables (more than ``sample_rows`` rows; 32M ratings on the bench profile) are validated on a
  seeded row sample; the manifest says so per file (``sampled_rows`` of ``total_rows``, seed).
- A symbolic link is never followed to read its target: its "hash" is the sha256 of the link text,
  and it passes only when it resolves inside the run to an existing file (``symlink_facts``); a link
  pointing outside the run is listed with validation ``failed: points outside the run (<target>)``.

Rules for what the manifest covers: ``logs/stages.json`` and ``logs/run_status.json`` are written by
the flow after every stage, and the manifest / inventory files cannot contain their own hash, so
these four paths are outside the manifest (:data:`EXCLUDED`); :func:`validate_run_dir` ignores them.
The ``handoff`` stage appends its own files afterwards (:func:`append_to_manifest`), so the manifest
covers every other file. The stage is never cached (its output names the run).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import importlib
import json
import math
import os
import re
import secrets
import shutil
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.io import ArtifactRef, file_fingerprint, write_json, write_text
from tasks.stage import StageOutput, run_stage_core

__all__ = [
    "DATA_DOCS_DIR",
    "EXCLUDED",
    "INVENTORY_MD",
    "KINDS",
    "MANIFEST",
    "REQUIRED_JSON_KEYS",
    "SUITE_CHECKS",
    "append_to_manifest",
    "build_inventory",
    "classify",
    "inventory_core",
    "load_manifest",
    "manifest_table",
    "producing_stage",
    "scan_run_dir",
    "validate_entries",
    "validate_run_dir",
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
    **dict.fromkeys((".txt", ".log", ".css", ".svg", ".yaml", ".yml", ".js", ".tsv"), "text"),
}
#: The facts suite of each kind (``toml`` files are text files whose facts include "parses").
FACTS_SUITE = {
    "table": "table_facts",
    "csv": "csv_facts",
    "json": "json_facts",
    "markdown": "markdown_facts",
    "png": "png_facts",
    "array": "array_facts",
    "toml": "text_facts",
    "text": "text_facts",
    "html": "html_facts",
    "other": "file_facts",
    "symlink": "symlink_facts",
}

#: Keys a JSON artifact must have (checked by the ``json_facts`` suite); other JSON files need only parse.
REQUIRED_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "eval/gates.json": ("gates", "all_passed"),
    "eval/eval_manifest.json": ("facts", "settings"),
    "eval/regression.json": ("baseline_run", "compare_with", "reason", "significant_drop", "rows"),
    "tuning/policy.json": ("alphas", "policy_id"),
    "models/collab_meta.json": ("model", "factors"),
    "models/content_meta.json": ("encoder", "n_items"),
    "hybrid/assembly_manifest.json": ("kind",),
    "hybrid/rerank_manifest.json": ("kind",),
    "signoff/signoff.json": ("decision", "reasons", "gates", "run_id", "profile", "git_commit"),
}

#: Producing stage by path when the stages' own artifact lists do not name a file (first match wins).
STAGE_RULES: tuple[tuple[str, str], ...] = (
    ("profile.toml", "flow"),
    ("logs/*", "flow"),
    ("data/ratings.parquet", "ingest"),
    ("data/movies.parquet", "ingest"),
    ("data/*", "split"),
    ("models/content_*", "features"),
    ("models/item_*", "features"),
    ("models/*factors*", "collaborative"),
    ("models/user_index*", "collaborative"),
    ("models/collab_*", "collaborative"),
    ("hybrid/*", "candidates"),
    ("eval/regression*", "regression"),
    ("reports/regression*", "regression"),
    ("eval/*", "evaluation"),
    ("tuning/*", "evaluation"),
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

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------------------------
# scanning


def classify(relpath: str) -> str:
    """The kind of a file from its extension (:data:`KINDS`).

    >>> classify("data/ratings.parquet"), classify("reports/final_report.md"), classify("x.bin")
    ('table', 'markdown', 'other')
    """
    return _EXTENSIONS.get(Path(relpath).suffix.lower(), "other")


def producing_stage(relpath: str, stage_of: Mapping[str, str] | None = None) -> str:
    """The stage that wrote ``relpath``: from the stages' artifacts when listed, else :data:`STAGE_RULES`.

    >>> producing_stage("hybrid/candidates/user_1_candidates.parquet")
    'candidates'
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
    """One file (or symbolic link) of a run and its validation."""

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


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _symlink_entry(
    run_dir: Path, full: str, relpath: str, stage_of: Mapping[str, str] | None
) -> Entry:
    """A symbolic link, never followed to read its target (its 'hash' is that of the link text)."""
    target = os.readlink(full)
    resolved = os.path.realpath(full)  # resolves the path only; no file is opened
    inside = _inside(resolved, os.path.realpath(run_dir))
    text = target.encode("utf-8", "surrogateescape")
    return Entry(
        path=relpath,
        bytes=len(text),
        sha256=hashlib.sha256(text).hexdigest(),
        kind="symlink",
        stage=producing_stage(relpath, stage_of),
        link_target=target if inside else resolved,
        inside_run=inside,
    )


def scan_run_dir(
    run_dir: Path | str,
    *,
    stage_of: Mapping[str, str] | None = None,
    exclude: Iterable[str] = EXCLUDED,
    exclude_dirs: Iterable[str] = (),
    hash_files: bool = True,
) -> list[Entry]:
    """Every file and symbolic link under ``run_dir`` (sorted by path), hashed, never following links.

    ``exclude``: relative paths left out (:data:`EXCLUDED`); ``exclude_dirs``: relative folders left
    out (the Data Docs while they are being rebuilt).
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
                    sha256=file_fingerprint(full) if hash_files else "",
                    kind=classify(rel),
                    stage=producing_stage(rel, stage_of),
                )
            )
    return sorted(entries, key=lambda e: e.path)


# ---------------------------------------------------------------------------------------------
# derived facts tables (one row per file)

_MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _broken_links(run_dir: Path, relpath: str, targets: Iterable[str]) -> tuple[int, list[str]]:
    """(number of local links, those that do not resolve to a file inside the run)."""
    root = os.path.realpath(run_dir)
    base = os.path.dirname(os.path.join(root, relpath))
    n, broken = 0, []
    for target in targets:
        if _SCHEME.match(target) or target.startswith(("#", "//")):
            continue  # web links and anchors are not files of the run
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        n += 1
        from urllib.parse import unquote

        full = os.path.normpath(os.path.join(base, unquote(path)))
        if not _inside(full, root) or not os.path.exists(full):
            broken.append(target)
    return n, broken


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def table_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    """parses (footer), n_columns, columns_unique, n_rows, rows_readable (every row group decodes)."""
    import pyarrow.parquet as pq

    row: dict[str, Any] = {
        "path": relpath,
        "parses": False,
        "n_columns": 0,
        "columns_unique": False,
    }
    row.update(n_rows=0, rows_readable=False)
    try:
        pf = pq.ParquetFile(run_dir / relpath)
    except Exception:  # noqa: BLE001 - any reader error means "does not parse"; recorded, not raised
        return row
    names = pf.schema_arrow.names
    row.update(
        parses=True,
        n_columns=len(names),
        columns_unique=len(set(names)) == len(names) and all(names),
        n_rows=int(pf.metadata.num_rows),
    )
    try:
        for i in range(pf.num_row_groups):  # one row group at a time: bounded memory on 32M rows
            pf.read_row_group(i)
        row["rows_readable"] = True
    except Exception:  # noqa: BLE001 - a corrupt row group is a validation failure, recorded
        pass
    return row


def csv_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    row: dict[str, Any] = {"path": relpath, "parses": False, "n_columns": 0}
    row.update(columns_unique=False, n_rows=0)
    try:
        df = pd.read_csv(run_dir / relpath)
    except Exception:  # noqa: BLE001 - recorded as parses=False
        return row
    names = [str(c) for c in df.columns]
    unique = len(set(names)) == len(names) and not any(n.startswith("Unnamed:") for n in names)
    row.update(parses=True, n_columns=len(names), columns_unique=unique, n_rows=len(df))
    return row


def _numbers_finite(node: Any) -> bool:
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, dict):
        return all(_numbers_finite(v) for v in node.values())
    if isinstance(node, list):
        return all(_numbers_finite(v) for v in node)
    return True


def json_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    row: dict[str, Any] = {"path": relpath, "parses": False, "top_level_ok": False}
    required = REQUIRED_JSON_KEYS.get(relpath, ())
    row.update(required_keys_present=False, missing_keys=", ".join(required), numbers_finite=False)
    text = _read_text(run_dir / relpath)
    if text is None:
        return row
    try:
        data = json.loads(text)
    except ValueError:
        return row
    missing = [k for k in required if not (isinstance(data, dict) and k in data)]
    row.update(
        parses=True,
        top_level_ok=isinstance(data, (dict, list)),
        required_keys_present=not missing,
        missing_keys=", ".join(missing),
        numbers_finite=_numbers_finite(data),
    )
    return row


def markdown_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    row: dict[str, Any] = {"path": relpath, "decodes": False, "non_empty": False}
    row.update(has_heading=False, n_links=0, links_resolve=False, broken_links="")
    text = _read_text(run_dir / relpath)
    if text is None:
        return row
    # links inside fenced code blocks are examples, not links
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    n, broken = _broken_links(run_dir, relpath, _MD_LINK.findall(prose))
    row.update(
        decodes=True,
        non_empty=bool(text.strip()),
        has_heading=bool(re.search(r"^#{1,6} \S", text, flags=re.MULTILINE)),
        n_links=n,
        links_resolve=not broken,
        broken_links=", ".join(broken[:10]),
    )
    return row


def html_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    row: dict[str, Any] = {"path": relpath, "decodes": False, "has_html_tag": False}
    row.update(n_links=0, links_resolve=False, broken_links="")
    text = _read_text(run_dir / relpath)
    if text is None:
        return row
    n, broken = _broken_links(run_dir, relpath, _HTML_LINK.findall(text))
    row.update(
        decodes=True,
        has_html_tag=bool(re.search(r"<html[\s>]", text, flags=re.IGNORECASE)),
        n_links=n,
        links_resolve=not broken,
        broken_links=", ".join(broken[:10]),
    )
    return row


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    """signature_ok, decodes (Pillow decodes every pixel), width, height."""
    from PIL import Image

    path = run_dir / relpath
    row: dict[str, Any] = {"path": relpath, "signature_ok": False, "decodes": False}
    row.update(width=0, height=0)
    try:
        with open(path, "rb") as fh:
            row["signature_ok"] = fh.read(8) == _PNG_SIGNATURE
        with Image.open(path) as img:
            img.load()
            row.update(decodes=True, width=int(img.width), height=int(img.height))
    except Exception:  # noqa: BLE001 - Pillow raises many types for corrupt images; recorded
        pass
    return row


def _finite(arr: np.ndarray, block: int = 1 << 20) -> bool:
    if arr.dtype.kind not in "fc":
        return True
    flat = arr.reshape(-1)
    return all(np.isfinite(flat[i : i + block]).all() for i in range(0, flat.size, block))


def array_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    """loads (no pickle), n_arrays, n_rows (first dimension; the smallest for .npz), values_finite."""
    path = run_dir / relpath
    row: dict[str, Any] = {"path": relpath, "loads": False, "n_arrays": 0, "n_rows": 0}
    row["values_finite"] = False
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = [z[name] for name in z.files]
        else:
            arrays = [np.load(path, mmap_mode="r", allow_pickle=False)]
    except Exception:  # noqa: BLE001 - truncated/pickled arrays raise various errors; recorded
        return row
    rows = [int(a.shape[0]) if a.ndim else int(a.size) for a in arrays]
    row.update(
        loads=True,
        n_arrays=len(arrays),
        n_rows=min(rows) if rows else 0,
        values_finite=all(_finite(a) for a in arrays),
    )
    return row


def text_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    row: dict[str, Any] = {"path": relpath, "decodes": False, "non_empty": False, "parses": False}
    text = _read_text(run_dir / relpath)
    if text is None:
        return row
    parses = True
    if relpath.endswith(".toml"):
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            parses = False
    row.update(decodes=True, non_empty=bool(text.strip()), parses=parses)
    return row


def file_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    path = run_dir / relpath
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except OSError:
        return {"path": relpath, "readable": False, "non_empty": False}
    return {"path": relpath, "readable": True, "non_empty": size > 0}


def symlink_facts(run_dir: Path, entry: Entry) -> dict[str, Any]:
    """inside_run / target_exists; a link pointing outside is never stat'ed, let alone read."""
    exists = False
    if entry.inside_run:
        exists = os.path.exists(os.path.realpath(run_dir / entry.path))
    return {
        "path": entry.path,
        "target": str(entry.link_target),
        "inside_run": entry.inside_run,
        "target_exists": exists,
    }


_FACTS: dict[str, Callable[[Path, str], dict[str, Any]]] = {
    "table": table_facts,
    "csv": csv_facts,
    "json": json_facts,
    "markdown": markdown_facts,
    "png": png_facts,
    "array": array_facts,
    "toml": text_facts,
    "text": text_facts,
    "html": html_facts,
    "other": file_facts,
}


# ---------------------------------------------------------------------------------------------
# files with their own suite


@dataclass
class CheckContext:
    """What suite checks need besides the file: parameters, sampling, shared references (cached)."""

    run_dir: Path
    sample_rows: int = 2_000_000
    seed: int = 0
    table_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    def table(self, relpath: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a table of the run; column subsets (references, indexes) are kept for reuse, whole
        tables are not (32M ratings would stay in memory for the rest of the stage)."""
        from tasks.io import read_table

        if columns is None:
            return read_table(self.run_dir / relpath)
        key = f"{relpath}|{columns}"
        if key not in self._cache:
            self._cache[key] = read_table(self.run_dir / relpath, columns=columns)
        return self._cache[key]

    def sample(self, df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any] | None]:
        """A seeded row sample when ``df`` has more than ``sample_rows`` rows (order kept)."""
        if len(df) <= self.sample_rows:
            return df, None
        picks = np.sort(
            np.random.default_rng(self.seed).choice(len(df), self.sample_rows, replace=False)
        )
        info = {"sampled_rows": self.sample_rows, "total_rows": len(df), "seed": self.seed}
        return df.iloc[picks].reset_index(drop=True), info


def _call(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _frame_plain(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return ctx.table(relpath)


def _frame_with(spec: str) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        return _call(spec)(ctx.table(relpath))

    return build


def _frame_tuning(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.tuning import tuning_check_frame

    return tuning_check_frame(pd.read_csv(ctx.run_dir / relpath))


def _frame_embeddings(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.content import embedding_row_table
    from tasks.io import load_array

    return embedding_row_table(load_array(ctx.run_dir / relpath, mmap=True))


def _frame_factors(index_relpath: str) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        from tasks.collaborative import factor_row_table
        from tasks.io import load_array

        has = ctx.table(index_relpath, ["has_factors"])["has_factors"].to_numpy(bool)
        return factor_row_table(load_array(ctx.run_dir / relpath, mmap=True), has)

    return build


def _frame_neighbors(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.content import neighbor_table
    from tasks.io import load_array

    ids = ctx.table("models/item_index.parquet", ["movie_id"])["movie_id"].to_numpy()
    sims = load_array(ctx.run_dir / "models/item_neighbor_sims.npy", mmap=True)
    return neighbor_table(ids, load_array(ctx.run_dir / relpath, mmap=True), sims)


def _frame_manifest(suite: str) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        from tasks.candidates import manifest_facts

        return manifest_facts(
            json.loads((ctx.run_dir / relpath).read_text(encoding="utf-8")), suite
        )

    return build


def _frame_edge_cases(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.edge_cases import edge_cases_check_frame

    return edge_cases_check_frame(ctx.table(relpath), ctx.run_dir)


def _frame_signoff(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.signoff import signoff_check_frame

    return signoff_check_frame(json.loads((ctx.run_dir / relpath).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class SuiteCheck:
    """A suite that validates the files matching ``pattern`` (glob on the relative path).

    ``frame(ctx, relpath)`` builds the table the suite sees (the stage's own check frame);
    ``references`` maps a reference name to a table of the run (for the derived in-reference
    columns); ``parameters`` names an entry of the context's ``table_parameters``; ``sample``
    validates big tables on a seeded row sample; ``group`` validates every matching file in one GX
    run (their frames concatenated; on failure each file again alone, for attribution).
    """

    pattern: str
    suite: str
    frame: Callable[[CheckContext, str], pd.DataFrame] = _frame_plain
    references: Mapping[str, tuple[str, list[str] | None]] = field(default_factory=dict)
    parameters: str | None = None
    sample: bool = False
    group: bool = False


_MOVIES_REF = {"movies": ("data/movies.parquet", ["movie_id"])}
#: Built-in suite checks (the suites of the stages before the inventory), first match per suite.
SUITE_CHECKS: tuple[SuiteCheck, ...] = (
    SuiteCheck(
        "data/ratings.parquet", "ratings", references=_MOVIES_REF, parameters="ratings", sample=True
    ),
    SuiteCheck("data/movies.parquet", "movies", sample=True),
    SuiteCheck(
        "data/train.parquet", "train", references=_MOVIES_REF, parameters="ratings", sample=True
    ),
    SuiteCheck(
        "data/test.parquet",
        "test",
        references={**_MOVIES_REF, "train": ("data/train.parquet", ["user_id", "movie_id"])},
        parameters="ratings",
        sample=True,
    ),
    SuiteCheck("data/cohorts.parquet", "cohorts", sample=True),
    SuiteCheck(
        "data/train_fit.parquet", "train", references=_MOVIES_REF, parameters="ratings", sample=True
    ),
    SuiteCheck(
        "data/validation.parquet",
        "validation",
        references={
            **_MOVIES_REF,
            "train_fit": ("data/train_fit.parquet", ["user_id", "movie_id"]),
        },
        parameters="ratings",
        sample=True,
    ),
    SuiteCheck("data/dropped_history.parquet", "dropped_history", sample=True),
    SuiteCheck(
        "hybrid/candidates/*.parquet",
        "candidates",
        _frame_with("tasks.candidates:candidates_check_frame"),
        group=True,
    ),
    SuiteCheck(
        "eval/metrics.parquet", "metrics", _frame_with("tasks.evaluation:metrics_check_frame")
    ),
    SuiteCheck("tuning/tuning_results.csv", "tuning_results", _frame_tuning),
    SuiteCheck("models/content_embeddings.npy", "embeddings", _frame_embeddings),
    SuiteCheck("models/user_factors.npy", "factors", _frame_factors("models/user_index.parquet")),
    SuiteCheck(
        "models/item_factors.npy", "factors", _frame_factors("models/collab_item_index.parquet")
    ),
    SuiteCheck("models/item_neighbors.npy", "item_neighbors", _frame_neighbors),
    SuiteCheck(
        "hybrid/assembly_manifest.json", "assembly_manifest", _frame_manifest("assembly_manifest")
    ),
    SuiteCheck(
        "hybrid/rerank_manifest.json", "rerank_manifest", _frame_manifest("rerank_manifest")
    ),
    SuiteCheck("case_studies/taxonomy.parquet", "case_studies", sample=True),
    SuiteCheck("case_studies/selected.parquet", "case_selection"),
    SuiteCheck(
        "edge_cases/results.parquet", "edge_cases", _frame_edge_cases, parameters="edge_cases"
    ),
    SuiteCheck("signoff/signoff.json", "signoff", _frame_signoff),
)
_OWN_SUITES = frozenset({*FACTS_SUITE.values(), "artifact_manifest"})


def _loader_for(kind: str, spec: str | None) -> Callable[[CheckContext, str], pd.DataFrame]:
    """A frame builder for a suite that claims files through ``meta.artifacts``."""

    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        path = ctx.run_dir / relpath
        if kind == "table":
            data: Any = ctx.table(relpath)
        elif kind == "csv":
            data = pd.read_csv(path)
        elif kind == "array":
            from tasks.io import load_array

            data = load_array(path, mmap=True)
        elif kind == "json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ValueError(
                f"{relpath}: a suite's meta.artifacts can only claim tables, CSV, arrays or JSON"
            )
        return _call(spec)(data) if spec else data

    return build


def _declared_checks() -> list[SuiteCheck]:
    """Checks declared by suites themselves: ``meta.artifacts`` globs (+ ``meta.check_frame``)."""
    from tasks.validation import EXPECTATIONS_DIR

    checks = []
    for path in sorted(EXPECTATIONS_DIR.glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {}) or {}
        for pattern in meta.get("artifacts", []) or []:
            checks.append(
                SuiteCheck(
                    pattern,
                    path.stem,
                    _loader_for(classify(pattern), meta.get("check_frame")),
                    sample=classify(pattern) == "table" and not meta.get("check_frame"),
                )
            )
    return checks


def checks_for(
    relpath: str, kind: str, declared: list[SuiteCheck], suites: set[str]
) -> list[SuiteCheck]:
    """The suite checks of one file besides its facts suite."""
    found = [c for c in (*SUITE_CHECKS, *declared) if fnmatch.fnmatch(relpath, c.pattern)]
    if not found and kind == "table":
        stem = Path(relpath).stem
        if stem in suites and stem not in _OWN_SUITES:
            found = [SuiteCheck(relpath, stem, sample=True)]
    seen: set[str] = set()
    unique = []
    for check in found:
        if check.suite not in seen:
            seen.add(check.suite)
            unique.append(check)
    return unique


# ---------------------------------------------------------------------------------------------
# running the suites


class _DocsRecorder:
    """Maps each GX validation run to the validation results it stored (for Data Docs pages)."""

    def __init__(self) -> None:
        from tasks.validation import _gx_batch_definition  # the process's shared GX context

        self.context = _gx_batch_definition()[0]
        self.store = self.context.validation_results_store
        self.keys: list[Any] = []

    def run(self, fn: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
        before = set(self.store.list_keys())
        summary = fn()
        new = [k for k in self.store.list_keys() if k not in before]
        self.keys.extend(new)
        return summary, new

    @staticmethod
    def page(key: Any) -> str:
        return "validations/" + "/".join(key.to_tuple()) + ".html"


def _summary_check(
    summary: dict[str, Any], pages: list[str], extra: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "suite": summary["suite"],
        "success": bool(summary["success"]),
        "rows": summary.get("rows"),
        "evaluated": summary.get("evaluated"),
        "failed": [f["message"] for f in summary.get("failed", [])],
        "skipped": [s.get("column") for s in summary.get("skipped", [])],
        "seconds": summary.get("seconds"),
        "docs": pages,
        **extra,
    }


def _error_check(suite: str, message: str) -> dict[str, Any]:
    return {
        "suite": suite,
        "success": False,
        "rows": 0,
        "evaluated": 0,
        "failed": [message],
        "docs": [],
    }


def _run_suite_check(
    check: SuiteCheck, entry: Entry, ctx: CheckContext, recorder: _DocsRecorder | None
) -> dict[str, Any]:
    from tasks.validation import suite_parameters, validate_table

    source = entry.path
    try:
        frame = check.frame(ctx, entry.path)
        extra: dict[str, Any] = {}
        if check.sample:
            frame, info = ctx.sample(frame)
            if info:
                extra.update(info)
        references = {name: ctx.table(rel, cols) for name, (rel, cols) in check.references.items()}
        params = dict(ctx.table_parameters.get(check.parameters, {})) if check.parameters else {}
        params = suite_parameters(check.suite, params)
    except Exception as exc:  # noqa: BLE001 - a file that cannot be loaded fails its validation
        return _error_check(
            check.suite,
            f"{source}: cannot be loaded for suite '{check.suite}' ({type(exc).__name__}: {exc})",
        )
    if params:
        extra["parameters"] = params

    def go() -> dict[str, Any]:
        return validate_table(
            frame,
            check.suite,
            source=source,
            parameters=params,
            references=references,
            seed=ctx.seed,
        )

    if recorder is None:
        summary, keys = go(), []
    else:
        summary, keys = recorder.run(go)
    return _summary_check(summary, [_DocsRecorder.page(k) for k in keys], extra)


def _run_facts(
    suite: str,
    rows: list[dict[str, Any]],
    recorder: _DocsRecorder | None,
    parameters: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One GX run over the facts rows of a kind; on failure each row again alone (attribution)."""
    from tasks.validation import validate_table

    def run(frame: pd.DataFrame, source: str) -> tuple[dict[str, Any], list[str]]:
        def go() -> dict[str, Any]:
            return validate_table(frame, suite, source=source, parameters=parameters)

        if recorder is None:
            return go(), []
        summary, keys = recorder.run(go)
        return summary, [_DocsRecorder.page(k) for k in keys]

    frame = pd.DataFrame(rows)
    summary, pages = run(frame, f"{suite} ({len(rows)} files)")
    if summary["success"]:
        return [_summary_check(summary, pages, {"rows": 1, "facts": _plain(row)}) for row in rows]
    out = []
    for i, row in enumerate(rows):  # rare: attribute the failure to each file
        one, one_pages = run(frame.iloc[[i]].reset_index(drop=True), row["path"])
        out.append(_summary_check(one, one_pages or pages, {"facts": _plain(row)}))
    return out


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items() if k != "path"
    }


def validate_entries(
    run_dir: Path | str,
    entries: list[Entry],
    *,
    sample_rows: int = 2_000_000,
    seed: int = 0,
    table_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    recorder: _DocsRecorder | None = None,
    progress: Progress | None = None,
) -> list[Entry]:
    """Run every file's facts suite (grouped by kind) and its own suites; fill ``entry.checks``."""
    from tasks.validation import suite_names

    run_dir = Path(run_dir)
    ctx = CheckContext(run_dir, sample_rows, seed, dict(table_parameters or {}))
    declared = _declared_checks()
    suites = set(suite_names())
    for entry in entries:
        entry.checks = []
    by_suite: dict[str, list[Entry]] = {}
    for entry in entries:
        by_suite.setdefault(FACTS_SUITE[entry.kind], []).append(entry)
    total = max(1, len(entries))
    done = 0
    for suite, group in sorted(by_suite.items()):
        rows = [
            symlink_facts(run_dir, e) if e.kind == "symlink" else _FACTS[e.kind](run_dir, e.path)
            for e in group
        ]
        for entry, check in zip(group, _run_facts(suite, rows, recorder), strict=True):
            entry.checks.append(check)
        done += len(group)
        if progress:
            progress(done / total * 0.5, f"facts suite {suite}: {len(group)} files")
    groups: dict[tuple[str, str], list[tuple[SuiteCheck, Entry]]] = {}
    for i, entry in enumerate(entries):
        if entry.kind == "symlink" or (
            not entry.checks[0]["success"] and entry.kind in ("table", "array")
        ):
            continue  # never read through a link; an unreadable table/array already failed
        for check in checks_for(entry.path, entry.kind, declared, suites):
            if check.group:
                groups.setdefault((check.pattern, check.suite), []).append((check, entry))
            else:
                entry.checks.append(_run_suite_check(check, entry, ctx, recorder))
        if progress and entry.kind in ("table", "array", "csv"):
            progress(0.5 + 0.5 * (i + 1) / total, f"validated {entry.path}")
    for (pattern, _suite), items in groups.items():
        _run_group_check(pattern, items, ctx, recorder)
    return entries


def _run_group_check(
    pattern: str,
    items: list[tuple[SuiteCheck, Entry]],
    ctx: CheckContext,
    recorder: _DocsRecorder | None,
) -> None:
    """One GX run over the concatenated frames of many files of one suite (e.g. 20 candidate
    files); when it fails, each file is validated alone so the failure names the right file."""
    from tasks.validation import validate_table

    frames, ok = [], []
    for check, entry in items:
        try:
            frames.append(check.frame(ctx, entry.path))
            ok.append((check, entry))
        except Exception as exc:  # noqa: BLE001 - an unloadable file fails its own validation
            entry.checks.append(
                _error_check(
                    check.suite,
                    f"{entry.path}: cannot be loaded for suite '{check.suite}' ({type(exc).__name__}: {exc})",
                )
            )
    if not ok:
        return
    suite = ok[0][0].suite
    frame = pd.concat(frames, ignore_index=True)

    def go() -> dict[str, Any]:
        return validate_table(frame, suite, source=f"{pattern} ({len(ok)} files)", seed=ctx.seed)

    summary, keys = (go(), []) if recorder is None else recorder.run(go)
    if summary["success"]:
        pages = [_DocsRecorder.page(k) for k in keys]
        for (_check, entry), part in zip(ok, frames, strict=True):
            entry.checks.append(
                _summary_check(summary, pages, {"rows": len(part), "grouped_files": len(ok)})
            )
        return
    for check, entry in ok:
        entry.checks.append(_run_suite_check(check, entry, ctx, recorder))


# ---------------------------------------------------------------------------------------------
# manifest and inventory files


def manifest_table(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """The manifest's files as a table (validated by the ``artifact_manifest`` suite)."""
    columns = ["path", "bytes", "sha256", "kind", "stage", "run_id", "status"]
    rows = [{c: f.get(c) for c in columns} for f in manifest.get("files", [])]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"bytes": "int64"}) if len(table) else table


def _check_manifest_table(manifest: Mapping[str, Any]) -> None:
    from tasks.validation import require_valid

    require_valid(
        manifest_table(manifest),
        "artifact_manifest",
        source=MANIFEST,
        parameters={"kinds": list(KINDS), "run_ids": [manifest["run_id"]]},
    )


def _summarise(manifest: dict[str, Any]) -> dict[str, Any]:
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


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _link(relpath: str) -> str:
    """A link from ``inventory/`` to a file of the run (spaces and parentheses escaped)."""
    from urllib.parse import quote

    return quote(f"../{relpath}")


def render_inventory_md(manifest: Mapping[str, Any]) -> str:
    """``inventory/artifact_inventory.md``: summary, rules, one row per file with its Data Docs pages."""
    rate = manifest["validation_rate"]
    docs = manifest.get("data_docs")
    lines = [
        f"# Artifact inventory - run {manifest['run_id']}",
        "",
        f"Profile `{manifest['profile']}`, inventory taken {manifest['created']}. Machine-readable form: "
        f"[artifact_manifest.json](artifact_manifest.json).",
        "",
        f"- files: {manifest['n_files']:,} ({manifest['n_bytes']:,} bytes)",
        f"- validated by Great Expectations: {manifest['n_files']:,} of {manifest['n_files']:,}; "
        f"passed {manifest['n_passed']:,} - validation rate **{100 * rate:.2f}%**",
        f"- failed validations: {len(manifest['failed'])}",
        f"- symbolic links pointing outside the run: {len(manifest['symlinks_outside'])}",
    ]
    if docs:
        lines.append(
            f"- Great Expectations Data Docs: [data_docs/index.html]({Path(docs).relative_to('inventory').as_posix()})"
        )
    lines += ["", "## Failed validations", ""]
    if manifest["failed"]:
        lines += [f"- `{_md_cell(f['path'])}`: {_md_cell(f['reason'])}" for f in manifest["failed"]]
    else:
        lines.append("None: every file passed its suites.")
    lines += [
        "",
        "## How files are validated",
        "",
        "Every file goes through a derived facts table of its kind (one row per file) validated by a "
        "GX suite in `expectations/`: `table_facts` (parquet parses, every row group decodes), "
        "`csv_facts`, `json_facts` (parses, required keys, no NaN), `markdown_facts` (UTF-8, heading, "
        "links resolve inside the run), `png_facts` (decodes, non-zero size), `array_facts` (loads "
        "without pickle, finite), `text_facts` (TOML parses), `html_facts`, `file_facts`, "
        "`symlink_facts` (links resolve inside the run; never followed). Files with their own suite "
        "(canonical tables, candidates, metrics, tuning results, embeddings, factors, neighbours, "
        "manifests, signoff.json) are validated by it too, with the check frames their stages use. "
        f"Tables with more than {manifest['sample_rows']:,} rows are validated on a seeded sample "
        f"(seed {manifest['seed']}); the table below says which.",
        "",
        "Outside this list by rule: "
        + ", ".join(f"`{p}`" for p in sorted(WRITTEN_AFTER_STAGES))
        + " (written by the flow after every stage) and "
        + ", ".join(f"`{p}`" for p in sorted(SELF_FILES))
        + " (they cannot hold their own hash). `movierec validate RUN_DIR` re-checks every listed file.",
        "",
        "## Files",
        "",
        "| path | bytes | sha256 | kind | stage | validation | suites | Data Docs |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for f in manifest["files"]:
        suites = []
        for c in f.get("checks", []):
            label = c["suite"]
            if c.get("sampled_rows"):
                label += f" (sample {c['sampled_rows']:,} of {c['total_rows']:,} rows)"
            suites.append(label)
        doc_links = " ".join(
            f"[{c['suite']} {i + 1}](data_docs/{page})"
            for c in f.get("checks", [])
            for i, page in enumerate(c.get("docs", []))
            if docs
        )
        path_cell = (
            f"`{_md_cell(f['path'])}`"
            if f["kind"] == "symlink"
            else f"[{_md_cell(f['path'])}]({_link(f['path'])})"
        )
        lines.append(
            f"| {path_cell} | {f['bytes']:,} | `{f['sha256'][:12]}` | {f['kind']} | {f['stage']} | "
            f"{_md_cell(f['validation'])} | {_md_cell(', '.join(suites))} | {doc_links} |"
        )
    return "\n".join(lines) + "\n"


def _write_manifest(run_dir: Path, manifest: dict[str, Any]) -> dict[str, ArtifactRef]:
    _summarise(manifest)
    _check_manifest_table(manifest)
    return {
        "manifest": write_json(manifest, run_dir, MANIFEST),
        "inventory_md": write_text(render_inventory_md(manifest), run_dir, INVENTORY_MD),
    }


def _build_data_docs(run_dir: Path, recorder: _DocsRecorder) -> str | None:
    """Build GX Data Docs of the recorded validations into ``inventory/data_docs/`` (atomic swap)."""
    if not recorder.keys:
        return None
    final = run_dir / DATA_DOCS_DIR
    tmp = final.with_name(f".data_docs.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    site = f"inventory-{secrets.token_hex(4)}"
    recorder.context.add_data_docs_site(
        site,
        {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                # GX insists on an absolute path (the run dir is relative under `make demo`)
                "base_directory": str(tmp.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    try:
        recorder.context.build_data_docs(site_names=[site], resource_identifiers=recorder.keys)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return f"{DATA_DOCS_DIR}/index.html"


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


def inventory_core(
    run_dir: str,
    stage_of: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
    table_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    sample_rows: int = 2_000_000,
    seed: int = 0,
    build_docs: bool = True,
) -> dict[str, Any]:
    """Pure core of the ``inventory`` stage: scan, hash, validate, Data Docs, manifest + inventory.

    ``stage_of`` maps relative paths to the stage that wrote them (from the stages' artifacts);
    ``table_parameters`` holds suite parameters by name (``{"ratings": {...}}``: the rating scale
    ingest validated with). Returns ``{"artifacts", "facts"}``; facts: ``validation_rate``,
    ``n_files``, ``n_bytes``, ``failed_validations``, ``symlinks_outside``, ``seconds``.
    """
    from tasks.budget import report_progress

    started = time.perf_counter()
    # a finished run re-inventoried (tests, by hand): the parameters its stages recorded come first
    table_parameters = {**_recorded_parameters(Path(run_dir)), **dict(table_parameters or {})}
    root = Path(run_dir)
    run_id = root.name
    report_progress(0.0, "hashing every file of the run")
    entries = scan_run_dir(root, stage_of=stage_of, exclude_dirs=[DATA_DOCS_DIR])
    hashed = time.perf_counter()
    recorder = _DocsRecorder() if build_docs else None
    validate_entries(
        root,
        entries,
        sample_rows=sample_rows,
        seed=seed,
        table_parameters=table_parameters,
        recorder=recorder,
        progress=lambda f, m: report_progress(0.05 + 0.8 * f, m),
    )
    validated = time.perf_counter()
    docs = None
    if recorder is not None:
        report_progress(0.87, "building Great Expectations Data Docs")
        docs = _build_data_docs(root, recorder)
        doc_entries = [
            e for e in scan_run_dir(root, stage_of={}) if e.path.startswith(DATA_DOCS_DIR + "/")
        ]
        for e in doc_entries:
            e.stage = "inventory"
        validate_entries(root, doc_entries, sample_rows=sample_rows, seed=seed)
        entries = sorted(entries + doc_entries, key=lambda e: e.path)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "profile": profile or root.parent.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hash": "sha256",
        "sample_rows": sample_rows,
        "seed": seed,
        "table_parameters": {k: dict(v) for k, v in (table_parameters or {}).items()},
        "data_docs": docs,
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


# ---------------------------------------------------------------------------------------------
# re-checking a finished run


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


# ---------------------------------------------------------------------------------------------
# stage task


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
