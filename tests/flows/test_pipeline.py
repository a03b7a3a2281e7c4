"""The parent flow on real Prefect (one temporary server per session)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.pipeline import PIPELINE_STAGES, recommender_pipeline

pytestmark = pytest.mark.slow

#: Stages whose output names the run (manifest, sign-off): recomputed by design in every run.
NEVER_CACHED = {"inventory", "handoff"}
#: Cached only while its baseline run is the same; a new run is a new "previous" baseline.
BASELINE_DEPENDENT = {"regression"}


def _stages(run_dir: str) -> dict[str, dict]:
    payload = json.loads((Path(run_dir) / "logs" / "stages.json").read_text())
    return {s["stage"]: s for s in payload["stages"]}


@pytest.fixture(scope="module")
def first_run(ci_pipeline_run):
    """The session's ci run (tests/flows/conftest.py): (root, summary). Other tests of the session
    add runs to that root."""
    return ci_pipeline_run


@pytest.fixture(scope="module")
def rerun(heavy_eval_run):
    """``rerun(*overrides)``: the ci run's settings plus ``overrides``, in its artifacts root."""

    def run(*overrides: str) -> dict:
        return recommender_pipeline(
            profile="ci",
            overrides=[*heavy_eval_run.overrides, *overrides],
            artifacts_root=str(heavy_eval_run.root),
        )

    return run


@pytest.fixture(scope="module")
def cached_rerun(rerun, heavy_eval_run) -> tuple[dict, str | None]:
    """An unchanged re-run of the session's ci run and the name in LATEST right after it."""
    summary = rerun()
    return summary, (heavy_eval_run.root / "ci" / "LATEST").read_text().strip()


#: A setting of the edge-cases stage only (the stages before it come from cache).
EDGE_SETTING = "edge_cases.scenario_time_limit_seconds=119"


@pytest.fixture(scope="module")
def edge_setting_run(rerun) -> dict:
    """The ci run with :data:`EDGE_SETTING` changed."""
    return rerun(EDGE_SETTING)


def test_a_run_completes_and_records_every_stage(first_run, heavy_eval_run):
    root, summary = first_run
    run_dir = Path(summary["run_dir"])
    assert heavy_eval_run.latest_after == run_dir.name  # LATEST named it when it finished
    stages = _stages(summary["run_dir"])
    assert list(stages) == PIPELINE_STAGES
    assert not any(s["cached"] for s in stages.values())
    for table in ("ratings", "movies", "train", "test", "cohorts"):
        assert (run_dir / "data" / f"{table}.parquet").stat().st_size > 0
    assert (run_dir / "profile.toml").read_text().startswith('name = "ci"')
    status = json.loads((run_dir / "logs" / "run_status.json").read_text())
    assert status["status"] == "complete"


def test_unchanged_rerun_is_served_from_cache_into_its_own_run_dir(first_run, cached_rerun):
    _, first = first_run
    second, latest_after = cached_rerun
    assert second["run_dir"] != first["run_dir"]
    stages = _stages(second["run_dir"])
    recomputable = NEVER_CACHED | BASELINE_DEPENDENT
    assert all(s["cached"] for name, s in stages.items() if name not in recomputable), stages
    assert not any(stages[name]["cached"] for name in NEVER_CACHED)
    for table in ("ratings", "train", "cohorts"):
        new_file = Path(second["run_dir"]) / "data" / f"{table}.parquet"
        old_file = Path(first["run_dir"]) / "data" / f"{table}.parquet"
        assert new_file.read_bytes() == old_file.read_bytes()
    assert latest_after == Path(second["run_dir"]).name


def test_changing_one_stage_setting_reruns_that_stage_and_keeps_the_earlier_ones(
    edge_setting_run,
):
    stages = _stages(edge_setting_run["run_dir"])
    before = PIPELINE_STAGES[: PIPELINE_STAGES.index("edge_cases")]
    assert all(stages[s]["cached"] for s in before if s not in BASELINE_DEPENDENT), stages
    assert stages["edge_cases"]["cached"] is False


