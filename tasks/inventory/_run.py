"""Running the suites of the inventory: every file's facts suite and its own suites, GX results
recorded for Data Docs, results reused from the validation cache when one is given.

:func:`validate_entries` fills ``entry.checks`` (one dict per suite run, as the manifest records
it): one GX run per facts suite over the facts rows of every file of that kind (when it fails, each
row again alone, so the failure names the right file), then each file's own suites
(:func:`tasks.inventory._checks.checks_for`), the candidate files in one grouped run. With a
:class:`~tasks.inventory._cache.ValidationCache`, a check whose key is found is not run: the
stored check is recorded with ``"cached": true`` and, when Data Docs are built, its stored GX
results are put back into the GX store (:meth:`DocsRecorder.restore`), so every page the manifest
links is built again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.inventory._cache import CachedCheck, StoredResult, ValidationCache, page_of
from tasks.inventory._checks import SuiteCheck, checks_for, declared_checks
from tasks.inventory._facts import FACTS_SUITE, LINKED_KINDS, facts_row
from tasks.inventory._frames import CheckContext
from tasks.manifest import Entry

Progress = Callable[[float, str], None]


class DocsRecorder:
    """Maps each GX validation run to the validation results it stored (for Data Docs pages), and
    puts cached results back into the store under their original identifiers (``pages`` keeps
    their stored pages, which the Data Docs copy instead of rendering them again)."""

    def __init__(self) -> None:
        from tasks.validation import _gx_batch_definition  # the process's shared GX context

        self.context = _gx_batch_definition()[0]
        self.store = self.context.validation_results_store
        self.keys: list[Any] = []
        self.pages: dict[str, str] = {}
        self._by_page: dict[str, Any] = {}
        self._serialised: dict[str, str] = {}  # page -> result JSON (a facts run serves many files)

    def run(self, fn: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
        before = set(self.store.list_keys())
        summary = fn()
        new = [k for k in self.store.list_keys() if k not in before]
        for key in new:
            self._add(key)
        return summary, new

    def _add(self, key: Any) -> None:
        self.keys.append(key)
        self._by_page[self.page(key)] = key

    @staticmethod
    def page(key: Any) -> str:
        return page_of(key.to_tuple())

    def results(self, pages: list[str]) -> list[StoredResult]:
        """The GX validation results behind ``pages``, serialised by GX's results store."""
        out = []
        for page in pages:
            key = self._by_page[page]
            if page not in self._serialised:
                self._serialised[page] = self.store.serialize(self.store.get(key))
            out.append(StoredResult(key.to_tuple(), self._serialised[page]))
        return out

    def restore(self, results: list[StoredResult]) -> None:
        """Put stored results back into the GX store (once each: many checks share a facts run)."""
        from great_expectations.data_context.types.resource_identifiers import (
            ValidationResultIdentifier,
        )

        for stored in results:
            page = page_of(stored.key)
            if page in self._by_page:
                continue
            key = ValidationResultIdentifier.from_tuple(stored.key)
            self.store.set(key, self.store.deserialize(stored.result))
            self._add(key)
            if stored.page is not None:
                self.pages[page] = stored.page

    def to_render(self) -> list[Any]:
        """The recorded results whose page must be rendered (no stored page)."""
        return [k for k in self.keys if self.page(k) not in self.pages]


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


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items() if k != "path"
    }


# ---------------------------------------------------------------------------------------------
# the cache around a check


def _lookup(
    cache: ValidationCache | None, key: str | None, recorder: DocsRecorder | None
) -> CachedCheck | None:
    if cache is None or key is None:
        return None
    return cache.get(key, with_results=recorder is not None)


def _reuse(found: CachedCheck, recorder: DocsRecorder | None) -> dict[str, Any]:
    if recorder is not None:
        recorder.restore(found.results)
    return found.check


def _remember(
    cache: ValidationCache | None,
    key: str | None,
    inputs: Mapping[str, Any] | None,
    check: dict[str, Any],
    recorder: DocsRecorder | None,
) -> None:
    if cache is None or key is None or inputs is None or not check["success"]:
        return
    results = recorder.results(check["docs"]) if recorder is not None else []
    cache.put(key, inputs, check, results)


def _suite_key(
    cache: ValidationCache | None,
    check: SuiteCheck,
    entry: Entry,
    ctx: CheckContext,
    group: list[tuple[str, str]] | None = None,
) -> tuple[str | None, dict[str, Any] | None]:
    """(key, inputs) of a suite check, or (None, None) when its parameters cannot be resolved
    (then the check runs and reports that itself) or there is no cache."""
    if cache is None:
        return None, None
    from tasks.validation import suite_parameters

    try:
        params = dict(ctx.table_parameters.get(check.parameters, {})) if check.parameters else {}
        inputs = cache.suite_inputs(check, entry, ctx, suite_parameters(check.suite, params), group)
    except (ValueError, OSError):
        return None, None
    return cache.key(inputs), inputs


# ---------------------------------------------------------------------------------------------
# facts suites


