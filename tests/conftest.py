"""Shared fixtures: the real MovieLens sample, and one Prefect test harness per session."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: One inventory validation cache for the flow tests' runs (and their `movierec` subprocesses),
#: shared by the xdist workers of one ``make test`` (entries are written atomically and keyed by
#: content): runs of different artifacts roots write many identical files. Unset for tests/tasks,
#: whose inventory tests check where the cache lives and what it holds. Named after the
#: controller's pid (an xdist worker is its child) and removed by it at session end.
_SHARED_CACHE = Path(tempfile.gettempdir()) / (
    f"movierec-test-validation-cache-{os.getppid() if os.environ.get('PYTEST_XDIST_WORKER') else os.getpid()}"
)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    if "tests/flows/" in str(item.path):
        _SHARED_CACHE.mkdir(exist_ok=True)
        os.environ["MOVIEREC_VALIDATION_CACHE"] = str(_SHARED_CACHE)
    else:
        os.environ.pop("MOVIEREC_VALIDATION_CACHE", None)


def pytest_sessionfinish(session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        shutil.rmtree(_SHARED_CACHE, ignore_errors=True)


#: Costly session fixtures (and the fixtures built on them): under ``make test`` (pytest-xdist,
#: ``--dist loadfile``) the test files that use one of them run in one worker, so it is built once.
SHARED_FIXTURES = {
    "prefect_server": ("prefect_server", "deployment_runs"),
    "ml_ranking_run": ("ml_ranking_run", "real_context", "inventoried_run", "run_view"),
    "heavy_eval_run": ("heavy_eval_run", "ci_pipeline_run"),
}


def shared_fixture_of(path: Path) -> str | None:
    """The first :data:`SHARED_FIXTURES` group whose fixture names appear in the file ``path``."""
    import re

    text = path.read_text(encoding="utf-8") if path.suffix == ".py" and path.exists() else ""
    for group, names in SHARED_FIXTURES.items():
        if any(re.search(rf"\b{name}\b", text) for name in names):
            return group
    return None


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` where the files sharing a costly session fixture are one scope.

    (xdist's ``loadgroup`` marks do not reach the scheduler under pytest 9: xdist rewrites
    ``item._nodeid``, which pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return shared_fixture_of(config.rootpath / path) or path

    return SharedFixtureScheduling(config, log)


ML_LATEST_SMALL = Path(
    os.environ.get(
        "MOVIEREC_ML_LATEST_SMALL", REPO_ROOT.parent / "shared" / "data" / "ml-latest-small"
    )
)


@pytest.fixture(scope="session")
def ml_small_dir() -> Path:
    """The real ml-latest-small folder (../shared/data beside the checkout); skip when absent."""
    if not (ML_LATEST_SMALL / "ratings.csv").exists():
        pytest.skip(
            f"real MovieLens data not found at {ML_LATEST_SMALL}: these tests need ../shared/data/"
            "ml-latest-small beside the checkout (or MOVIEREC_ML_LATEST_SMALL=PATH)"
        )
    return ML_LATEST_SMALL


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect server (SQLite) for every flow test of the session (~7 s once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=600):
        yield


@pytest.fixture(scope="session")
def prefect_api_env(prefect_harness) -> dict[str, str]:
    """Environment for a `movierec` subprocess that records to the session's test server."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


#: Profile overrides of the shared run: two trials per study on a 200-user validation sample and
#: 200 bootstrap samples keep it short (measured 42 s of stage time on 2 busy cores).
RUN_OVERRIDES = [
    "tuning.n_trials=2",
    "tuning.max_validation_users=200",
    "eval.bootstrap_samples=200",
]


@pytest.fixture(scope="session")
def ml_ranking_run(ml_small_dir, tmp_path_factory) -> dict:
    """One run on the real ml-latest-small data up to ``evaluation`` (reports off), built once.

    The stage cores in pipeline order (ingest, split, features, tuning, collaborative,
    candidates, evaluation) with ``load_profile("ml-latest-small", RUN_OVERRIDES)``. Returns
    ``run_dir`` (Path), ``profile``, ``facts`` (stage -> facts) and ``seconds`` (stage -> wall
    seconds). Skipped, with the reason, when ../shared/data/ml-latest-small is absent
    (``ml_small_dir``). Tests must not modify files inside ``run_dir`` (copy it first).
    """
    from tasks.candidates import candidates_core
    from tasks.collaborative import collab_core
    from tasks.content import features_core
    from tasks.evaluation import evaluation_core
    from tasks.ingest import ingest_core
    from tasks.io import new_run_dir, write_text
    from tasks.profile import load_profile
    from tasks.split import split_core
    from tasks.tuning import tuning_core

    prof = load_profile("ml-latest-small", RUN_OVERRIDES, environ={})
    run = new_run_dir(tmp_path_factory.mktemp("ranking-run"), prof.name)
    write_text(prof.to_toml(), run, "profile.toml")
    rd = str(run)
    seed = prof.run.seed
    facts: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    def stage(name, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 2)
        facts[name] = out.get("facts", {})
        return out["artifacts"]

    ing = stage("ingest", ingest_core, prof, str(ml_small_dir), rd)
    spl = stage("split", split_core, str(ing["ratings"].path), prof.split, seed, rd)
    feat = stage(
        "features",
        features_core,
        str(ing["movies"].path),
        str(spl["train"].path),
        prof.content,
        seed,
        rd,
    )
    shared = {k: spl[k] for k in ("train_fit", "validation", "cohorts")}
    refs = {**feat, **shared, "movies": ing["movies"]}
    tun = stage(
        "tuning",
        tuning_core,
        rd,
        refs,
        prof.tuning,
        prof.collab,
        prof.candidates,
        prof.policy,
        prof.split,
        prof.content,
        seed,
    )
    col = stage(
        "collaborative",
        collab_core,
        str(spl["train"].path),
        str(spl["cohorts"].path),
        str(ing["movies"].path),
        str(tun["policy"].path),
        str(tun["baselines"].path),
        prof.collab,
        seed,
        rd,
    )
    stage("candidates", candidates_core, rd, prof.candidates, seed)
    split_refs = {k: spl[k] for k in ("train", "test", "cohorts", "dropped_history")}
    eval_refs = {
        **feat,
        **col,
        "policy": tun["policy"],
        "baselines": tun["baselines"],
        **split_refs,
        "movies": ing["movies"],
    }
    stage(
        "evaluation",
        evaluation_core,
        rd,
        eval_refs,
        prof.eval,
        prof.candidates,
        prof.policy,
        prof.split,
        prof.content,
        prof.signoff.min_lift,
        seed,
        reports=False,
    )
    return {"run_dir": Path(rd), "profile": prof, "facts": facts, "seconds": seconds}
