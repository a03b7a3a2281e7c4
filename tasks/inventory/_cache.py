"""The validation cache: a check's result is reused when nothing that decides it has changed.

Place in the pipeline: the ``inventory`` stage (:func:`tasks.inventory.inventory_core`) validates
every file of a run; a fully cached re-run holds byte-identical hard links of an earlier run's
files, so without this cache it re-ran every suite on the same bytes (12 s on ``ci``, 76 s at
32M). ``movierec validate RUN_DIR`` never uses it: that is the tamper check, it re-runs every suite.

Where: beside the runs of a profile, ``<artifacts>/<profile>/.validation-cache/`` (a dot folder:
nothing that lists runs takes it for one):

- ``checks/<kk>/<key>.json``: one check as the manifest records it, the inputs it was keyed on
  (to answer "why did this file re-validate?"), the ids of its GX validation results and a sha256
  ``digest`` of all that;
- ``results/<ii>/<id>.json``: one GX validation result, serialised by GX's own validation results
  store (``ValidationResultsStore.serialize``), with its ``ValidationResultIdentifier`` as a tuple;
  ``id`` is the sha256 of the file's bytes, so a result shared by many checks (a facts suite
  validates every file of a kind in one GX run) is stored once. The Data Docs of a run whose checks
  came from here are rebuilt from these results (:mod:`tasks.inventory._docs`).

The key is the sha256 of a canonical JSON of everything that decides a check:

- the format of this cache, the GX version, and the code: the source of this package and of
  every project module it imports (:func:`tasks.stage.source_hash`; the facts functions and the
  check frames), plus the module of a suite's own ``meta.check_frame``;
- the suite's name and the sha256 of its file ``expectations/<suite>.json`` (a changed suite
  re-validates);
- the file's relative path and sha256;
- facts checks: for markdown, HTML and symbolic links the facts row itself (whether their links
  resolve depends on other files of the run); the facts suites check each row on its own, so a
  row's result does not depend on the other files validated in the same GX run;
- suite checks: the rule (pattern), every reference table (path, columns, sha256), every other file
  the check frame reads (``SuiteCheck.reads``), the suite parameters as resolved, the sampling
  settings (rows, seed) and, for a grouped check (the candidate files), the path and sha256 of every
  file of the group.

Entries are written atomically (a temporary name, then a rename: :func:`tasks.io.atomic_path`).
Only passing checks are stored: a failure is always examined again (it can come from a transient
read error, and failures are rare). An entry that does not parse, whose key or digest does not
match, or one of whose results is missing or has another sha256 is *damaged*: it is counted in
the stage's facts, never trusted, and the recomputed check overwrites it. The cache is never pruned
by the pipeline; deleting the folder is always safe (the next run re-validates and refills it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from tasks.inventory._checks import SuiteCheck
from tasks.inventory._facts import LINKED_KINDS
from tasks.inventory._frames import CheckContext
from tasks.io import atomic_path
from tasks.manifest import Entry

#: The cache folder's name inside ``<artifacts>/<profile>/``.
CACHE_DIR = ".validation-cache"
#: Bumped when the layout or the meaning of an entry changes (old entries then simply miss).
FORMAT = 1


class StoredResult(NamedTuple):
    """One GX validation result: its ``ValidationResultIdentifier.to_tuple()``, the result as GX's
    results store serialises it, and its rendered Data Docs page when one is stored."""

    key: tuple[str, ...]
    result: str
    page: str | None = None


#: An environment variable naming one cache folder for every artifacts root (e.g. a test session's).
CACHE_ENV = "MOVIEREC_VALIDATION_CACHE"


def cache_dir_for(run_dir: Path | str) -> Path:
    """The cache folder of a run directory ``<artifacts>/<profile>/<run-id>``: the folder named by
    ``$MOVIEREC_VALIDATION_CACHE`` when set (keys are content hashes, so runs of different roots
    can share it), else its sibling ``<artifacts>/<profile>/.validation-cache``."""
    import os

    shared = os.environ.get(CACHE_ENV, "").strip()
    return Path(shared) if shared else Path(run_dir).resolve().parent / CACHE_DIR


def code_fingerprint(extra_modules: Sequence[str] = ()) -> str:
    """sha256 over the source of this package, every project module it imports, and
    ``extra_modules`` (the modules of suites' own ``meta.check_frame`` functions)."""
    from tasks.stage import source_hash

    return source_hash(["tasks.inventory", *extra_modules])


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class CachedCheck:
    """A check found in the cache: the manifest's check dict (``"cached": True`` added) and the GX
    validation results behind its Data Docs pages (empty when they were not asked for)."""

    check: dict[str, Any]
    results: list[StoredResult] = field(default_factory=list)


class ValidationCache:
    """Check results by key in ``folder`` (see the module docstring for the key and the layout).

    ``stats`` counts ``hits``, ``misses``, ``damaged`` entries, ``stored`` entries and
    ``write_errors`` (a folder that cannot be written never fails the stage: the check was made).
    """

    def __init__(self, folder: Path | str, *, code: str | None = None) -> None:
        self.folder = Path(folder)
        self.code = code if code is not None else code_fingerprint()
        self.gx_version = metadata.version("great_expectations")
        self.stats = {"hits": 0, "misses": 0, "damaged": 0, "stored": 0, "write_errors": 0}
        self._suite_sha: dict[str, str] = {}
        self._blobs_ok: set[str] = set()
        self._ids_by_page: dict[str, str] = {}

    # -- keys ----------------------------------------------------------------------------------

    def key(self, inputs: Mapping[str, Any]) -> str:
        """sha256 of the inputs plus the cache format, the GX version and the code fingerprint."""
        payload = {"format": FORMAT, "gx": self.gx_version, "code": self.code, "inputs": inputs}
        return _sha256(_canonical(payload))

    def suite_sha256(self, suite: str) -> str:
        """sha256 of ``expectations/<suite>.json`` (read once per cache object)."""
        if suite not in self._suite_sha:
            from tasks.validation import EXPECTATIONS_DIR

            self._suite_sha[suite] = _sha256((EXPECTATIONS_DIR / f"{suite}.json").read_bytes())
        return self._suite_sha[suite]

    def facts_inputs(
        self, suite: str, entry: Entry, row: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """What decides a facts check: suite (and its file), path, kind, sha256, and for
        :data:`LINKED_KINDS` the facts row (``row`` must then be given)."""
        inputs: dict[str, Any] = {
            "check": "facts",
            "suite": suite,
            "suite_sha256": self.suite_sha256(suite),
            "path": entry.path,
            "kind": entry.kind,
            "sha256": entry.sha256,
        }
        if entry.kind in LINKED_KINDS:
            if row is None:
                raise ValueError(f"{entry.path}: a {entry.kind} file is keyed on its facts row")
            inputs["facts"] = dict(row)
        return inputs

    def suite_inputs(
        self,
        check: SuiteCheck,
        entry: Entry,
        ctx: CheckContext,
        parameters: Mapping[str, Any],
        group: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """What decides a suite check (see the module docstring); ``parameters`` as resolved by
        :func:`tasks.validation.suite_parameters`; ``group``: (path, sha256) of the group's files."""
        return {
            "check": "suite",
            "suite": check.suite,
            "suite_sha256": self.suite_sha256(check.suite),
            "rule": check.pattern,
            "check_frame": check.check_frame,
            "path": entry.path,
            "sha256": entry.sha256,
            "references": {
                name: {"path": rel, "columns": cols, "sha256": ctx.sha256(rel)}
                for name, (rel, cols) in sorted(check.references.items())
            },
            "reads": ctx.sha256_of(check.reads(entry.path)),
            "parameters": dict(parameters),
            "sampling": {"rows": ctx.sample_rows, "seed": ctx.seed, "sample": check.sample},
            "group": [list(member) for member in group] if group is not None else None,
        }

    # -- entries -------------------------------------------------------------------------------

    def _check_path(self, key: str) -> Path:
        return self.folder / "checks" / key[:2] / f"{key}.json"

    def _result_path(self, result_id: str) -> Path:
        return self.folder / "results" / result_id[:2] / f"{result_id}.json"

    def _page_path(self, result_id: str) -> Path:
        return self.folder / "results" / result_id[:2] / f"{result_id}.page.json"

    def get(self, key: str, *, with_results: bool) -> CachedCheck | None:
        """The check stored under ``key``, or None (a miss; a damaged entry counts as one too).

        ``with_results``: the caller builds Data Docs and needs the GX results of the check's pages;
        an entry stored without them is then a miss (and is overwritten with them). Without,
        the check's ``docs`` is emptied (a run without Data Docs links no page).
        """
        path = self._check_path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            self.stats["misses"] += 1
            return None
        except OSError:
            return self._damaged()
        try:
            found = self._parse(key, raw, with_results)
        except (ValueError, KeyError, TypeError, AttributeError, OSError):
            return self._damaged()
        if found is None:
            self.stats["misses"] += 1
            return None
        self.stats["hits"] += 1
        return found

    def _damaged(self) -> None:
        self.stats["damaged"] += 1
        self.stats["misses"] += 1
        return None

    def _parse(self, key: str, raw: bytes, with_results: bool) -> CachedCheck | None:
        entry = json.loads(raw)
        digest = entry.pop("digest")
        if digest != _sha256(_canonical(entry)):
            raise ValueError("digest does not match")
        if entry["format"] != FORMAT or entry["key"] != key:
            raise ValueError("another format or key")
        check = dict(entry["check"])
        if check["success"] is not True or not isinstance(check["suite"], str):
            raise ValueError("only passing checks are stored")
        pages = list(check.get("docs") or [])
        check["cached"] = True
        if not with_results:
            return CachedCheck({**check, "docs": []})
        if not entry["results"]:
            return None  # stored by a run without Data Docs: validate again, with them
        results = [self._read_result(result_id) for result_id in entry["results"]]
        if sorted(page_of(r.key) for r in results) != sorted(pages):
            raise ValueError("the stored results are not the check's pages")
        return CachedCheck(check, results)

    def _read_result(self, result_id: str) -> StoredResult:
        raw = self._result_path(result_id).read_bytes()
        if _sha256(raw) != result_id:
            raise ValueError(f"result {result_id} is damaged")
        blob = json.loads(raw)
        key, text = tuple(str(part) for part in blob["key"]), blob["result"]
        if not isinstance(text, str):
            raise TypeError("a stored result is GX's serialised JSON text")
        self._ids_by_page[page_of(key)] = result_id
        return StoredResult(key, text, self._read_page(result_id))

    def _read_page(self, result_id: str) -> str | None:
        """The stored page of a result; None when absent or damaged (it is then rendered again)."""
        try:
            blob = json.loads(self._page_path(result_id).read_bytes())
            html = blob["html"]
            if blob["result"] != result_id or _sha256(html.encode()) != blob["sha256"]:
                return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return html

    def put(
        self,
        key: str,
        inputs: Mapping[str, Any],
        check: Mapping[str, Any],
        results: Sequence[StoredResult] = (),
    ) -> None:
        """Store a passing ``check`` (others are ignored) with the GX results of its pages."""
        if check.get("success") is not True:
            return
        try:
            ids = [self._write_result(r.key, r.result) for r in results]
            entry: dict[str, Any] = {
                "format": FORMAT,
                "key": key,
                "inputs": dict(inputs),
                "check": {k: v for k, v in check.items() if k != "cached"},
                "results": ids,
            }
            entry["digest"] = _sha256(_canonical(entry))
            with atomic_path(self._check_path(key)) as tmp:
                tmp.write_bytes(_canonical(entry))
        except OSError:
            self.stats["write_errors"] += 1
            return
        self.stats["stored"] += 1

    def _write_result(self, result_key: Sequence[str], text: str) -> str:
        raw = _canonical({"key": list(result_key), "result": text})
        result_id = _sha256(raw)
        self._ids_by_page[page_of(result_key)] = result_id
        if result_id in self._blobs_ok:
            return result_id
        path = self._result_path(result_id)
        try:
            intact = _sha256(path.read_bytes()) == result_id
        except OSError:
            intact = False
        if not intact:
            with atomic_path(path) as tmp:
                tmp.write_bytes(raw)
        self._blobs_ok.add(result_id)
        return result_id

    def store_pages(self, site: Path | str, pages: Sequence[str]) -> int:
        """Store the rendered Data Docs ``pages`` (paths relative to the ``site`` folder) of the
        results this cache wrote or read, so a later run copies them instead of rendering them.
        Returns how many were written."""
        written = 0
        for page in pages:
            result_id = self._ids_by_page.get(page)
            if result_id is None or self._read_page(result_id) is not None:
                continue
            try:
                html = (Path(site) / page).read_text(encoding="utf-8")
                blob = {"result": result_id, "sha256": _sha256(html.encode()), "html": html}
                with atomic_path(self._page_path(result_id)) as tmp:
                    tmp.write_bytes(_canonical(blob))
            except OSError:
                self.stats["write_errors"] += 1
                continue
            written += 1
        return written


def page_of(result_key: Sequence[str]) -> str:
    """The Data Docs page of a validation result, relative to the site (GX's layout)."""
    return "validations/" + "/".join(result_key) + ".html"
