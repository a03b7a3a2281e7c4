"""Tests for tasks/reports/_cf_eval.py: the collaborative models and their searches."""

from __future__ import annotations

from tasks.reports import EVALUATION_DEFINITIONS, cf_eval_report
from tests.tasks.reports.run_files import CONTEXT, POLICY, row_of


def test_cf_eval_report(tables):
    metrics, paired, _ = tables
    cf = cf_eval_report(metrics, paired, POLICY, CONTEXT)
    names = [
        line.split("|")[1].strip()
        for line in cf.split("## Summary")[1].split("\n\n")[1].splitlines()[2:]
    ]
    assert sorted(names) == sorted(["**tuned policy**", "EASE", "item kNN", "ALS"])
    assert "the same configuration as the EASE baseline" in cf
    assert (
        "The EASE search: 3 trials (1 served from the trial cache); its best 2 distinct configurations"
        in cf
    )
    assert row_of(cf, "1", after="## The searches")[1:3] == ["ease.lambda=3,000", "0.1241"]
    assert EVALUATION_DEFINITIONS in cf
    empty = cf_eval_report(
        metrics[~metrics.model.isin(["ease", "item_knn", "als"])], paired, POLICY, CONTEXT
    )
    assert "nothing to report" in empty
