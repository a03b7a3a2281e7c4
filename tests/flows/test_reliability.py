"""Reliability of `movierec run` as a process: SIGKILL and resume, time budgets, two runs at once,
and no environment values in a run directory.

``reference`` is the session's ``heavy_eval_run`` (tests/flows/conftest.py): an uninterrupted run
with a heavier evaluation (batches of 70 users: about 17 batches) so a run can be caught in the
middle of it, in an artifacts root that tests/flows/test_dask.py shares. Later runs change
``eval.batch_size`` by one user (part of the batch checkpoint key and the evaluation's cache key;
a user's lists and metrics do not depend on the batching), which makes the evaluation compute
again with the same numbers while the upstream stages come from cache. The `movierec`
subprocesses record to the session's Prefect test server (``prefect_api_env``); the signal tests
run as a user without PREFECT_API_URL, with the temporary server each run starts
(``temporary_server_env``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HEAVY_EVAL = ["eval.batch_size=71"]
UPSTREAM = ("ingest", "split", "features", "tuning", "collaborative", "candidates")
TEMPORARY = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]+$")  # tasks.io.atomic_path's temporary names


# ---------------------------------------------------------------------------------------------
# helpers
class Movierec:
    """`movierec run` in its own process group, stderr lines collected with their arrival time."""

    def __init__(self, root: Path, overrides: list[str], env: dict[str, str]):
        args = [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            "--profile",
            "ci",
            "--artifacts",
            str(root),
        ]
        for item in overrides:
            args += ["--set", item]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
            start_new_session=True,  # its own process group: the stage child is in it too
        )
        self.lines: list[tuple[float, str]] = []
        self.stdout = ""
        self._readers = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_out(self) -> None:
        self.stdout = self.proc.stdout.read()

    def wait(self, timeout: float = 1200) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first(self, pattern: str) -> float:
        for at, line in self.lines:
            if re.search(pattern, line):
                return at
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.stderr}")

    def run_dir(self) -> Path:
        found = re.search(r"run directory: (\S+)", self.stdout)
        assert found, self.stdout + self.stderr
        return Path(found.group(1))


def _still_alive(find: Callable[[], list[int]], seconds: float) -> list[int]:
    """``find()`` once it is empty, or after ``seconds``: a process killed with its parent (the
    stage children's forkserver, the resource tracker, a server) takes a moment to be gone."""
    gone_by = time.monotonic() + seconds
    while find() and time.monotonic() < gone_by:
        time.sleep(0.05)
    return find()


def _left_in_group(pgid: int, seconds: float = 5.0) -> list[int]:
    """The processes still in the group after up to ``seconds``."""
    return _still_alive(lambda: _group_members(pgid), seconds)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _facts(run_dir: Path, stage: str = "evaluation") -> dict:
    return json.loads((run_dir / "logs" / "run_status.json").read_text())["facts"][stage]


def _stages(run_dir: Path) -> dict[str, dict]:
    payload = json.loads((run_dir / "logs" / "stages.json").read_text())
    return {s["stage"]: s for s in payload["stages"]}


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "eval" / "metrics.parquet")


def _latest(root: Path) -> str | None:
    path = root / "ci" / "LATEST"
    return path.read_text().strip() if path.exists() else None


def _run_dirs(root: Path) -> set[Path]:
    return {p for p in (root / "ci").iterdir() if p.is_dir() and not p.name.startswith(".")}


def _part_files(root: Path) -> set[Path]:
    return set((root / "ci" / ".eval-parts").glob("*/batch-*.parquet"))


def _assert_complete_files(folder: Path) -> list[str]:
    """Every file under a final name reads completely; returns the temporaries found (if any)."""
    temporaries = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if TEMPORARY.match(path.name):
            temporaries.append(str(path.relative_to(folder)))
            continue
        suffix = path.suffix
        if suffix == ".parquet":
            pq.read_table(path)
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path) as data:
                [data[k] for k in data.files]
        elif suffix == ".toml":
            tomllib.loads(path.read_text())
        elif suffix == ".png":
            raw = path.read_bytes()
            assert raw.startswith(b"\x89PNG") and raw.endswith(b"IEND\xaeB`\x82"), path
        elif suffix in {".md", ".csv", ".html", ".txt", ".css", ".js", ".log"}:
            assert path.stat().st_size > 0 and path.read_text(encoding="utf-8"), path
        else:  # binary static files of the Data Docs site (fonts, icons)
            assert path.stat().st_size > 0, path
    return temporaries


