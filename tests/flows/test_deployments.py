"""Deployments on a real Prefect server: typed parameters, `movierec serve`, runs triggered through
the API with parameters, `movierec history` reading their task runs, the nightly regression check.

The server, `movierec serve` and the three runs are session fixtures (tests/flows/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STAGES = ("ingest", "split", "features", "tuning", "collaborative", "candidates", "evaluation", "regression")


def _movierec(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "movierec"), *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_flow_parameters_are_typed_for_the_ui_form():
    from flows.deployments import nightly_reevaluation
    from flows.pipeline import recommender_pipeline
    from tasks.profile import available_profiles

    for flow in (recommender_pipeline, nightly_reevaluation):
        props = flow.parameters.model_dump()["properties"]
        assert props["profile"]["enum"] == available_profiles()
        assert "nightly" in props["profile"]["enum"]
        overrides = props["overrides"]  # a mapping, empty by default (no null toggle)
        assert overrides["type"] == "object" and overrides["default"] == {}
        assert overrides["additionalProperties"] == {"type": "string"}
        assert "eval.batch_size" in overrides["propertyNames"]["enum"]  # keys: a choice
    # the CLI's list form and non-string values become the dict form; wrong names are refused
    checked = recommender_pipeline.validate_parameters(
        {"profile": "ci", "overrides": ["run.seed=7", "eval.k_values=[5, 10]"]}
    )
    assert checked["overrides"] == {"run.seed": "7", "eval.k_values": "[5, 10]"}
    checked = recommender_pipeline.validate_parameters({"overrides": {"run.seed": 7}})
    assert checked["overrides"] == {"run.seed": "7"}
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="unknown profile 'nope'"):
        recommender_pipeline.validate_parameters({"profile": "nope"})
    with pytest.raises(ParameterTypeError, match="section.key"):
        recommender_pipeline.validate_parameters({"overrides": {"seed": "7"}})
    with pytest.raises(ParameterTypeError, match="did you mean eval.batch_size"):
        recommender_pipeline.validate_parameters({"overrides": {"eval.batchsize": "7"}})


def test_serve_without_a_server_tells_the_user_what_to_do(tmp_path: Path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)  # no profile with an API URL in it
    done = subprocess.run(
        [str(BIN / "movierec"), "serve"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 2
    assert "make ui" in done.stderr and "PREFECT_API_URL=http://127.0.0.1:4200/api" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_registers_both_deployments_with_the_nightly_schedule(prefect_server, served):
    from tasks.profile import load_profile

    nightly = load_profile("nightly").nightly
    dep = prefect_server.api("get", "/deployments/name/nightly-reevaluation/nightly-reevaluation")
    crons = [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in dep["schedules"]]
    assert crons == [(nightly.cron, nightly.timezone)]
    assert dep["parameters"]["profile"] == "nightly"
    pipeline = prefect_server.api(
        "get", "/deployments/name/recommender-pipeline/recommender-pipeline"
    )
    schema = pipeline["parameter_openapi_schema"]["properties"]
    assert "ci" in schema["profile"]["enum"] and pipeline["enforce_parameter_schema"]
    assert pipeline["schedules"] == []
    handoff = prefect_server.api("get", "/deployments/name/handoff/handoff")
    assert handoff["parameter_openapi_schema"]["required"] == ["run_dir"]
    assert handoff["enforce_parameter_schema"] and handoff["schedules"] == []
    # an override key that is no setting is refused when the run is submitted, not 6 s into it
    refused = httpx.post(
        f"{prefect_server.api_url}/deployments/{pipeline['id']}/create_flow_run",
        json={"parameters": {"profile": "ci", "overrides": {"eval.nonsense_key": "1"}}},
        timeout=30,
    )
    assert refused.status_code in (409, 422), refused.text
    assert "eval.nonsense_key" in refused.text


def test_nightly_schedule_creates_runs_at_the_profiles_cron_time(prefect_server, served):
    """The server's scheduler turns the cron schedule into scheduled runs (fails with SQLAlchemy
    2.1, whose bulk insert breaks Prefect 3.8.8's scheduler: pin sqlalchemy<2.1)."""
    import datetime as dt
    import time

    from tasks.profile import load_profile

    nightly = load_profile("nightly").nightly
    dep = prefect_server.api("get", "/deployments/name/nightly-reevaluation/nightly-reevaluation")
    deadline = time.monotonic() + 300
    while True:
        scheduled = prefect_server.api(
            "post",
            "/flow_runs/filter",
            {
                "flow_runs": {
                    "deployment_id": {"any_": [dep["id"]]},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                },
                "limit": 10,
                "sort": "EXPECTED_START_TIME_ASC",
            },
        )
        if scheduled or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert scheduled, f"no scheduled run of nightly-reevaluation; server log: {prefect_server.log}"
    minute, hour = (int(v) for v in nightly.cron.split()[:2])
    for run in scheduled:
        start = dt.datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
        assert (start.hour, start.minute) == (hour, minute)
        assert run["parameters"]["profile"] == "nightly"
    listing = _movierec(prefect_server, "history", "--limit", "1")
    assert listing.returncode == 0, listing.stderr
    assert (
        f"next scheduled: nightly-reevaluation at {scheduled[0]['expected_start_time'][:16]}"
        in (listing.stdout)
    )


