"""Tests for tasks/reports/_content_eval.py: what content adds to the tuned policy."""

from __future__ import annotations

from tasks.reports import EVALUATION_DEFINITIONS, content_eval_report, format_diff, format_metric
from tests.tasks.reports.run_files import CONTEXT, POLICY, row_of


def test_content_eval_report(tables):
    metrics, paired, tuning = tables
    content = content_eval_report(metrics, paired, POLICY, tuning, CONTEXT)
    cells = row_of(content, "light", after="## What content adds to the tuned policy (validation)")
    at = tuning.query("cohort == 'light'").set_index("alpha")["recall@10"]
    assert cells[1:3] == ["0.4", "0.4"]  # chosen weight, seed weight
    assert cells[3:6] == [format_metric(at[0.4]), format_metric(at[0.0]), format_metric(at[1.0])]
    assert cells[6] == format_diff(at[0.4] - at[0.0])
    assert EVALUATION_DEFINITIONS in content
