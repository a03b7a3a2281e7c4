"""A real Prefect server for the deployment and browser tests (one per session, on a free port).

``prefect_server`` starts ``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME (SQLite)
and ``PREFECT_UI_API_URL`` (else the UI of a server not on port 4200 calls :4200). ``served`` runs
``movierec serve`` against it. ``deployment_runs`` triggers the runs every test of this folder
reads, once: the pipeline deployment, then the nightly deployment with a deliberately worse model
on the same data.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: Small synthetic data on the ci profile and the cheapest settings of the report stages, so one
#: run takes seconds (these tests are about deployments, not about the stages' results).
SMALL = {
    "synthetic.n_users": "600",
    "synthetic.n_movies": "400",
    "synthetic.n_ratings": "30000",
    "case_studies.n_cases": "2",
    "edge_cases.only": '["single_rating_user"]',
    "tuning.n_trials": "2",
}
#: A deliberately worse model: content only (alpha = 1 for every cohort, and nothing else to tune).
WORSE = {
    "tuning.alpha_grid": "[1.0]",
    **{f"policy.alpha_{c}": "1.0" for c in ("cold", "light", "medium", "heavy")},
}


@dataclass(frozen=True)
class PrefectServer:
    url: str  # the UI, e.g. http://127.0.0.1:PORT
    api_url: str  # http://127.0.0.1:PORT/api
    env: dict[str, str]  # environment for clients of this server (PREFECT_API_URL set)
    log: Path

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        """One REST call to the server's API (``path`` after /api); the decoded JSON answer.

        A 503 (SQLite busy: the server asks clients to retry) is retried, as Prefect's client does.
        """
        for attempt in range(6):
            response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
            if response.status_code != 503:
                break
            time.sleep(0.5 * 2**attempt)
        response.raise_for_status()
        return response.json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT, grace: float = 10.0) -> None:
    """Stop a process group we started: ``sig`` first, SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port (own PREFECT_HOME); killed at session end."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") or k == "PREFECT_SERVER_ANALYTICS_ENABLED"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_UI_API_URL=f"{url}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="false",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server start did not answer {url}/api/health:\n{_tail(log)}")
            time.sleep(0.5)
        client_env = {**env, "PREFECT_API_URL": f"{url}/api"}
        client_env.pop("PREFECT_UI_API_URL")
        yield PrefectServer(url=url, api_url=f"{url}/api", env=client_env, log=log)
    finally:
        _stop(proc, signal.SIGTERM)


@pytest.fixture(scope="session")
def artifacts_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served-artifacts")


@pytest.fixture(scope="session")
def served(prefect_server: PrefectServer, artifacts_root: Path) -> Iterator[subprocess.Popen]:
    """``movierec serve`` against the session's server; stopped (Ctrl+C) at session end."""
    log = artifacts_root.parent / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "movierec"), "serve", "--artifacts", str(artifacts_root)],
            # poll for triggered runs every second (default 10 s)
            env={**prefect_server.env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        names = {"recommender-pipeline", "nightly-reevaluation", "handoff"}
        while True:
            found = {
                d["name"] for d in prefect_server.api("post", "/deployments/filter", {"limit": 10})
            }
            if names <= found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"movierec serve did not register {sorted(names)}:\n{_tail(log)}")
            time.sleep(0.5)
        yield proc
    finally:
        # SIGINT = Ctrl+C (Prefect 3.8.8's runner does not stop on SIGTERM: its handler calls the
        # async Runner.stop() without awaiting it)
        _stop(proc, signal.SIGINT)


def run_deployment_and_wait(
    server: PrefectServer, deployment: str, parameters: dict[str, Any], timeout: float = 1200
) -> dict[str, Any]:
    """Create a flow run of ``flow/deployment`` through the REST API and wait for a final state."""
    dep = server.api("get", f"/deployments/name/{deployment}")
    run = server.api(
        "post", f"/deployments/{dep['id']}/create_flow_run", {"parameters": parameters}
    )
    deadline = time.monotonic() + timeout
    while True:
        run = server.api("get", f"/flow_runs/{run['id']}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(
                f"flow run {run['id']} of {deployment} still {run['state']['name']} after {timeout} s"
            )
        time.sleep(0.5)


