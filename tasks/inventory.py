"""Artifact inventory (stage ``inventory``, issue 4.4.2): every file of a run, hashed and validated.

Place in the pipeline: after ``edge_cases`` and before ``handoff``. The stage walks the run directory
(:func:`tasks.manifest.scan_run_dir`: ``os.walk`` without following symbolic links), and for every
file records its relative path, size, sha256 (streamed, 4 MiB blocks), kind, producing stage, the
run id and a Great Expectations validation result. It writes ``inventory/artifact_manifest.json``
(for machines), ``inventory/artifact_inventory.md`` (for people, linking every file and its Data
Docs page) and the GX Data Docs into ``inventory/data_docs/``. ``movierec validate RUN_DIR``
(:func:`validate_run_dir`) recomputes the hashes and re-runs the same suites later. The manifest's
format (paths, kinds, producing stages, exclusions) is :mod:`tasks.manifest`.

How each file is validated (every file gets at least one GX suite; the validation rate is computed):

- Kind by extension (:func:`classify`): ``table`` (.parquet), ``csv``, ``json``, ``markdown`` (.md),
  ``png``, ``array`` (.npy/.npz), ``toml``, ``text`` (.txt/.log/.journal/.css/.svg/...), ``html``,
  ``other``; ``symlink`` for a symbolic link.
- Every file goes through a *derived facts table* of its kind - one row per file, computed here -
  validated by a real GX suite (``expectations/<kind>_facts.json``): tables parse and every row
  group decodes; CSV files parse with unique column names; JSON parses, has its required keys
  (:data:`REQUIRED_JSON_KEYS`, by path pattern) and no NaN; markdown is UTF-8 with a heading and
  links that resolve inside the run; PNGs decode with a non-zero size; arrays load without pickle
  and are finite; TOML parses and Optuna's ``tuning/study.journal`` has one JSON object per line;
  HTML links resolve; other files read and are not empty. One GX run per kind; when it fails, each
  row of that kind is re-validated alone so the failure is attributed to the right file.
- Files that have their own suite are validated by it as well (:data:`SUITE_CHECKS`), with derived
  check frames: the canonical tables and the split outputs (train, test, validation, train_fit,
  dropped_history, cohorts), candidates, ``eval/metrics.parquet``, ``eval/paired_tests.parquet``,
  ``eval/per_user.parquet``, ``tuning/tuning_results.csv``, ``tuning/validation_metrics.csv``,
  ``tuning/trials.csv``, the content embeddings and neighbours, every saved CF model
  (``models/cf/<role>/cf_meta.json`` through ``cf_model``: files, config, index sizes and array
  shapes; the index tables through ``cf_index``; factor arrays through ``factors``), the hybrid
  manifests, case studies, edge cases and ``signoff/signoff.json`` (its decision recomputed from its
  gates, :func:`tasks.decision.signoff_check_frame`). A suite can also claim files itself:
  ``meta.artifacts`` (a list of glob patterns relative to the run) plus optional
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
The ``handoff`` stage (:mod:`tasks.handoff`) appends the sign-off files afterwards
(:func:`append_to_manifest`), so the manifest covers every other file. The stage is never cached
(its output names the run).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
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

from tasks.decision import signoff_check_frame
from tasks.io import ArtifactRef, write_json, write_text
from tasks.manifest import (
    DATA_DOCS_DIR,
    EXCLUDED,
    INVENTORY_MD,
    KINDS,
    MANIFEST,
    SELF_FILES,
    WRITTEN_AFTER_STAGES,
    Entry,
    classify,
    inside,
    load_manifest,
    manifest_table,
    producing_stage,
    scan_run_dir,
    summarise_manifest,
)
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
    "required_json_keys",
    "scan_run_dir",
    "validate_entries",
    "validate_run_dir",
]

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

#: Keys a JSON artifact must have, by path pattern (glob; every matching pattern applies; checked
#: by the ``json_facts`` suite); other JSON files need only parse.
REQUIRED_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "eval/gates.json": ("gates", "all_passed", "best_baseline", "min_lift"),
    "eval/eval_manifest.json": ("kind", "key", "facts"),
    "eval/regression.json": (
        "baseline_run",
        "compare_with",
        "compared",
        "reason",
        "significant_drop",
        "rows",
    ),
    "tuning/policy.json": (
        "version",
        "ranking",
        "collab",
        "alphas",
        "validation",
        "search",
        "provenance",
    ),
    "tuning/baselines.json": ("version", "baselines"),
    "models/cf/roles.json": ("roles",),
    "models/cf/*/cf_meta.json": ("format", "kind", "config", "info", "files"),
    "models/content_meta.json": ("encoder", "n_items"),
    "hybrid/assembly_manifest.json": ("kind",),
    "hybrid/rerank_manifest.json": ("kind",),
    "signoff/signoff.json": ("decision", "reasons", "gates", "run_id", "profile", "git_commit"),
}


def required_json_keys(relpath: str) -> tuple[str, ...]:
    """The keys ``relpath`` must have (every pattern of :data:`REQUIRED_JSON_KEYS` it matches).

    >>> required_json_keys("models/cf/policy/cf_meta.json")
    ('format', 'kind', 'config', 'info', 'files')
    >>> required_json_keys("eval/other.json")
    ()
    """
    keys: list[str] = []
    for pattern, required in REQUIRED_JSON_KEYS.items():
        if fnmatch.fnmatch(relpath, pattern):
            keys += [k for k in required if k not in keys]
    return tuple(keys)


Progress = Callable[[float, str], None]

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
        if not inside(full, root) or not os.path.exists(full):
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
    required = required_json_keys(relpath)
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


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def text_facts(run_dir: Path, relpath: str) -> dict[str, Any]:
    """decodes (UTF-8), non_empty, parses (TOML files parse; ``.journal`` files - Optuna's study
    journal - hold one JSON object per line; other text files: True)."""
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
    elif relpath.endswith(".journal"):  # Optuna's journal: one JSON object per line
        parses = all(_json_object(line) for line in text.splitlines() if line.strip())
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


def _frame_with_fn(
    check_frame: Callable[[pd.DataFrame], pd.DataFrame],
) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        return check_frame(ctx.table(relpath))

    return build


def _frame_tuning(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.tuning import tuning_check_frame

    return tuning_check_frame(pd.read_csv(ctx.run_dir / relpath))


def _frame_embeddings(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.content import embedding_row_table
    from tasks.io import load_array

    return embedding_row_table(load_array(ctx.run_dir / relpath, mmap=True))


def _frame_cf_factors(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    """``models/cf/<role>/{user,item}_factors.npy`` through :func:`tasks.collaborative.factor_row_table`;
    which rows must be non-zero comes from the ``known`` column of the folder's index table."""
    from tasks.collaborative import factor_row_table
    from tasks.io import load_array

    side = Path(relpath).name.split("_", 1)[0]  # "user" or "item"
    index = f"{Path(relpath).parent.as_posix()}/{side}_index.parquet"
    known = ctx.table(index, ["known"])["known"].to_numpy(bool)
    return factor_row_table(load_array(ctx.run_dir / relpath, mmap=True), known)