def _task_table(server, run_id: str) -> dict[str, tuple[str, str, str]]:
    """``movierec history --run ID`` parsed: stage -> (state, cached, flow)."""
    shown = _movierec(server, "history", "--run", run_id)
    assert shown.returncode == 0, shown.stderr
    rows = {}
    for line in shown.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3] in ("yes", "no"):
            rows[parts[0].rsplit("-", 1)[0]] = (parts[1], parts[3], parts[4])
    assert set(STAGES) <= set(rows), shown.stdout
    return rows


def test_history_finds_a_run_by_id_prefix_or_by_name_and_prints_json(
    prefect_server, deployment_runs
):
    first = deployment_runs["first"]
    for key in (first["id"][:8], first["name"]):
        shown = _movierec(prefect_server, "history", "--run", key, "--json")
        assert shown.returncode == 0, shown.stderr
        payload = json.loads(shown.stdout)
        assert [r["id"] for r in payload["flow_runs"]] == [first["id"]], payload["flow_runs"]
        assert payload["flow_runs"][0]["name"] == first["name"]
        assert payload["flow_runs"][0]["state"] == first["state"]["name"]  # the decision
        assert {t["name"].rsplit("-", 1)[0] for t in payload["task_runs"]} >= set(STAGES)
    unknown = _movierec(prefect_server, "history", "--run", "no-such-run")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr, unknown.stderr
    assert "no flow run named 'no-such-run'" in unknown.stderr


def test_triggered_runs_complete_and_history_shows_their_task_runs(prefect_server, deployment_runs):
    first, worse = deployment_runs["first"], deployment_runs["worse"]
    for run in (first, worse):
        assert run["state"]["type"] == "COMPLETED", run["state"]
        assert run["parameters"]["profile"] == "ci"
        assert run["parameters"]["overrides"]["synthetic.n_users"] == "600"
    assert worse["parameters"]["overrides"]["tuning.alpha_grid"] == "[1.0]"

    # room for more than the two runs and their subflows: the nightly deployment's cron (02:00 UTC)
    # fires on its own when the suite runs across that hour
    listing = _movierec(prefect_server, "history", "--limit", "20")
    assert listing.returncode == 0, listing.stderr
    assert first["id"] in listing.stdout and worse["id"] in listing.stdout
    assert "recommender-pipeline" in listing.stdout and "nightly-reevaluation" in listing.stdout
    # the runs carry their decision as the final state's name (type COMPLETED)
    for run in (first, worse):
        assert run["state"]["name"] in ("APPROVE", "NEEDS WORK", "REJECT"), run["state"]
        assert run["state"]["message"].startswith(f"decision {run['state']['name']}")
    assert first["state"]["name"] in listing.stdout

    computed = _task_table(prefect_server, first["id"])
    assert all(cached == "no" for _, cached, _ in computed.values())
    assert {flow for _, _, flow in computed.values()} == {"recommender-pipeline", "handoff"}
    # the nightly run: its pipeline subflow's task runs; same data, so the data and model stages
    # come from cache, the changed policy is re-ranked and re-evaluated
    nightly = _task_table(prefect_server, worse["id"])
    for stage in ("ingest", "split", "features"):
        assert nightly[stage][:2] == ("Cached", "yes"), (stage, nightly[stage])
    for stage in ("candidates", "evaluation", "regression"):
        assert nightly[stage][:2] == ("Completed", "no"), (stage, nightly[stage])


def test_run_artifacts_are_published_with_stable_keys(prefect_server, deployment_runs):
    run_id = deployment_runs["first"]["id"]
    artifacts = prefect_server.api(
        "post",
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 100, "sort": "CREATED_DESC"},
    )
    keys = {a["key"] for a in artifacts if a["key"]}
    assert {"ci-headline-metrics", "ci-acceptance-gates", "pipeline-progress"} <= keys  # per profile
    table = next(a for a in artifacts if a["key"] == "ci-headline-metrics")
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    assert {"tuned_policy", "popularity"} <= {r["model"] for r in rows}


