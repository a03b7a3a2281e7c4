"""The handoff flow: the pipeline's last subflow, and `movierec handoff RUN_DIR` re-deciding a
finished run (a new decision and inventory, no other file of the run touched)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli import main
from flows.pipeline import PIPELINE_STAGES
from tasks.manifest import EXCLUDED, MANIFEST

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What a handoff writes; every other file of the run must keep its bytes.
HANDOFF_WRITES = ("inventory/", "signoff/", "reports/final_report.md")


@pytest.fixture(scope="module")
def finished_run(ci_pipeline_run) -> dict:
    """The session's ci pipeline run (tests copy its directory first)."""
    return ci_pipeline_run[1]


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    source = Path(finished_run["run_dir"])
    target = tmp_path / "ci" / source.name
    shutil.copytree(source, target, symlinks=True)
    return target


def _hashes(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def _written_by_handoff(rel: str) -> bool:
    return rel.startswith(HANDOFF_WRITES)


def test_the_pipeline_runs_inventory_and_handoff_in_its_last_subflow(finished_run):
    from tasks.history import read_history

    run_dir = Path(finished_run["run_dir"])
    recorded = json.loads((run_dir / "logs" / "stages.json").read_text())["stages"]
    assert [s["stage"] for s in recorded] == PIPELINE_STAGES
    assert finished_run["decision"] in ("APPROVE", "NEEDS WORK", "REJECT")
    signoff = json.loads((run_dir / "signoff" / "signoff.json").read_text())
    assert signoff["decision"] == finished_run["decision"]
    for _ in range(20):  # task-run records can lag a moment behind the run
        _, tasks = read_history(run_id=finished_run["flow_run_id"])
        flow_of = {t.name.rsplit("-", 1)[0]: t.flow_name for t in tasks}
        if {"inventory", "handoff"} <= set(flow_of):
            break
        time.sleep(0.5)
    assert flow_of["inventory"] == flow_of["handoff"] == "handoff", flow_of
    assert flow_of["evaluation"] == "recommender-pipeline"
    # the runs list shows the outcome: the final state is named after the decision
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(finished_run["flow_run_id"]).state
    assert state.type.value == "COMPLETED" and state.name == finished_run["decision"], state
    assert state.message.startswith(f"decision {finished_run['decision']}")


def test_handoff_with_a_higher_min_lift_changes_the_decision_and_inventory_only(
    finished_run, run_copy, capsys
):
    before = _hashes(run_copy)
    old_signoff = json.loads((run_copy / "signoff" / "signoff.json").read_text())
    old_manifest = json.loads((run_copy / MANIFEST).read_text())

    code = main(["handoff", str(run_copy), "--set", "signoff.min_lift=0.5"])
    out = capsys.readouterr().out

    signoff = json.loads((run_copy / "signoff" / "signoff.json").read_text())
    assert signoff["thresholds"]["min_lift"] == 0.5 != old_signoff["thresholds"]["min_lift"]
    lift = next(g for g in signoff["gates"] if g["name"] == "lift_over_best_baseline")
    assert lift["threshold"] == 0.5 and lift["passed"] is False  # no tuned policy lifts by 50 %
    assert signoff["decision"] != "APPROVE"
    if old_signoff["decision"] == "APPROVE":
        assert signoff["decision"] == "NEEDS WORK"
    assert signoff["created"] >= old_signoff["created"]
    assert code == 1  # like `movierec run`: 0 only for APPROVE
    assert f"decision: {signoff['decision']}" in out
    assert f"previous decision: {old_signoff['decision']}" in out
    assert ">= +50.00%" in (run_copy / "reports" / "final_report.md").read_text()

    after = _hashes(run_copy)
    others_before = {p: h for p, h in before.items() if not _written_by_handoff(p)}
    others_after = {p: h for p, h in after.items() if not _written_by_handoff(p)}
    assert others_after == others_before  # same files, same bytes
    assert before["signoff/signoff.json"] != after["signoff/signoff.json"]
    assert before[MANIFEST] != after[MANIFEST]

    # the new manifest lists every file of the run, the new sign-off files with their new hashes
    manifest = json.loads((run_copy / MANIFEST).read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {p for p in after if p not in EXCLUDED}
    for rel in ("signoff/signoff.json", "signoff/handoff.md", "reports/final_report.md"):
        assert listed[rel]["sha256"] == after[rel] and listed[rel]["stage"] == "handoff"
    assert manifest["created"] >= old_manifest["created"]
    # the producing stages the pipeline recorded are kept
    old_stage = {
        f["path"]: f["stage"] for f in old_manifest["files"] if not _written_by_handoff(f["path"])
    }
    assert {p: listed[p]["stage"] for p in old_stage} == old_stage
    # and it holds every file's current hash (what `movierec validate RUN_DIR` re-checks)
    assert {p: f["sha256"] for p, f in listed.items()} == {p: after[p] for p in listed}
    assert all(f["status"] == "passed" for f in listed.values())


def test_a_manifest_edited_to_match_an_edited_file_is_caught_by_the_seal(run_copy, capsys):
    """Editing a file and its sha256 in the manifest passes the file checks of `movierec
    validate`; the manifest's own sha256, recorded on the Prefect server by the handoff flow
    (flows/seal.py), does not match any more."""
    from flows.seal import check_seal

    assert check_seal(run_copy)["status"] == "ok"  # the pipeline's handoff sealed it
    report = run_copy / "reports" / "final_report.md"
    report.write_text(report.read_text() + "\nDecision: APPROVE (edited by hand)\n")
    manifest = json.loads((run_copy / MANIFEST).read_text())
    entry = next(f for f in manifest["files"] if f["path"] == "reports/final_report.md")
    entry["sha256"] = hashlib.sha256(report.read_bytes()).hexdigest()
    entry["bytes"] = report.stat().st_size
    (run_copy / MANIFEST).write_text(json.dumps(manifest, indent=2))

    assert main(["validate", str(run_copy)]) == 1
    out = capsys.readouterr().out
    assert "CHANGED " not in out and "FAILED " not in out, out  # the file checks are fooled
    assert "SEAL     MISMATCH inventory/artifact_manifest.json" in out, out
    assert check_seal(run_copy)["status"] == "mismatch"


def test_a_bad_set_exits_2_naming_it_before_anything_runs(run_copy, prefect_api_env, capsys):
    before = _hashes(run_copy)
    assert main(["handoff", str(run_copy), "--set", "signoff.min_lift=high"]) == 2
    err = capsys.readouterr().err
    assert "--set signoff.min_lift=high" in err and err.count("error:") == 1, err
    # a setting that describes how the run was made cannot be changed by a handoff
    assert main(["handoff", str(run_copy), "--set", "tuning.n_trials=5"]) == 2
    assert "--set tuning.n_trials=5" in capsys.readouterr().err
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "handoff",
            str(run_copy),
            "--set",
            "signoff.min_liftt=0.5",
        ],
        capture_output=True,
        text=True,
        env=prefect_api_env,
        cwd=REPO_ROOT,
        timeout=900,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "--set signoff.min_liftt=0.5" in result.stderr and "unknown key" in result.stderr
    assert _hashes(run_copy) == before


def test_a_directory_that_is_not_a_finished_run_exits_2(run_copy, tmp_path, capsys):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    assert main(["handoff", str(empty)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["handoff", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (run_copy / "eval" / "metrics.parquet").unlink()  # a run that never finished its evaluation
    assert main(["handoff", str(run_copy)]) == 2
    assert "eval/metrics.parquet" in capsys.readouterr().err


def test_the_handoff_deployment_takes_a_run_directory():
    from flows.deployments import HANDOFF_DEPLOYMENT
    from flows.handoff import handoff_flow

    schema = handoff_flow.parameters.model_dump()
    assert schema["required"] == ["run_dir"]
    assert schema["properties"]["overrides"]["type"] == "object"
    assert handoff_flow.name == HANDOFF_DEPLOYMENT