def _assert_status_complete(run_dir: Path) -> None:
    status = json.loads((run_dir / "logs" / "run_status.json").read_text())
    assert status["status"] == "complete", status


@pytest.fixture(scope="module")
def reference(heavy_eval_run) -> tuple[Path, Path]:
    """(artifacts root, run dir) of the session's uninterrupted run with the heavy evaluation."""
    assert _facts(heavy_eval_run.run_dir)["batches"] >= 15
    return heavy_eval_run.root, heavy_eval_run.run_dir


# ---------------------------------------------------------------------------------------------
def test_sigkill_in_the_middle_of_evaluation_then_resume(reference, prefect_api_env):
    root, reference_run = reference
    latest_before, runs_before, parts_before = _latest(root), _run_dirs(root), _part_files(root)
    _assert_status_complete(root / "ci" / latest_before)  # the reference or a later complete run

    run = Movierec(root, HEAVY_EVAL, prefect_api_env)  # another batch size: a new checkpoint key
    deadline = time.monotonic() + 900
    while len(_part_files(root) - parts_before) < 3:
        assert _latest(root) == latest_before, "LATEST moved while the run was incomplete"
        assert run.proc.poll() is None, f"the run ended before it could be killed:\n{run.stderr}"
        assert time.monotonic() < deadline, run.stderr
        time.sleep(0.02)
    os.kill(run.proc.pid, signal.SIGKILL)  # the CLI process only: its stage child must follow
    run.wait()
    assert run.proc.returncode == -signal.SIGKILL
    orphans = _left_in_group(run.proc.pid)
    if orphans:
        os.killpg(run.proc.pid, signal.SIGKILL)
    assert not orphans, "the stage child outlived the killed run"
    parts_at_kill = _part_files(root) - parts_before
    time.sleep(1.0)
    assert _part_files(root) - parts_before == parts_at_kill, (
        "something kept writing after the kill"
    )

    (killed,) = _run_dirs(root) - runs_before
    assert _latest(root) == latest_before
    assert not (killed / "logs" / "run_status.json").exists()  # never marked complete (nor failed)
    assert not (killed / "eval" / "metrics.parquet").exists()  # killed during the batches
    leftovers = _assert_complete_files(killed) + _assert_complete_files(root / "ci" / ".eval-parts")
    assert all(TEMPORARY.match(Path(p).name) for p in leftovers)

    resumed = Movierec(root, HEAVY_EVAL, prefect_api_env)
    assert resumed.wait() in (0, 1), resumed.stderr  # 1: complete, a gate failed (ci data)
    run_dir = resumed.run_dir()
    _assert_status_complete(run_dir)
    assert _latest(root) == run_dir.name
    facts = _facts(run_dir)
    assert facts["batches_reused"] >= len(parts_at_kill), facts
    assert facts["batches_computed"] + facts["batches_reused"] == facts["batches"]
    assert all(_stages(run_dir)[s]["cached"] for s in UPSTREAM)
    pd.testing.assert_frame_equal(_metrics(run_dir), _metrics(reference_run))


def test_a_tiny_stage_budget_stops_the_stage_and_a_sane_one_resumes(reference, prefect_api_env):
    root, reference_run = reference
    latest_before = _latest(root)
    settings = ["eval.batch_size=72"]  # evaluation must compute (~7 s)
    budget = 3.0
    run = Movierec(root, [*settings, f"budgets.evaluation={budget}"], prefect_api_env)
    assert run.wait() == 3, run.stderr  # 3: stopped by a budget
    assert "Traceback" not in run.stderr
    message = run.stderr[run.stderr.index("error:") :]
    assert "stage 'evaluation'" in message and f"budget of {budget:g} s" in message, message
    assert "--set budgets.evaluation=" in message, message
    stopped_after = float(re.search(r"stopped after ([\d.]+) s", message).group(1))
    assert budget <= stopped_after < 2 * budget, message
    # the work really stopped: nothing of the run is alive, and no batch part appears afterwards
    # (measured outside, from the stage's start line to the error line, the stop took 6.1 s once
    # on a busy machine: process teardown and printing, so that is not a bound here)
    assert not _left_in_group(run.proc.pid), "the stage child outlived the budget stop"
    parts_after_stop = _part_files(root)
    time.sleep(1.0)
    assert _part_files(root) == parts_after_stop, "something kept writing after the budget stop"
    assert _latest(root) == latest_before

    sane = Movierec(root, settings, prefect_api_env)
    assert sane.wait() in (0, 1), sane.stderr
    run_dir = sane.run_dir()
    _assert_status_complete(run_dir)
    assert all(_stages(run_dir)[s]["cached"] for s in UPSTREAM)
    assert _facts(run_dir)["batches_reused"] >= 1  # the parts finished before the budget ran out
    pd.testing.assert_frame_equal(_metrics(run_dir), _metrics(reference_run))


