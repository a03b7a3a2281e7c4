"""Tests for tasks/reports/_verdict.py: a win, a tie and a loss against the best baseline are
each written plainly, and the gates in plain words."""

from __future__ import annotations

from tasks.charts import lift_over_best_baseline
from tasks.reports import format_diff, offline_metrics_report, verdict_text
from tests.tasks.reports.run_files import CONTEXT, LABELS, POLICY, gates_for, row_of, small_case


def test_a_win_is_written_with_its_paired_interval(tables, report):
    metrics, paired, _ = tables
    best = lift_over_best_baseline(metrics, paired).set_index("cohort").loc["all"]
    pair = paired.query(
        "baseline == @best.best_baseline and cohort == 'all' and metric == 'recall' and k == 10"
    ).iloc[0]
    expected = format_diff(pair.mean_diff, pair.ci_low, pair.ci_high)
    verdict = next(line for line in report.splitlines() if line.startswith("On test (Recall@10"))
    assert f"a paired difference of {expected} (90% CI)" in verdict
    assert f"{best.lift_pct:+.1f}%" in verdict
    verb = "beats" if pair.ci_low > 0 else "does not beat"
    assert f"**The tuned policy {verb} the best baseline" in verdict


def test_a_loss_is_written_plainly():
    metrics, paired = small_case(0.0700, (-0.0050, -0.0090, -0.0010))
    gates = gates_for(metrics, paired)
    text = verdict_text(metrics, paired, gates, CONTEXT)
    assert "the tuned policy scores 0.0700 and the best baseline, EASE, 0.0750 (lift -6.7%)" in text
    assert "a paired difference of -0.0050 [-0.0090, -0.0010] (90% CI)" in text
    assert "**The tuned policy loses to the best baseline, EASE**" in text
    assert "EASE alone recommends better" in text
    report = offline_metrics_report(metrics, paired, None, POLICY, gates, CONTEXT)
    assert text in report
    assert "**2 of 2 passed**" not in report
    assert "failed: lift_over_best_baseline, significantly_better_than_best_baseline" in report
    assert row_of(report, "all users: Recall@10 lift over the best baseline (EASE)")[1:4] == [
        "-6.7%", "at least 0%", "**FAILED**",
    ]  # fmt: skip


def test_a_tie_is_written_plainly():
    metrics, paired = small_case(0.0740, (-0.0010, -0.0060, 0.0040))
    text = verdict_text(metrics, paired, gates_for(metrics, paired), CONTEXT)
    assert "**The tuned policy does not beat the best baseline, EASE**" in text
    assert "the two are tied on this data (it is lower, but not significantly)" in text
    metrics, paired = small_case(0.0780, (0.0030, -0.0010, 0.0070))
    text = verdict_text(metrics, paired, gates_for(metrics, paired), CONTEXT)
    assert "tied on this data." in text and "lower" not in text


def test_gates_in_plain_words(tables, report):
    metrics, paired, _ = tables
    gates = gates_for(metrics, paired)
    rows = report.split("## Acceptance gates")[1].split("\n## ")[0]
    for gate in gates["gates"]:
        assert f"`{gate['name']}`" in rows
    cold = next(g for g in gates["gates"] if g["name"] == "no_cohort_worse_cold")
    cells = row_of(report, f"cold users: not significantly worse than their best baseline "
                           f"({LABELS[cold['details']['best_baseline']].strip('*')})")  # fmt: skip
    d = cold["details"]
    assert cells[1] == format_diff(cold["measured"], d["ci_low"], d["ci_high"])
    assert cells[3] == ("passed" if cold["passed"] else "**FAILED**")