def test_nightly_flags_a_worse_model_as_a_regression(deployment_runs, artifacts_root):
    worse = deployment_runs["worse"]
    assert worse["state"]["type"] == "COMPLETED", worse["state"]
    runs = sorted(p for p in (artifacts_root / "ci").iterdir() if p.is_dir() and p.name[0] != ".")
    assert len(runs) == 2
    first, last = runs
    none = json.loads((first / "eval" / "regression.json").read_text())
    assert none["baseline_run"] is None and not none["significant_drop"] and none["rows"] == []

    flagged = json.loads((last / "eval" / "regression.json").read_text())
    assert flagged["baseline_run"] == str(first) and flagged["compare_with"] == "previous"
    assert flagged["significant_drop"]
    drops = {(r["cohort"], r["metric"]) for r in flagged["rows"] if r["significant"]}
    assert ("all", "recall") in drops
    row = next(r for r in flagged["rows"] if (r["cohort"], r["metric"]) == ("all", "recall"))
    assert row["current"] < row["baseline"] and row["ci_high"] < 0
    assert row["method"] == "paired bootstrap" and row["n_users"] > 100
    report = (last / "reports" / "regression.md").read_text()
    assert "Significant drop" in report and str(first) in report


def test_the_nightly_run_page_shows_the_outcome_of_its_pipeline(prefect_server, deployment_runs):
    """The nightly parent run holds copies (without keys) of its subflow's headline, gates,
    regression and decision artifacts; the keyed ones carry the profile (ci-...)."""
    worse = deployment_runs["worse"]
    own = prefect_server.api(
        "post", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [worse["id"]]}}, "limit": 50}
    )
    texts = " ".join(str(a.get("data")) for a in own)
    assert {a["type"] for a in own} >= {"table", "markdown"}, own
    assert "tuned_policy" in texts and "# Acceptance gates" in texts and "Significant drop" in texts
    assert f"# Decision: {worse['state']['name']}" in texts
    assert all(a["key"] is None for a in own)
    keyed = prefect_server.api(
        "post", "/artifacts/filter", {"artifacts": {"key": {"any_": ["ci-signoff-decision"]}}, "limit": 50}
    )
    assert len(keyed) >= 2  # one per run (the pipeline's and the nightly's subflow), none for copies


def test_prefect_yaml_declares_the_same_deployments():
    """prefect.yaml (for `prefect deploy`) matches what `movierec serve` registers."""
    import importlib

    import yaml

    from flows.deployments import HANDOFF_DEPLOYMENT, NIGHTLY_DEPLOYMENT, PIPELINE_DEPLOYMENT
    from tasks.profile import load_profile

    root = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((root / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {PIPELINE_DEPLOYMENT, NIGHTLY_DEPLOYMENT, HANDOFF_DEPLOYMENT}
    for name, dep in deployments.items():
        path, func = dep["entrypoint"].split(":")
        assert (root / path).is_file()
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, func).name == name  # the flow's name is the deployment's
        assert dep["enforce_parameter_schema"] is True
    nightly = load_profile("nightly").nightly
    schedule = deployments[NIGHTLY_DEPLOYMENT]["schedules"]
    assert [(s["cron"], s["timezone"]) for s in schedule] == [(nightly.cron, nightly.timezone)]
    assert deployments[NIGHTLY_DEPLOYMENT]["parameters"]["profile"] == "nightly"
    assert deployments[PIPELINE_DEPLOYMENT]["schedules"] == []
    # the handoff re-decides the run directory each run names: no default, no schedule
    assert deployments[HANDOFF_DEPLOYMENT]["schedules"] == []
    assert "run_dir" not in deployments[HANDOFF_DEPLOYMENT]["parameters"]


def test_the_project_server_is_found_only_while_it_runs(prefect_server, tmp_path):
    """`make ui` leaves .prefect/server.pid and server.url: a live pid and an answering URL make
    `movierec run` record there (flows/server.py); a stale pid file does not."""
    import os

    from flows.server import project_server_url

    home = tmp_path / ".prefect"
    home.mkdir()
    (home / "server.url").write_text(prefect_server.url + "\n")
    (home / "server.pid").write_text(f"{os.getpid()}\n")  # a live process
    assert project_server_url(home) == prefect_server.url
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (home / "server.pid").write_text(dead.stdout)  # that process has exited
    assert project_server_url(home) is None
    (home / "server.pid").unlink()
    assert project_server_url(home) is None
