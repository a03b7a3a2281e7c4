"""Fixtures of the tasks.reports tests: the run's tables and its offline_metrics.md (see
tests/tasks/reports/run_files.py)."""

from __future__ import annotations

import pytest

from tasks.charts import FIGURE_FILES
from tasks.reports import offline_metrics_report
from tests.tasks.reports.run_files import CONTEXT, POLICY, build, gates_for


@pytest.fixture(scope="module")
def tables():
    return build()


@pytest.fixture(scope="module")
def report(tables):
    metrics, paired, tuning = tables
    return offline_metrics_report(
        metrics, paired, tuning, POLICY, gates_for(metrics, paired), CONTEXT, dict(FIGURE_FILES)
    )