def test_the_flow_budget_stops_the_whole_run(reference, prefect_api_env):
    root, _ = reference
    latest_before, runs_before = _latest(root), _run_dirs(root)
    flow_budget = 4.0
    run = Movierec(
        root,
        # small batches: the evaluation computes for about 10 s, longer than the whole flow budget
        # even when waiting for the stage children's forkserver (not counted) left it all
        ["eval.batch_size=11", f"budgets.flow={flow_budget}"],
        prefect_api_env,
    )
    assert run.wait() == 3, run.stderr  # 3: stopped by a budget
    message = run.stderr[run.stderr.index("error:") :]
    assert "budget" in message and "Traceback" not in run.stderr, message
    assert not _left_in_group(run.proc.pid), "a stage child outlived the flow budget stop"
    assert _latest(root) == latest_before
    (failed,) = _run_dirs(root) - runs_before
    status = json.loads((failed / "logs" / "run_status.json").read_text())
    assert status["status"] == "failed" and "budget" in status["error"], status
    # stopped in the middle (the evaluation computes for longer than the budget), not at the end
    assert not (failed / "eval" / "metrics.parquet").exists()


def test_two_runs_at_once_on_one_artifacts_root(reference, prefect_api_env):
    root, reference_run = reference
    runs_before = _run_dirs(root)
    settings = ["eval.batch_size=70"]  # the reference's: warm cache
    first, second = (
        Movierec(root, settings, prefect_api_env),
        Movierec(root, settings, prefect_api_env),
    )
    assert first.wait() in (0, 1), first.stderr
    assert second.wait() in (0, 1), second.stderr
    a, b = first.run_dir(), second.run_dir()
    assert a != b and {a, b} <= _run_dirs(root) - runs_before
    for run_dir in (a, b):
        _assert_status_complete(run_dir)
        assert _assert_complete_files(run_dir) == []
        pd.testing.assert_frame_equal(_metrics(run_dir), _metrics(reference_run))
    assert _latest(root) in (a.name, b.name)
    _assert_status_complete(root / "ci" / _latest(root))


def test_no_environment_value_lands_in_a_run_directory(heavy_eval_run, prefect_api_env):
    # computed from scratch with canary secrets in its environment
    root, run_dir = heavy_eval_run.root, heavy_eval_run.run_dir
    canary, started = heavy_eval_run.canary["MOVIEREC_TEST_SECRET"], heavy_eval_run.started
    env = {**prefect_api_env, **heavy_eval_run.canary}
    results = [
        p
        for p in (root / ".prefect-results").rglob("*")
        if p.is_file() and p.stat().st_mtime >= started
    ]
    assert results  # the persisted task results of this run are scanned too
    # values that name no secret appear naturally (paths under the working directory, "1", "false")
    secret_like = {
        k: v for k, v in env.items() if len(v) >= 12 and "/" not in v and not v.startswith("http")
    }
    env_names = [k for k in env if len(k) >= 4]
    for path in [*run_dir.rglob("*"), *(root / "ci" / ".eval-parts").rglob("*"), *results]:
        if not path.is_file():
            continue
        raw = path.read_bytes()
        assert canary.encode() not in raw and canary[::-1].encode() not in raw, path
        leaked = [k for k, v in secret_like.items() if v.encode() in raw]
        assert not leaked, f"{path} holds the values of {leaked}"
        dumped = [k for k in env_names if f"{k}=".encode() in raw or f'"{k}":'.encode() in raw]
        assert len(dumped) < 3, f"{path} looks like an environment dump: {dumped[:10]}"


