"""Shared fixtures: the real MovieLens sample, and one Prefect test harness per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
ML_LATEST_SMALL = Path(
    os.environ.get("MOVIEREC_ML_LATEST_SMALL", REPO_ROOT.parent / "shared" / "data" / "ml-latest-small")
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

    with prefect_test_harness():
        yield


@pytest.fixture(scope="session")
def prefect_api_env(prefect_harness) -> dict[str, str]:
    """Environment for a `movierec` subprocess that records to the session's test server."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@pytest.fixture(scope="session")
def ml_pipeline_run(prefect_harness, ml_small_dir, tmp_path_factory) -> dict:
    """One whole pipeline run on the real ml-latest-small data, shared by every test of the session.

    Returns the flow's summary (``run_dir``, ``stage_table``, ``headline``, ...) plus
    ``artifacts_root``. Tests must not modify files inside ``run_dir`` (copy it first).
    """
    from flows.pipeline import recommender_pipeline

    root = tmp_path_factory.mktemp("ml-artifacts")
    summary = recommender_pipeline(
        profile="ml-latest-small",
        data_dir=str(ml_small_dir),
        artifacts_root=str(root),
        # fewer pictures and scenarios than the profile: tests/tasks/test_case_studies.py and
        # test_edge_cases.py run the full stages on a copy of this run
        overrides=[
            # a tiny search without EASE (its real-data path is tested in tests/tasks): these tests
            # are about the pipeline, not the search
            "tuning.n_trials=2",
            "tuning.max_validation_users=200",
            'tuning.models=["als","item_knn"]',
            'tuning.baselines=["popularity","item_knn","als"]',
            "case_studies.n_cases=8",
            'edge_cases.only=["duplicate_ratings","single_rating_user","unknown_genre_or_provider",'
            '"identical_scores_order","tiny_time_budget","memory_budget_respected"]',
        ],
    )
    return {**summary, "artifacts_root": str(root)}