@pytest.fixture(scope="session")
def deployment_runs(prefect_server: PrefectServer, served, artifacts_root: Path) -> dict[str, dict]:
    """Two runs through the served deployments, one after the other, in one artifacts root:

    ``first`` - recommender-pipeline, ci profile, small data; ``worse`` - nightly-reevaluation with
    the ci profile, the same data (ingest ... collaborative come from cache) and a content-only
    model, compared with the previous run (the first).
    """
    overrides = {**SMALL, "nightly.compare_with": "previous"}
    params = {"profile": "ci", "artifacts_root": str(artifacts_root)}
    return {
        "first": run_deployment_and_wait(
            prefect_server,
            "recommender-pipeline/recommender-pipeline",
            {**params, "overrides": overrides},
        ),
        "worse": run_deployment_and_wait(
            prefect_server,
            "nightly-reevaluation/nightly-reevaluation",
            {**params, "overrides": {**overrides, **WORSE}},
        ),
    }


@dataclass(frozen=True)
class HeavyEvalRun:
    """An uninterrupted ci run whose evaluation has many batches, computed from scratch."""

    root: Path  # its artifacts root (the tests add runs to it; LATEST moves)
    run_dir: Path
    overrides: list[str]  # its settings on top of the ci profile (a re-run that hits its cache)
    summary: dict  # what recommender_pipeline returned
    latest_after: str | None  # the name in <root>/ci/LATEST right after it finished
    canary: dict[str, str]  # secret-like environment values set while it computed
    started: float  # time.time() when it started


@pytest.fixture(scope="session")
def heavy_eval_run(prefect_harness, tmp_path_factory) -> HeavyEvalRun:
    """The session's one from-scratch ci run: the ci profile with batches of 70 users (about 17
    batches: a run can be caught in the middle of its evaluation), with canary secrets in the
    environment. Shared by tests/flows/test_pipeline.py and test_handoff.py (through
    ``ci_pipeline_run``: re-runs in its root, cache behaviour, hand-off), test_reliability.py (kill
    and resume, budgets, two runs, no environment values in a run) and test_dask.py (the same
    batches on a Dask cluster). Those change ``eval.batch_size`` by one user, so the evaluation
    computes again with the same numbers while the upstream stages come from cache; the tests of
    this group run in one xdist worker, one after another (tests/conftest.py)."""
    import secrets

    from flows.pipeline import recommender_pipeline

    root = tmp_path_factory.mktemp("heavy-eval")
    canary_value = f"canary-{secrets.token_hex(16)}"
    canary = {"MOVIEREC_TEST_SECRET": canary_value, "AWS_SECRET_ACCESS_KEY": canary_value[::-1]}
    started = time.time()
    overrides = ["eval.batch_size=70"]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in canary.items():
            patch.setenv(key, value)
        summary = recommender_pipeline(profile="ci", overrides=overrides, artifacts_root=str(root))
    latest = root / "ci" / "LATEST"
    latest_after = latest.read_text().strip() if latest.exists() else None
    return HeavyEvalRun(
        root, Path(summary["run_dir"]), overrides, summary, latest_after, canary, started
    )


@pytest.fixture(scope="session")
def ci_pipeline_run(heavy_eval_run) -> tuple[Path, dict]:
    """The session's ci run as ``(artifacts root, flow summary)`` for tests/flows/test_pipeline.py
    (re-runs in that root with ``heavy_eval_run.overrides``: cache behaviour) and test_handoff.py
    (which copies the run directory before it changes anything in it)."""
    return heavy_eval_run.root, heavy_eval_run.summary
