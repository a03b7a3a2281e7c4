"""Tests for tasks/charts/_write.py: every figure of FIGURE_FILES is written."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tasks.charts import FIGURE_FILES, write_all_charts
from tests.tasks.charts.tables import POLICY, VALIDATION, build_tuning


def test_write_all_charts_writes_every_figure(tables, tmp_path):
    metrics, paired, recall10 = tables
    paths = write_all_charts(tmp_path, metrics, build_tuning(), recall10, paired=paired, policy=POLICY,
                             validation=VALIDATION, min_lift=0.05, confidence=0.95)  # fmt: skip
    assert set(paths) == set(FIGURE_FILES) and "models_on_test" in paths
    for name, path in paths.items():
        assert path == tmp_path / FIGURE_FILES[name]
        with Image.open(path) as image:
            image.load()
            assert image.size[0] > 500 and image.size[1] > 400
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(
        Path(rel).name for rel in FIGURE_FILES.values()
    )
    again = write_all_charts(tmp_path / "b", metrics, None, recall10)  # no grid: a placeholder
    assert again["alpha_sweep"].is_file()
