"""`movierec validate RUN_DIR`: a tampered file is named; the validation cache is never used."""

from __future__ import annotations

import shutil

from tasks.inventory import ValidationCache, inventory_core, validate_run_dir
from tests.tasks.inventory.runs import tiny_run


def test_changing_one_byte_makes_validate_exit_1_naming_the_file(inventoried_run, tmp_path, capsys):
    from flows.cli import main

    run_dir = tmp_path / inventoried_run.name
    shutil.copytree(inventoried_run, run_dir, symlinks=True)
    assert main(["validate", str(run_dir / "data/cohorts.parquet")]) == 0  # one table: still works
    assert main(["validate", str(tmp_path)]) == 2  # a folder without a manifest: bad input
    target = run_dir / "eval/metrics.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte, same size
    target.write_bytes(bytes(data))

    gone = sorted((run_dir / "hybrid/candidates").glob("*.parquet"))[0]
    gone.unlink()
    assert main(["validate", str(run_dir), "--no-seal"]) == 1  # the files only (flows/seal.py: tests/flows/test_handoff.py)
    out = capsys.readouterr().out
    assert "CHANGED  eval/metrics.parquet: sha256" in out
    assert f"MISSING  hybrid/candidates/{gone.name}" in out
    # only the tampered files are named: every other hash and suite still matches
    assert out.count("CHANGED ") == 1 and out.count("MISSING ") == 1 and "ADDED " not in out
    assert {
        line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("FAILED")
    } <= {"eval/metrics.parquet"}
    assert "1 changed, 1 missing" in out
    assert "CHANGED  data/" not in out


def test_validate_re_runs_every_suite_and_never_reads_the_cache(tmp_path, monkeypatch):
    run_dir = tiny_run(tmp_path)
    inventory_core(str(run_dir), None, build_docs=False)
    cache = inventory_core(str(run_dir), None, build_docs=False)["facts"]["validation_cache"]
    assert cache["reused"] == cache["checks"] == 3  # a second inventory reuses every check

    def refuse(*args, **kwargs):
        raise AssertionError("movierec validate must not use the validation cache")

    monkeypatch.setattr(ValidationCache, "get", refuse)
    monkeypatch.setattr(ValidationCache, "put", refuse)
    monkeypatch.setattr(ValidationCache, "__init__", refuse)
    report = validate_run_dir(run_dir)
    assert report["ok"] and report["checked"] == 3 and report["failed"] == []
    (run_dir / "reports/report.md").write_text("no heading, a [link](../nope.png)\n")
    report = validate_run_dir(run_dir)
    assert not report["ok"] and [f["path"] for f in report["failed"]] == ["reports/report.md"]
