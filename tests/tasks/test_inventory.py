"""Artifact inventory: every file listed with its hash and GX result; `movierec validate RUN_DIR`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tasks.inventory import (
    EXCLUDED,
    MANIFEST,
    classify,
    inventory_core,
    producing_stage,
    validate_run_dir,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(run_dir: Path) -> set[str]:
    """Every regular file and symbolic link under run_dir, relative, not following links."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(run_dir):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), run_dir))
    return out


@pytest.fixture(scope="module")
def inventoried_run(ml_pipeline_run, tmp_path_factory) -> Path:
    """A copy of the shared real-data run with the inventory and the handoff run on it (the
    handoff gets realistic edge-case facts: that stage may not exist yet)."""
    from tasks.profile import load_profile
    from tasks.signoff import handoff_core

    src = Path(ml_pipeline_run["run_dir"])
    run_dir = tmp_path_factory.mktemp("inventory") / src.name
    shutil.copytree(src, run_dir, symlinks=True)
    facts = json.loads((run_dir / "logs/run_status.json").read_text())["facts"]
    params = {"ratings": facts["ingest"]["validation"]["ratings"]["parameters"]}
    cwd = os.getcwd()
    os.chdir(run_dir.parent)  # a relative run dir, as `make demo` gives (artifacts/<profile>/<id>)
    try:
        inventory_core(
            run_dir.name, None, profile="ml-latest-small", table_parameters=params, seed=42
        )
    finally:
        os.chdir(cwd)
    assert (run_dir / "inventory/data_docs/index.html").is_file()
    facts["edge_cases"] = {"pass_rate": 0.9, "min_pass_rate": 0.8, "gate_passed": True}
    handoff_core(str(run_dir), load_profile("ml-latest-small"), facts)
    return run_dir


def test_classify_and_producing_stage():
    assert [classify(p) for p in ("a.parquet", "b.npy", "c.md", "d.PNG", "e.toml", "f.otf")] == [
        "table",
        "array",
        "markdown",
        "png",
        "toml",
        "other",
    ]
    assert producing_stage("data/ratings.parquet") == "ingest"
    assert producing_stage("data/test.parquet") == "split"
    assert producing_stage("models/user_factors.npy") == "collaborative"
    assert producing_stage("models/content_embeddings.npy") == "features"
    assert producing_stage("reports/offline_metrics.md") == "evaluation"
    assert producing_stage("signoff/signoff.json") == "handoff"
    assert producing_stage("x/unknown.bin") == "unknown"


def test_every_file_of_a_run_is_listed_with_a_correct_hash(inventoried_run):
    manifest = json.loads((inventoried_run / MANIFEST).read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = _files(inventoried_run) - EXCLUDED
    assert set(listed) == on_disk  # every file, nothing invented
    for rel, entry in listed.items():
        assert entry["sha256"] == _sha256(inventoried_run / rel), rel
        assert entry["bytes"] == (inventoried_run / rel).stat().st_size, rel
        assert entry["run_id"] == inventoried_run.name
        assert entry["checks"], f"{rel} was not validated"
    # the real run validates cleanly; its tables ran their own suites, not only the facts suite
    assert manifest["validation_rate"] == 1.0 and manifest["failed"] == []
    assert {c["suite"] for c in listed["data/ratings.parquet"]["checks"]} == {
        "table_facts",
        "ratings",
    }
    assert {c["suite"] for c in listed["eval/metrics.parquet"]["checks"]} == {
        "table_facts",
        "metrics",
    }
    assert listed["data/ratings.parquet"]["stage"] == "ingest"
    # the handoff appended its own files; Data Docs are built and linked from the inventory page
    for rel in ("reports/final_report.md", "signoff/signoff.json", "signoff/handoff.md"):
        assert listed[rel]["stage"] == "handoff" and listed[rel]["status"] == "passed"
    assert (inventoried_run / "inventory/data_docs/index.html").is_file()
    page = (inventoried_run / "inventory/artifact_inventory.md").read_text()
    assert "(data_docs/index.html)" in page and "validation rate **100.00%**" in page


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
    assert main(["validate", str(run_dir)]) == 1
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


def _tiny_run(root: Path) -> Path:
    """A small run directory with one file of several kinds."""
    from PIL import Image

    run_dir = root / "tiny" / "20260101T000000Z-abc123"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "reports").mkdir()
    (run_dir / "eval").mkdir()
    Image.new("RGB", (8, 6), "white").save(run_dir / "figures/chart.png")
    (run_dir / "reports/report.md").write_text("# Report\n\n![chart](../figures/chart.png)\n")
    (run_dir / "eval/gates.json").write_text(json.dumps({"gates": [], "all_passed": True}))
    return run_dir


def test_symlink_outside_the_run_is_reported_and_not_followed(tmp_path):
    run_dir = _tiny_run(tmp_path)
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
    run_dir = _tiny_run(tmp_path)
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
