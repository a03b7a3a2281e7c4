"""Fixtures of the tasks.charts tests: the metric tables (with and without the cold cohort) and
``drawn``, every figure a chart saves (see tests/tasks/charts/tables.py for how they are built)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.charts import DPI, _alpha_sweep, _distribution, _draw, _lift, _test_metrics
from tests.tasks.charts.tables import build_tables


@pytest.fixture(scope="module")
def tables():
    return build_tables()


@pytest.fixture(scope="module")
def tables_without_cold():
    return build_tables(cohorts=("light", "medium", "heavy"), seed=3)


@pytest.fixture
def drawn(monkeypatch):
    """Every figure a chart saves, drawn on an Agg canvas and kept for inspection."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figures = []

    def spy(fig, path):
        FigureCanvasAgg(fig).draw()
        figures.append(fig)
        out = Path(path)
        fig.savefig(out, format="png", dpi=DPI)  # a copy of the figure before it is cleared
        return out

    for module in (_draw, _test_metrics, _distribution, _alpha_sweep, _lift):  # all that save
        monkeypatch.setattr(module, "_save", spy)
    return figures  # monkeypatch puts the real _save back after the test
