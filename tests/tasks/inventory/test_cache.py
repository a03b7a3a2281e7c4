"""The validation cache: keyed on everything that decides a check; a hit records the same check;
a damaged entry is recomputed; only passing checks are stored."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from tasks.inventory import (
    CACHE_DIR,
    SUITE_CHECKS,
    CheckContext,
    ValidationCache,
    cache_dir_for,
    checks_for,
    validate_entries,
)
from tasks.inventory._run import DocsRecorder
from tasks.manifest import Entry, scan_run_dir
from tasks.validation import suite_parameters
from tests.tasks.inventory.runs import tiny_run


def _entry(path: str, sha: str, kind: str = "table") -> Entry:
    return Entry(path=path, bytes=1, sha256=sha, kind=kind, stage="split")


@pytest.fixture
def suites(tmp_path, monkeypatch) -> Path:
    """A private copy of expectations/ that a test may edit (every reader looks it up at call time)."""
    import tasks.validation

    folder = tmp_path / "expectations"
    shutil.copytree(tasks.validation.EXPECTATIONS_DIR, folder)
    monkeypatch.setattr(tasks.validation, "EXPECTATIONS_DIR", folder)
    return folder


def _edit_suite(folder: Path, name: str) -> None:
    data = json.loads((folder / f"{name}.json").read_text())
    data.setdefault("meta", {})["edited_by_test"] = True
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_the_key_changes_with_the_file_references_suite_parameters_sampling_and_code(
    tmp_path, suites
):
    run_dir = tmp_path / "ci" / "20260101T000000Z-abc123"
    assert cache_dir_for(run_dir) == (tmp_path / "ci" / CACHE_DIR).resolve()
    shas = {"data/test.parquet": "a", "data/movies.parquet": "m", "data/train.parquet": "t"}
    ctx = CheckContext(run_dir, seed=7, sha256s=dict(shas))
    entry = _entry("data/test.parquet", "a")
    (check,) = checks_for(entry.path, "table", [], {"test"})
    params = suite_parameters("test", {})
    cache = ValidationCache(tmp_path / "cache", code="code-1")

    def key(cache=cache, check=check, entry=entry, ctx=ctx, params=params, group=None) -> str:
        return cache.key(cache.suite_inputs(check, entry, ctx, params, group))

    base = key()
    assert key() == base  # deterministic
    assert key(entry=_entry("data/test.parquet", "b")) != base  # the file
    assert key(entry=_entry("data/other.parquet", "a")) != base  # its path
    changed_ref = CheckContext(run_dir, seed=7, sha256s={**shas, "data/train.parquet": "t2"})
    assert key(ctx=changed_ref) != base  # a reference table
    assert key(params={**params, "rating_min": 1.0}) != base  # a parameter
    assert key(ctx=CheckContext(run_dir, seed=8, sha256s=dict(shas))) != base  # sampling seed
    rows = CheckContext(run_dir, sample_rows=10, seed=7, sha256s=dict(shas))
    assert key(ctx=rows) != base  # sampling rows
    assert key(group=[("data/test.parquet", "a"), ("data/x.parquet", "x")]) != base
    assert key(cache=ValidationCache(tmp_path / "cache", code="code-2")) != base  # the code
    _edit_suite(suites, "test")
    assert key(cache=ValidationCache(tmp_path / "cache", code="code-1")) != base  # the suite file

    # a check frame's other files (SuiteCheck.reads): the factors' index table
    factors = next(c for c in SUITE_CHECKS if c.pattern == "models/cf/*/item_factors.npy")
    arr = _entry("models/cf/als/item_factors.npy", "f", kind="array")
    index = {"models/cf/als/item_index.parquet": "i1"}
    one = cache.suite_inputs(factors, arr, CheckContext(run_dir, sha256s=dict(index)), {})
    two = cache.suite_inputs(
        factors, arr, CheckContext(run_dir, sha256s={"models/cf/als/item_index.parquet": "i2"}), {}
    )
    assert one["reads"] == index and cache.key(one) != cache.key(two)

    # facts: file and path; markdown / HTML / links also on their facts row
    js = cache.key(cache.facts_inputs("json_facts", _entry("eval/a.json", "j", "json"), None))
    assert js != cache.key(
        cache.facts_inputs("json_facts", _entry("eval/a.json", "k", "json"), None)
    )
    md = _entry("reports/r.md", "r", "markdown")
    with pytest.raises(ValueError, match="facts row"):
        cache.facts_inputs("markdown_facts", md, None)
    ok = cache.facts_inputs("markdown_facts", md, {"path": md.path, "links_resolve": True})
    broken = cache.facts_inputs("markdown_facts", md, {"path": md.path, "links_resolve": False})
    assert cache.key(ok) != cache.key(broken)


def _validate(run_dir: Path, cache_dir: Path, recorder=None) -> tuple[list[Entry], ValidationCache]:
    cache = ValidationCache(cache_dir)
    entries = scan_run_dir(run_dir)
    validate_entries(run_dir, entries, cache=cache, recorder=recorder)
    return entries, cache


def _checks(entries: list[Entry]) -> dict[str, list[dict]]:
    return {e.path: copy.deepcopy(e.checks) for e in entries}


def test_a_hit_records_the_same_check_and_a_changed_suite_re_validates(tmp_path, suites):
    run_dir = tiny_run(tmp_path)
    cache_dir = tmp_path / "cache"
    first, cache = _validate(run_dir, cache_dir)
    assert cache.stats["stored"] == 3 and cache.stats["hits"] == 0
    assert all("cached" not in c for checks in _checks(first).values() for c in checks)

    again, cache = _validate(run_dir, cache_dir)
    assert cache.stats["hits"] == 3 and cache.stats["misses"] == 0
    expected = {p: [{**c, "cached": True} for c in checks] for p, checks in _checks(first).items()}
    assert _checks(again) == expected

    _edit_suite(suites, "json_facts")  # the suite of eval/gates.json only
    edited, cache = _validate(run_dir, cache_dir)
    cached = {e.path: e.checks[0].get("cached", False) for e in edited}
    assert cached == {
        "eval/gates.json": False,
        "figures/chart.png": True,
        "reports/report.md": True,
    }
    assert edited[0].checks[0]["success"]


def test_only_passing_checks_are_stored(tmp_path):
    run_dir = tiny_run(tmp_path)
    (run_dir / "eval/gates.json").write_text('{"gates": []}')  # lacks all_passed: fails
    entries, cache = _validate(run_dir, tmp_path / "cache")
    assert [e.path for e in entries if not e.passed] == ["eval/gates.json"]
    assert cache.stats["stored"] == 2
    entries, cache = _validate(run_dir, tmp_path / "cache")
    assert cache.stats == {**cache.stats, "hits": 2, "misses": 1, "damaged": 0}
    assert not entries[0].passed and "cached" not in entries[0].checks[0]


def _stored_entry(cache_dir: Path, relpath: str) -> Path:
    for path in (cache_dir / "checks").glob("*/*.json"):
        if json.loads(path.read_text())["inputs"]["path"] == relpath:
            return path
    raise AssertionError(f"no cache entry for {relpath}")


def test_a_damaged_entry_is_recomputed_never_trusted(tmp_path):
    run_dir = tiny_run(tmp_path)
    cache_dir = tmp_path / "cache"
    first, _ = _validate(run_dir, cache_dir, DocsRecorder())
    truth = _checks(first)
    # 1) a truncated entry; 2) an entry edited without its digest (a "passing" claim kept, rows
    # changed); 3) a flipped byte in the GX result behind the PNG's Data Docs page
    md, gates, png_entry = (
        _stored_entry(cache_dir, p)
        for p in ("reports/report.md", "eval/gates.json", "figures/chart.png")
    )
    md.write_bytes(md.read_bytes()[:50])
    data = json.loads(gates.read_text())
    data["check"]["rows"] = 99
    gates.write_text(json.dumps(data))
    png = json.loads(png_entry.read_text())
    result_id = png["results"][0]  # each kind has one file here: this result is the PNG's alone
    blob = cache_dir / "results" / result_id[:2] / f"{result_id}.json"
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))

    again, cache = _validate(run_dir, cache_dir, DocsRecorder())
    assert cache.stats["damaged"] == 3 and cache.stats["hits"] == 0
    for path, checks in _checks(again).items():  # recomputed, not read: same verdict, no flag
        assert [c["success"] for c in checks] == [c["success"] for c in truth[path]], path
        assert all("cached" not in c for c in checks) and checks[0]["rows"] == 1, path
    # the recomputed checks overwrote the damaged entries
    third, cache = _validate(run_dir, cache_dir, DocsRecorder())
    assert cache.stats["hits"] == 3 and cache.stats["damaged"] == 0