def _run_facts(
    suite: str,
    rows: list[dict[str, Any]],
    recorder: DocsRecorder | None,
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
        return summary, [DocsRecorder.page(k) for k in keys]

    frame = pd.DataFrame(rows)
    summary, pages = run(frame, f"{suite} ({len(rows)} files)")
    if summary["success"]:
        return [_summary_check(summary, pages, {"rows": 1, "facts": _plain(row)}) for row in rows]
    out = []
    for i, row in enumerate(rows):  # rare: attribute the failure to each file
        one, one_pages = run(frame.iloc[[i]].reset_index(drop=True), row["path"])
        out.append(_summary_check(one, one_pages or pages, {"facts": _plain(row)}))
    return out


def _validate_facts(
    run_dir: Path,
    suite: str,
    group: list[Entry],
    recorder: DocsRecorder | None,
    cache: ValidationCache | None,
) -> None:
    """The facts suite of every entry of ``group`` (one kind): cached checks reused, the others in
    one GX run. A file whose facts depend only on its bytes is not even read on a cache hit."""
    pending: list[tuple[Entry, dict[str, Any], str | None, dict[str, Any] | None]] = []
    for entry in group:
        row = facts_row(run_dir, entry) if cache is None or entry.kind in LINKED_KINDS else None
        key = inputs = None
        if cache is not None:
            inputs = cache.facts_inputs(suite, entry, row)
            key = cache.key(inputs)
            found = _lookup(cache, key, recorder)
            if found is not None:
                entry.checks.append(_reuse(found, recorder))
                continue
        pending.append((entry, row if row is not None else facts_row(run_dir, entry), key, inputs))
    if not pending:
        return
    checks = _run_facts(suite, [row for _, row, _, _ in pending], recorder)
    for (entry, _, key, inputs), check in zip(pending, checks, strict=True):
        entry.checks.append(check)
        _remember(cache, key, inputs, check, recorder)


# ---------------------------------------------------------------------------------------------
# files with their own suite


def _run_suite_check(
    check: SuiteCheck, entry: Entry, ctx: CheckContext, recorder: DocsRecorder | None
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
    return _summary_check(summary, [DocsRecorder.page(k) for k in keys], extra)


def _cached_suite_check(
    check: SuiteCheck,
    entry: Entry,
    ctx: CheckContext,
    recorder: DocsRecorder | None,
    cache: ValidationCache | None,
) -> dict[str, Any]:
    key, inputs = _suite_key(cache, check, entry, ctx)
    found = _lookup(cache, key, recorder)
    if found is not None:
        return _reuse(found, recorder)
    result = _run_suite_check(check, entry, ctx, recorder)
    _remember(cache, key, inputs, result, recorder)
    return result


def _run_group_check(
    pattern: str,
    items: list[tuple[SuiteCheck, Entry]],
    ctx: CheckContext,
    recorder: DocsRecorder | None,
    cache: ValidationCache | None,
) -> None:
    """One GX run over the concatenated frames of many files of one suite (e.g. 20 candidate
    files); when it fails, each file is validated alone so the failure names the right file.
    Cached only as a whole: each file's key holds every file of the group."""
    from tasks.validation import validate_table

    members = sorted((entry.path, entry.sha256) for _, entry in items)
    keyed = [(c, e, *_suite_key(cache, c, e, ctx, members)) for c, e in items]
    found = [_lookup(cache, key, recorder) for _, _, key, _ in keyed]
    if found and all(f is not None for f in found):
        for (_check, entry, _, _), hit in zip(keyed, found, strict=True):
            entry.checks.append(_reuse(hit, recorder))
        return
    frames, ok = [], []
    for check, entry, key, inputs in keyed:
        try:
            frames.append(check.frame(ctx, entry.path))
            ok.append((check, entry, key, inputs))
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
        pages = [DocsRecorder.page(k) for k in keys]
        for (_check, entry, key, inputs), part in zip(ok, frames, strict=True):
            result = _summary_check(summary, pages, {"rows": len(part), "grouped_files": len(ok)})
            entry.checks.append(result)
            _remember(cache, key, inputs, result, recorder)
        return
    for check, entry, key, inputs in ok:
        result = _run_suite_check(check, entry, ctx, recorder)
        entry.checks.append(result)
        _remember(cache, key, inputs, result, recorder)


def validate_entries(
    run_dir: Path | str,
    entries: list[Entry],
    *,
    sample_rows: int = 2_000_000,
    seed: int = 0,
    table_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    recorder: DocsRecorder | None = None,
    progress: Progress | None = None,
    cache: ValidationCache | None = None,
) -> list[Entry]:
    """Run every file's facts suite (grouped by kind) and its own suites; fill ``entry.checks``.

    ``recorder`` collects the GX results for Data Docs; ``cache`` reuses the checks whose key is
    stored and stores the new passing ones (None: every suite runs, as ``movierec validate`` does).
    """
    from tasks.validation import suite_names

    run_dir = Path(run_dir)
    ctx = CheckContext(
        run_dir,
        sample_rows,
        seed,
        dict(table_parameters or {}),
        sha256s={e.path: e.sha256 for e in entries if e.sha256},
    )
    declared = declared_checks()
    suites = set(suite_names())
    for entry in entries:
        entry.checks = []
    by_suite: dict[str, list[Entry]] = {}
    for entry in entries:
        by_suite.setdefault(FACTS_SUITE[entry.kind], []).append(entry)
    total = max(1, len(entries))
    done = 0
    for suite, group in sorted(by_suite.items()):
        _validate_facts(run_dir, suite, group, recorder, cache)
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
                entry.checks.append(_cached_suite_check(check, entry, ctx, recorder, cache))
        if progress and entry.kind in ("table", "array", "csv"):
            progress(0.5 + 0.5 * (i + 1) / total, f"validated {entry.path}")
    for (pattern, _suite), items in groups.items():
        _run_group_check(pattern, items, ctx, recorder, cache)
    return entries