def cf_index_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A CF model's ``user_index.parquet`` / ``item_index.parquet`` as the ``cf_index`` suite sees
    it: ``id``, ``idx``, ``known`` plus ``idx_is_row`` (idx = row number: the arrays' row order)
    and ``id_increasing`` (ids sorted and unique: the shared index of every model of the run).

    >>> t = pd.DataFrame({"movie_id": [3, 5, 5], "item_idx": [0, 1, 3], "known": [True, False, True]})
    >>> cf_index_check_frame(t)[["idx_is_row", "id_increasing"]].to_dict("list")
    {'idx_is_row': [True, True, False], 'id_increasing': [True, True, False]}
    """
    id_col = next((c for c in ("user_id", "movie_id") if c in table.columns), None)
    idx_col = next((c for c in ("user_idx", "item_idx") if c in table.columns), None)
    if id_col is None or idx_col is None or "known" not in table.columns:
        raise ValueError(
            f"a CF index table has (user_id, user_idx, known) or (movie_id, item_idx, known); "
            f"found {list(table.columns)}"
        )
    ids = table[id_col].to_numpy(np.int64)
    idx = table[idx_col].to_numpy(np.int64)
    increasing = np.ones(len(ids), bool)
    increasing[1:] = ids[1:] > ids[:-1]
    return pd.DataFrame(
        {
            "id": ids,
            "idx": idx,
            "known": table["known"].to_numpy(),
            "idx_is_row": idx == np.arange(len(idx)),
            "id_increasing": increasing,
        }
    )


def _frame_cf_index(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return cf_index_check_frame(ctx.table(relpath))


def cf_model_facts(folder: Path) -> dict[str, Any]:
    """One saved CF model folder (``models/cf/<role>/``, :func:`tasks.cf.save_cf_model`) as one
    row for the ``cf_model`` suite: ``kind_known``; ``files_present`` (every file ``cf_meta.json``
    lists exists); ``config_valid`` (its config is a valid ``[collab]`` section);
    ``index_sizes_match`` (index rows = ``info.n_users`` / ``info.n_items``, known counts =
    ``info.users_known`` / ``items_known`` where recorded); ``arrays_match`` (factors: one row per
    index row, same width; EASE: square weights over ``ease_items``, item positions inside the
    index; kNN: an items x items matrix)."""
    from tasks.io import load_array, read_table
    from tasks.profile import CollabSection

    meta = json.loads((folder / "cf_meta.json").read_text(encoding="utf-8"))
    kind, info = meta.get("kind"), dict(meta.get("info") or {})
    files = dict(meta.get("files") or {})
    row: dict[str, Any] = {
        "kind": str(kind),
        "kind_known": kind in ("factors", "ease", "knn"),
        "files_present": bool(files) and all((folder / f).is_file() for f in files.values()),
        "config_valid": False,
        "index_sizes_match": False,
        "arrays_match": False,
    }
    try:
        CollabSection.model_validate(meta.get("config") or {})
        row["config_valid"] = True
    except ValueError:
        pass
    if not row["files_present"] or not row["kind_known"]:
        return row
    users = read_table(folder / files["user_index"], columns=["known"])["known"].to_numpy(bool)
    items = read_table(folder / files["item_index"], columns=["known"])["known"].to_numpy(bool)
    expected = {
        "n_users": len(users),
        "n_items": len(items),
        "users_known": int(users.sum()),
        "items_known": int(items.sum()),
    }
    row["index_sizes_match"] = all(
        int(info[key]) == value for key, value in expected.items() if key in info
    )
    n_users, n_items = len(users), len(items)
    if kind == "factors":
        uf = load_array(folder / files["user_factors"], mmap=True)
        itf = load_array(folder / files["item_factors"], mmap=True)
        row["arrays_match"] = (
            uf.ndim == itf.ndim == 2
            and uf.shape[0] == n_users
            and itf.shape[0] == n_items
            and uf.shape[1] == itf.shape[1]
        )
    elif kind == "ease":
        weights = load_array(folder / files["ease_weights"], mmap=True)
        active = load_array(folder / files["ease_items"], mmap=True)
        row["arrays_match"] = bool(
            weights.ndim == 2
            and weights.shape == (len(active), len(active))
            and (len(active) == 0 or (int(active.min()) >= 0 and int(active.max()) < n_items))
        )
    else:
        with np.load(folder / files["knn_similarity"], allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
        row["arrays_match"] = shape == (n_items, n_items)
    return row


def _frame_cf_model(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return pd.DataFrame([cf_model_facts((ctx.run_dir / relpath).parent)])


def _frame_csv(check_frame: Callable[[pd.DataFrame], pd.DataFrame]):
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        return check_frame(pd.read_csv(ctx.run_dir / relpath))

    return build


def validation_metrics_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``tuning/validation_metrics.csv`` plus ``model_unique`` (each model has one row)."""
    return table.assign(model_unique=~table["model"].astype(str).duplicated(keep=False).to_numpy())


def trials_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``tuning/trials.csv`` plus ``key_unique`` (each (study, trial) occurs once) and
    ``value_matches_state`` (a value exactly on the completed trials).

    >>> t = pd.DataFrame({"study": ["a", "a", "a"], "trial": [0, 1, 1],
    ...                   "state": ["complete", "waiting", "complete"], "value": [0.1, None, None]})
    >>> trials_check_frame(t)[["key_unique", "value_matches_state"]].to_dict("list")
    {'key_unique': [True, False, False], 'value_matches_state': [True, True, False]}
    """
    key = table["study"].astype(str) + "|" + table["trial"].astype(str)
    complete = (table["state"].astype(str) == "complete").to_numpy()
    has_value = pd.to_numeric(table["value"], errors="coerce").notna().to_numpy()
    return table.assign(
        key_unique=~key.duplicated(keep=False).to_numpy(), value_matches_state=complete == has_value
    )


#: Per-user metric columns of eval/per_user.parquet: ``<model>_<metric>@<k>``.
_PER_USER_METRIC = re.compile(r"^\w+_(recall|map|ndcg|precision|mrr|hit_rate)@\d+$")


def per_user_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``eval/per_user.parquet`` without its list column, plus ``metrics_in_range`` (every
    ``<model>_<metric>@<k>`` value of the row is finite and in [0, 1]) and ``n_metric_columns``."""
    columns = [c for c in table.columns if _PER_USER_METRIC.match(str(c))]
    keep = [c for c in table.columns if table[c].dtype != object or c in ("cohort",)]
    keep = [c for c in keep if not str(c).endswith("_movie_ids")]
    values = table[columns].to_numpy(np.float64) if columns else np.zeros((len(table), 0))
    in_range = (np.isfinite(values) & (values >= 0.0) & (values <= 1.0)).all(axis=1)
    return table[keep].assign(metrics_in_range=in_range, n_metric_columns=len(columns))


def paired_tests_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``eval/paired_tests.parquet`` plus ``interval_ordered`` (ci_low <= ci_high) and
    ``key_unique`` (each (baseline, cohort, metric, k) once)."""
    key = (
        table["baseline"].astype(str)
        + "|"
        + table["cohort"].astype(str)
        + "|"
        + table["metric"].astype(str)
        + "|"
        + table["k"].astype(str)
    )
    ordered = table["ci_low"].astype(float) <= table["ci_high"].astype(float)
    return table.assign(
        interval_ordered=ordered.to_numpy(bool), key_unique=~key.duplicated(keep=False).to_numpy()
    )


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
    SuiteCheck(
        "eval/paired_tests.parquet", "paired_tests", _frame_with_fn(paired_tests_check_frame)
    ),
    SuiteCheck(
        "eval/per_user.parquet", "per_user", _frame_with_fn(per_user_check_frame), sample=True
    ),
    SuiteCheck("tuning/tuning_results.csv", "tuning_results", _frame_tuning),
    SuiteCheck(
        "tuning/validation_metrics.csv",
        "validation_metrics",
        _frame_csv(validation_metrics_check_frame),
    ),
    SuiteCheck("tuning/trials.csv", "trials", _frame_csv(trials_check_frame)),
    SuiteCheck("models/content_embeddings.npy", "embeddings", _frame_embeddings),
    SuiteCheck("models/cf/*/cf_meta.json", "cf_model", _frame_cf_model),
    SuiteCheck("models/cf/*/user_index.parquet", "cf_index", _frame_cf_index, sample=True),
    SuiteCheck("models/cf/*/item_index.parquet", "cf_index", _frame_cf_index, sample=True),
    SuiteCheck("models/cf/*/user_factors.npy", "factors", _frame_cf_factors),
    SuiteCheck("models/cf/*/item_factors.npy", "factors", _frame_cf_factors),
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


def _check_manifest_table(manifest: Mapping[str, Any]) -> None:
    from tasks.validation import require_valid

    require_valid(
        manifest_table(manifest),
        "artifact_manifest",
        source=MANIFEST,
        parameters={"kinds": list(KINDS), "run_ids": [manifest["run_id"]]},
    )


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
        "without pickle, finite), `text_facts` (TOML parses, the study journal holds one JSON object "
        "per line), `html_facts`, `file_facts`, `symlink_facts` (links resolve inside the run; never "
        "followed). Files with their own suite (canonical tables and split outputs, candidates, test "
        "metrics, paired tests, per-user metrics, tuning results, validation metrics, trials, "
        "embeddings, neighbours, CF model folders, index tables and factors, manifests, "
        "signoff.json) are validated by it too, with derived check frames. "
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
    summarise_manifest(manifest)
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
