"""The Prefect UI in a real (headless) Chromium: the flow run page of a run triggered through the
served deployment renders that run - its name, flow, deployment, its decision as the final state
and task runs -, the runs list shows the run with its decision, the gates artifact shows measured
values and thresholds, and a screenshot of the run page is taken.

Chromium comes from the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them when missing); this test installs nothing and skips only when ``chromium`` is not on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "chromium is not on PATH: install the Debian packages chromium and chromium-driver "
            "(.ci/run does it: apt-get install -y chromium chromium-driver)"
        )
    return path


def _browse(
    chromium: str, tmp: Path, *args: str, virtual_ms: int = 20000
) -> subprocess.CompletedProcess:
    profile = tmp / f"chromium-profile-{len(list(tmp.iterdir()))}"
    return subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--virtual-time-budget={virtual_ms}",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        timeout=600,
    )


def _text_showing(chromium: str, tmp: Path, url: str, needles: list[str], attempts: int = 4) -> str:
    """The page's text once it shows every needle: the UI fills its lists from the API after the
    page loads, and a dump can come before the data did (a runs list rendered empty once in CI), so
    the page is dumped again - up to ``attempts`` times, each with a longer virtual-time budget."""
    text = ""
    for attempt in range(attempts):
        dumped = _browse(chromium, tmp, "--dump-dom", url, virtual_ms=20000 * (attempt + 1))
        text = _page_text(dumped.stdout.decode(errors="replace"))
        if all(needle in text for needle in needles):
            break
    return text


def _page_text(dom: str) -> str:
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def test_flow_run_page_shows_the_run(prefect_server, deployment_runs, tmp_path: Path):
    chromium = _chromium()
    run = deployment_runs["first"]
    page = f"{prefect_server.url}/runs/flow-run/{run['id']}"

    dumped = _browse(chromium, tmp_path, "--dump-dom", page)
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    text = _page_text(dumped.stdout.decode(errors="replace"))
    assert "Can't connect to Server API" not in text
    # the run's own page: its generated name, flow, deployment, final state and task-run count
    assert run["name"] in text, text[:2000]
    assert "recommender-pipeline" in text
    # its final state is named after the decision (flows/artifacts.py: decided_state)
    assert run["state"]["name"] in ("APPROVE", "NEEDS WORK", "REJECT"), run["state"]
    assert run["state"]["name"] in text
    # counted as the UI counts them: the task runs that stand for a subflow (the handoff) are not
    # task runs of their own (prefect-ui-library useTaskRunsCount: subflow_runs exists_ false)
    n_tasks = len(
        prefect_server.api(
            "post",
            "/task_runs/filter",
            {
                "flow_runs": {"id": {"any_": [run["id"]]}},
                "task_runs": {"subflow_runs": {"exists_": False}},
                "limit": 200,
                "sort": "EXPECTED_START_TIME_ASC",
            },
        )
    )
    assert n_tasks >= 6 and f"{n_tasks} Task runs" in text

    # the runs list shows each run's outcome (its final state's name)
    runs_text = _text_showing(
        chromium, tmp_path, f"{prefect_server.url}/runs", [run["name"], run["state"]["name"]]
    )
    assert run["name"] in runs_text and run["state"]["name"] in runs_text, runs_text[:3000]
    # the gates artifact's page shows its numbers: measured value and threshold per gate
    (artifact,) = prefect_server.api(
        "post",
        "/artifacts/filter",
        {
            "artifacts": {"key": {"any_": ["ci-acceptance-gates"]}, "flow_run_id": {"any_": [run["id"]]}},
            "limit": 1,
        },
    )
    gates = _browse(
        chromium, tmp_path, "--dump-dom", f"{prefect_server.url}/artifacts/artifact/{artifact['id']}"
    )
    gates_text = _page_text(gates.stdout.decode(errors="replace"))
    assert re.search(r"lift_over_best_baseline -?\d+\.\d{4} -?\d+\.\d{4} (yes|no)", gates_text), (
        gates_text[:3000]
    )

    shot = tmp_path / "flow-run.png"
    taken = _browse(chromium, tmp_path, f"--screenshot={shot}", page)
    assert taken.returncode == 0, taken.stderr.decode(errors="replace")[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1000, 1400)
    # a rendered page, not a blank canvas: many distinct colours
    assert len({tuple(p) for p in pixels[::20, ::20].reshape(-1, pixels.shape[2])}) > 20
