"""Facts per file kind: the one-row tables the inventory's facts suites validate.

Every file of a run goes through a *derived facts table* of its kind (:data:`FACTS_SUITE`), one
row per file, computed here and validated by a real GX suite (``expectations/<kind>_facts.json``):
tables parse and every row group decodes; CSV files parse with unique column names; JSON parses,
has its required keys (:data:`REQUIRED_JSON_KEYS`, by path pattern) and no NaN; markdown is UTF-8
with a heading and links that resolve inside the run; PNGs decode with a non-zero size; arrays load
without pickle and are finite; TOML parses and Optuna's ``tuning/study.journal`` has one JSON
object per line; HTML links resolve; other files read and are not empty; a symbolic link resolves
inside the run to an existing file (never followed to read it).

A facts row is a function of the file's bytes and path, except for the kinds in
:data:`LINKED_KINDS` (markdown, HTML, symbolic links), whose row also says whether the files they
point at exist: the validation cache (:mod:`tasks.inventory._cache`) keys those on the row itself.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd

from tasks.manifest import Entry, inside

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
#: Kinds whose facts depend on other files of the run (links that must resolve), not only on the
#: file's own bytes.
LINKED_KINDS = frozenset({"markdown", "html", "symlink"})

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


#: The facts function of each kind but ``symlink`` (:func:`symlink_facts` takes the entry).
FACTS: dict[str, Callable[[Path, str], dict[str, Any]]] = {
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


def facts_row(run_dir: Path, entry: Entry) -> dict[str, Any]:
    """The facts row of one file (or symbolic link) of the run."""
    if entry.kind == "symlink":
        return symlink_facts(run_dir, entry)
    return FACTS[entry.kind](run_dir, entry.path)
