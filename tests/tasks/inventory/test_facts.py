"""Facts per file kind: broken files fail their facts suite, named; symbolic links are never
followed."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tasks.inventory import MANIFEST, inventory_core, validate_run_dir
from tasks.inventory._facts import FACTS_SUITE, LINKED_KINDS, facts_row
from tasks.manifest import KINDS, scan_run_dir
from tests.tasks.inventory.runs import tiny_run


def test_every_kind_has_a_facts_suite_and_linked_kinds_are_kinds():
    assert set(FACTS_SUITE) == set(KINDS)
    assert LINKED_KINDS <= set(KINDS)


def test_a_markdown_row_says_whether_its_links_resolve(tmp_path):
    """Why markdown is keyed on its facts row: the same bytes give another row when a target goes."""
    run_dir = tiny_run(tmp_path)
    entry = next(e for e in scan_run_dir(run_dir) if e.path == "reports/report.md")
    assert facts_row(run_dir, entry)["links_resolve"] is True
    (run_dir / "figures/chart.png").unlink()
    row = facts_row(run_dir, entry)
    assert row["links_resolve"] is False and row["broken_links"] == "../figures/chart.png"


def test_symlink_outside_the_run_is_reported_and_not_followed(tmp_path):
    run_dir = tiny_run(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the run\n")
    os.symlink(outside / "secret.txt", run_dir / "reports/secret.txt")
    os.symlink(outside, run_dir / "linked_dir")
    os.symlink("../figures/chart.png", run_dir / "reports/chart_link.png")  # inside: fine

    facts = inventory_core(str(run_dir), None, build_docs=False)["facts"]
    manifest = json.loads((run_dir / MANIFEST).read_text())
    files = {f["path"]: f for f in manifest["files"]}
    assert "linked_dir/secret.txt" not in files  # the directory link was not walked into
    for rel in ("reports/secret.txt", "linked_dir"):
        entry = files[rel]
        assert entry["kind"] == "symlink" and entry["status"] == "failed"
        assert entry["validation"].startswith("failed: points outside the run")
        assert str(outside) in entry["validation"]
        # the "hash" is that of the link text, never of the target's bytes
        assert entry["sha256"] == hashlib.sha256(os.readlink(run_dir / rel).encode()).hexdigest()
    assert files["reports/chart_link.png"]["status"] == "passed"
    assert sorted(facts["symlinks_outside"]) == ["linked_dir", "reports/secret.txt"]
    assert facts["validation_rate"] == pytest.approx(4 / 6)

    report = validate_run_dir(run_dir)
    assert not report["ok"] and report["changed"] == [] and report["missing"] == []
    assert sorted(s["path"] for s in report["symlinks_outside"]) == [
        "linked_dir",
        "reports/secret.txt",
    ]


def test_broken_artifacts_fail_their_own_validation(tmp_path):
    run_dir = tiny_run(tmp_path)
    png = run_dir / "figures/chart.png"
    (run_dir / "figures/cut.png").write_bytes(png.read_bytes()[:40])  # truncated image
    (run_dir / "reports/broken.md").write_text("# Broken\n\nsee [missing](../eval/nope.json)\n")
    (run_dir / "eval/bad.json").write_text('{"a": NaN}')
    (run_dir / "eval/gates.json").write_text(json.dumps({"gates": []}))  # lacks all_passed

    facts = inventory_core(str(run_dir), None, build_docs=False)["facts"]
    assert sorted(facts["failed_validations"]) == [
        "eval/bad.json",
        "eval/gates.json",
        "figures/cut.png",
        "reports/broken.md",
    ]
    assert facts["validation_rate"] == pytest.approx(2 / 6)
    files = {f["path"]: f for f in json.loads((run_dir / MANIFEST).read_text())["files"]}
    assert "nope.json" in files["reports/broken.md"]["validation"]
    assert "required key" in files["eval/gates.json"]["validation"]
    assert files["figures/chart.png"]["status"] == "passed"