def _started_evaluation(root: Path, overrides: list[str], env: dict[str, str]) -> Movierec:
    """A `movierec run` that has reached the evaluation stage (computing: a batch size no other
    test uses)."""
    run = Movierec(root, overrides, env)
    deadline = time.monotonic() + 900  # a hang guard, not a speed target
    while not any(re.search(r"\] evaluation\s+running", line) for _, line in run.lines):
        assert run.proc.poll() is None, f"the run ended before it could be stopped:\n{run.stderr}"
        assert time.monotonic() < deadline, run.stderr
        time.sleep(0.05)
    return run


def _assert_nothing_left(run: Movierec, within: float = 30) -> None:
    """No process of the run's group and no Prefect server it started is alive (``within``
    seconds to go: SIGKILL's death signal and exit are not instantaneous)."""
    from flows.server import servers_of

    left = _still_alive(lambda: _group_members(run.proc.pid) + servers_of(run.proc.pid), within)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the run outlived it: {left}"


@pytest.fixture(scope="module")
def temporary_server_env(prefect_harness, tmp_path_factory) -> dict[str, str]:
    """Environment of a user without PREFECT_API_URL: `movierec run` starts its own temporary
    server. Its PREFECT_HOME holds a consistent copy (SQLite backup) of the session's migrated
    test database, so no server here spends ~10 s migrating a new one."""
    import sqlite3

    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    home = tmp_path_factory.mktemp("prefect-home")
    source = PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1]
    with sqlite3.connect(source) as src, sqlite3.connect(home / "prefect.db") as dst:
        src.backup(dst)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home), PYTHONPATH=str(REPO), PREFECT_SERVER_ANALYTICS_ENABLED="false"
    )
    return env


def test_ctrl_c_of_the_group_with_the_temporary_server_stops_in_seconds(
    reference, temporary_server_env
):
    """Ctrl+C in a terminal sends SIGINT to the whole process group. Without PREFECT_API_URL the
    run's temporary server is in its own session, so the run can still report its end: one line,
    exit 130, no traceback, no process left (Prefect's own temporary server died with the group
    and the run retried against it for minutes)."""
    root, _ = reference
    latest_before = _latest(root)
    run = _started_evaluation(root, ["eval.batch_size=78"], temporary_server_env)
    sent = time.monotonic()
    os.killpg(run.proc.pid, signal.SIGINT)
    assert run.wait() == 130, run.stderr
    took = time.monotonic() - sent
    assert "interrupted; finished stages stay cached, re-run to resume" in run.stderr
    assert "Traceback" not in run.stderr and "Error" not in run.stderr, run.stderr
    assert took < 60, f"{took:.0f} s from Ctrl+C to exit (a hang guard; measured 3 s quiet)"
    _assert_nothing_left(run)
    assert _latest(root) == latest_before


def test_sigkill_takes_the_temporary_server_along(reference, temporary_server_env):
    """SIGKILL cannot be handled: the kernel's parent-death signal stops the run's temporary
    server (and the stage child) with it."""
    from flows.server import servers_of

    root, _ = reference
    latest_before = _latest(root)
    run = _started_evaluation(root, ["eval.batch_size=79"], temporary_server_env)
    assert servers_of(run.proc.pid), "the run has no temporary server of its own"
    os.kill(run.proc.pid, signal.SIGKILL)  # the CLI process only
    assert run.wait() == -signal.SIGKILL
    _assert_nothing_left(run)
    assert _latest(root) == latest_before


def test_sigterm_stops_the_run_with_one_line_and_exit_143(reference, temporary_server_env):
    """SIGTERM (what a service manager or `kill` sends) to the `movierec` process in the middle of
    the evaluation: it stops like Ctrl+C - one line, exit 143, the stage child and the temporary
    server gone, LATEST untouched - instead of dying silently."""
    root, _ = reference
    latest_before = _latest(root)
    run = _started_evaluation(root, ["eval.batch_size=77"], temporary_server_env)
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 143, run.stderr
    assert "terminated (SIGTERM); finished stages stay cached, re-run to resume" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    _assert_nothing_left(run)
    assert _latest(root) == latest_before
