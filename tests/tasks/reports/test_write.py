"""Tests for tasks/reports/_write.py: the written reports link to the written figures, by
run-relative paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.charts import FIGURE_FILES, write_all_charts
from tasks.reports import REPORT_FILES, write_offline_reports
from tests.tasks.reports.run_files import CONTEXT, MODELS, N_USERS, POLICY, VALIDATION, gates_for


def test_written_reports_link_to_the_written_figures(tables, tmp_path):
    metrics, paired, tuning = tables
    gates = gates_for(metrics, paired)
    recall10 = {m: np.linspace(0, 0.2, N_USERS) for m in MODELS}
    figures = write_all_charts(tmp_path, metrics, tuning, recall10, paired=paired, policy=POLICY,
                               validation=pd.DataFrame(VALIDATION))  # fmt: skip
    (tmp_path / "figures/tuning_history.png").write_bytes(
        (tmp_path / FIGURE_FILES["metric_vs_k"]).read_bytes()
    )
    figures["tuning_history"] = tmp_path / "figures/tuning_history.png"
    refs = write_offline_reports(tmp_path, metrics, paired, tuning, POLICY, gates, CONTEXT, figures)
    assert set(refs) == set(REPORT_FILES)
    for name, ref in refs.items():
        assert ref.path == tmp_path / REPORT_FILES[name] and len(ref.fingerprint) == 64
    text = refs["offline_metrics"].path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(
        f"../{rel}" for rel in [*FIGURE_FILES.values(), "figures/tuning_history.png"]
    )
    for report in refs.values():
        for link in re.findall(r"\]\(([^)]+)\)", report.path.read_text(encoding="utf-8")):
            assert (report.path.parent / link).resolve().is_file(), link
    # Without an explicit mapping the figures on disk are found; a deleted one is reported missing.
    (tmp_path / FIGURE_FILES["alpha_sweep"]).unlink()
    again = write_offline_reports(tmp_path, metrics, paired, tuning, POLICY, gates, CONTEXT)
    text = again["offline_metrics"].path.read_text(encoding="utf-8")
    assert "../figures/models_on_test.png" in text and "../figures/tuning_history.png" in text
    assert "../figures/alpha_sweep.png" not in text
    assert "Figure Validation Recall@10 vs content weight per cohort: *missing*" in text


def test_figure_links_are_run_relative_when_the_run_dir_is_relative(tmp_path, monkeypatch):
    from tasks.reports._write import _figure_relpaths

    monkeypatch.chdir(tmp_path)
    run_dir = Path("artifacts/demo/run-1")  # `make demo` gives a relative run directory
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "figures/alpha_sweep.png").write_bytes(b"png")
    figures = {
        "relative_to_cwd": run_dir / "figures/alpha_sweep.png",
        "absolute": (run_dir / "figures/alpha_sweep.png").resolve(),
        "run_relative": Path("figures/alpha_sweep.png"),
    }
    assert set(_figure_relpaths(run_dir, figures).values()) == {"figures/alpha_sweep.png"}