def test_deleted_cached_files_are_recomputed(first_run, rerun, edge_setting_run):
    root, _ = first_run  # edge_setting_run: the stage with EDGE_SETTING computed once
    # delete the edge cases' files in every run of this configuration (the cached refs point at one)
    for run in (root / "ci").iterdir():
        profile_file = run / "profile.toml"
        if profile_file.exists() and "scenario_time_limit_seconds = 119" in profile_file.read_text():
            for path in (run / "edge_cases").glob("*.json"):
                path.unlink()
    # the stage's cached files are gone everywhere: the cache must not hand out dead refs
    b = rerun(EDGE_SETTING)
    assert any((Path(b["run_dir"]) / "edge_cases").glob("*.json"))
    assert _stages(b["run_dir"])["edge_cases"]["cached"] is False
    assert _stages(b["run_dir"])["split"]["cached"] is True


def test_history_reads_the_runs_and_their_cached_task_runs(cached_rerun):
    import time

    from tasks.history import format_task_runs, read_history

    summary, _ = cached_rerun  # all cached
    flows, _ = read_history(limit=20)
    assert any(f.id == summary["flow_run_id"] and f.flow_name == "recommender-pipeline" for f in flows)
    for _ in range(20):  # task-run records can lag a moment behind the run
        _, tasks = read_history(run_id=summary["flow_run_id"])
        if len(tasks) >= len(PIPELINE_STAGES):
            break
        time.sleep(0.5)
    names = {t.name.rsplit("-", 1)[0] for t in tasks}
    assert set(PIPELINE_STAGES) <= names, format_task_runs(tasks)
    stage_runs = [t for t in tasks if t.name.rsplit("-", 1)[0] in PIPELINE_STAGES]
    recomputable = NEVER_CACHED | BASELINE_DEPENDENT
    assert all(t.cached for t in stage_runs if t.name.rsplit("-", 1)[0] not in recomputable), (
        format_task_runs(tasks)
    )


def test_recommend_command_serves_a_real_user_and_rejects_an_unknown_one(first_run, capsys):
    import pandas as pd

    from flows.cli import main

    _, summary = first_run
    run_dir = summary["run_dir"]
    user = int(pd.read_parquet(Path(run_dir) / "data" / "cohorts.parquet").user_id.iloc[0])
    assert main(["recommend", "--user", str(user), "--k", "7", "--run", run_dir]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert len(lines) == 7 and "because you rated" in out
    assert main(["recommend", "--user", "987654321", "--run", run_dir]) == 2
    assert "unknown user id 987654321" in capsys.readouterr().err
    assert main(["recommend", "--user", str(user), "--genre", "NoSuchGenre", "--run", run_dir]) == 2
    capsys.readouterr()
    assert main(["recommend", "--user", str(user), "--k", "7", "--run", run_dir, "--json"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert served["order"] == "served (MMR)" and served["user"] == user
    assert [i["rank"] for i in served["items"]] == list(range(1, 8))
    for line, item in zip(lines, served["items"], strict=True):  # the same list as the text
        assert line.startswith(f"{item['rank']:>3}. {item['title']}"), (line, item)
    # a reader of a finished run does not load the orchestration library (issue 13: fast start)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from flows.cli import main; main(sys.argv[1:]); "
         "print('prefect loaded' if 'prefect' in sys.modules else 'no prefect')",
         "recommend", "--user", str(user), "--run", run_dir],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300,
    )  # fmt: skip
    assert probe.stdout.strip().endswith("no prefect"), probe.stdout + probe.stderr


def test_run_publishes_headline_gates_and_progress_artifacts(first_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [  # the run's results under keys that carry the profile; progress is the same for all
        "ci-headline-metrics",
        "ci-acceptance-gates",
        "ci-signoff-decision",
        "pipeline-progress",
        "evaluation-progress",
    ]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)), limit=50
        )
    assert {a.key for a in found} == set(keys)
    headline = next(a for a in found if a.key == "ci-headline-metrics")
    assert "tuned_policy" in str(headline.data)
