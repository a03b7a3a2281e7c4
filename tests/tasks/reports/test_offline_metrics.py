"""Tests for tasks/reports/_offline_metrics.py: the summary comes first and its numbers are the
tables' numbers (test beside validation), the selection is said in one sentence from policy.json,
every 4-decimal number comes from an input, prose has no variable names, and what is missing is
said."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tasks.charts import lift_over_best_baseline, summary_order
from tasks.reports import (
    EVALUATION_DEFINITIONS,
    format_diff,
    format_metric,
    format_p,
    offline_metrics_report,
)
from tests.tasks.reports.run_files import (
    BASELINES,
    CONTEXT,
    LABELS,
    MODELS,
    N_USERS,
    POLICY,
    TRIALS,
    VALIDATION,
    build,
    gates_for,
    metric_row,
    parse,
    row_of,
)


def test_the_summary_comes_first(report):
    assert report.index("## Summary") < report.index("# Details")
    first_table = next(line for line in report.splitlines() if line.startswith("|"))
    assert first_table.startswith("| Model | Validation Recall@10 |")
    assert report.index("**How the tuned policy was selected:**") < report.index("# Details")


def test_summary_numbers_are_the_tables_numbers(tables, report):
    """Each test cell is the metrics table's value and interval; each validation cell is
    validation_metrics.csv's value; the rows run tuned policy first, then by test Recall@10."""
    metrics, _, _ = tables
    header = row_of(report, "Model", after="## Summary")
    assert header[1:] == [
        "Validation Recall@10", "Validation MAP@10", "Validation NDCG@10",
        "Test Recall@10 [90% CI]", "Test MAP@10 [90% CI]", "Test NDCG@10 [90% CI]",
    ]  # fmt: skip
    section = report.split("## Summary")[1].split("\n\n**How")[0]
    names = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][
        1:
    ]
    assert names == [LABELS[m] for m in summary_order(metrics)]
    validation = {r["model"]: r for r in VALIDATION}
    for model in MODELS:
        cells = row_of(report, LABELS[model], after="## Summary")
        for cell, metric in zip(cells[1:4], ("recall", "map", "ndcg"), strict=True):
            assert cell == format_metric(validation[model][f"{metric}@10"])
        for cell, metric in zip(cells[4:7], ("recall", "map", "ndcg"), strict=True):
            expected = metric_row(metrics, model, "all", metric, 10)
            value, low, high, _ = parse(cell)
            assert value == pytest.approx(expected.value, abs=5e-5)
            assert (low, high) == pytest.approx((expected.ci_low, expected.ci_high), abs=5e-5)
    assert f"Test: {N_USERS:,} users with a relevant held-out item" in report
    assert "Validation: 56 users" in report


def test_selection_is_one_sentence_from_policy_json(report):
    sentence = next(
        line for line in report.splitlines() if line.startswith("**How the tuned policy")
    )
    assert (
        "on the validation split only (each user's last 25% of training ratings, 56 users)"
        in sentence
    )
    assert "maximising Recall@10, with 18 search trials for the policy" in sentence
    assert "(EASE 18, item kNN 18, ALS 18); popularity has nothing to tune" in sentence
    assert "The search chose EASE (lambda 3,000, ratings below 3 dropped)" in sentence
    assert "content weight cold 0.2, light 0.4, medium 0.6, heavy 0.4" in sentence
    assert "MMR diversity weight 0 (pure score order); no boosts" in sentence
    assert sentence.endswith("the test set was scored once.")


def test_every_four_decimal_number_comes_from_the_inputs(tables, report):
    """The honesty rule, mechanically: each 0.dddd in the report is a formatted input value."""
    metrics, paired, tuning = tables
    allowed = set()
    for frame in (metrics, paired, tuning, pd.DataFrame(VALIDATION), pd.DataFrame(TRIALS)):
        for col in frame.select_dtypes("number").columns:
            allowed |= {format_metric(v) for v in frame[col]} | {format_p(v) for v in frame[col]}
    for gate in gates_for(metrics, paired)["gates"]:
        allowed |= {format_metric(v) for v in [gate["measured"], *gate["details"].values()]
                    if isinstance(v, float)}  # fmt: skip
    allowed |= {format_metric(v) for v in CONTEXT["candidate_recall"].values()}
    allowed |= {format_metric(0.1301)}  # policy.json validation recall
    # the validation gain of the chosen weight over weight 0 (content_eval) is a difference of two grid values
    found = re.findall(r"(?<![\d.])-?\d+\.\d{4}(?![\d])", report)
    assert found and set(found) <= allowed, sorted(set(found) - allowed)[:10]


def test_prose_has_no_variable_names_and_no_outside_files(report):
    assert "19,523 test users with a relevant held-out item" in report
    assert "1,234 users, 567 films in the catalogue" in report
    for name in (
        "n_test_users_with_relevant",
        "n_users",
        "DESIGN.md",
        "users_eval",
        "alpha_timed_out",
    ):
        assert name not in report, name
    assert EVALUATION_DEFINITIONS in report
    assert "at least 3.5 stars" in report and "last 25% of ratings" in report
    assert "90% bootstrap percentile intervals over users (25 resamples, seed 42)" in report
    assert "Run `20260101T000000Z-abc123` of profile `ci`." in report


def test_per_cohort_tables(tables, report):
    metrics, paired, tuning = tables
    section = report.split("## Per cohort, K=10")[1].split("\n## ")[0]
    header = row_of(section, "Model", after="### Recall@10 per cohort")
    assert header[1:] == [
        "all (n=60)",
        "cold (n=15)",
        "light (n=15)",
        "medium (n=15)",
        "heavy (n=15)",
    ]
    for model in MODELS:
        cells = row_of(section, LABELS[model].strip("*"), after="### MAP@10 per cohort")
        for cohort, cell in zip(
            ("all", "cold", "light", "medium", "heavy"), cells[1:], strict=True
        ):
            assert parse(cell)[0] == pytest.approx(
                metric_row(metrics, model, cohort, "map", 10).value, abs=5e-5
            )
    lift = lift_over_best_baseline(metrics, paired).set_index("cohort")
    cells = row_of(section, "medium")
    grid = tuning.query("cohort == 'medium' and alpha == 0.6").iloc[0]
    assert cells[2:4] == [
        "0.6",
        format_metric(grid["recall@10"]),
    ]  # chosen weight, its validation value
    assert cells[5] == LABELS[lift.loc["medium", "best_baseline"]].strip("*")
    assert cells[7] == format_diff(lift.loc["medium", "mean_diff"], lift.loc["medium", "ci_low"],
                                   lift.loc["medium", "ci_high"])  # fmt: skip
    assert cells[8] == f"{lift.loc['medium', 'lift_pct']:+.1f}%"


def test_alpha_grid_is_the_validation_grid(tables):
    metrics, paired, tuning = tables
    leaked = tuning.assign(split="test", **{"recall@10": 0.9876})  # must never be shown
    text = offline_metrics_report(
        metrics, paired, pd.concat([tuning, leaked]), POLICY, None, CONTEXT
    )
    section = text.split("## Content weight grid on the validation split")[1].split("\n## ")[0]
    assert "0.9876" not in section
    header = row_of(section, "Content weight alpha")
    assert header[1:] == [
        "all (n=11)",
        "cold (n=12)",
        "light (n=13)",
        "medium (n=14)",
        "heavy (n=15)",
    ]
    row = row_of(section, "0.4")
    value = tuning.query("cohort == 'light' and alpha == 0.4").iloc[0]["recall@10"]
    assert row[3] == f"**{format_metric(value)}**"  # light chose 0.4
    assert row[2] == format_metric(
        tuning.query("cohort == 'cold' and alpha == 0.4").iloc[0]["recall@10"]
    )
    assert "Weights tied with the chosen one on Recall@10: cold: 0, 0.2." in section
    assert row_of(text, "cold", after="## Candidate recall")[1:] == ["0.6225", "0.4321"]


def test_missing_inputs_are_reported_as_missing():
    metrics, paired, tuning = build(cohorts=("light", "medium", "heavy"), seed=5)
    metrics = metrics[metrics.model != "seed_policy"]
    text = offline_metrics_report(metrics, None, None, None, None, {}, {})
    assert "Cohort(s) cold: *missing*" in text
    assert "no paired-tests table was given" in text
    assert "no gates were given" in text
    assert "How the tuned policy was selected: *missing*" in text
    assert "Figure Recall@K vs K, test: *missing*" in text
    assert "Run id: *missing*; profile: *missing*." in text
    assert "Split rule, relevance rule, cohorts: *missing*" in text
    assert "the run has no tuning/tuning_results.csv" in text
    assert "seed policy" not in text.split("# Details")[0]  # never invented
    assert "whether the difference is real is *missing*" in text
    no_policy = offline_metrics_report(
        metrics[metrics.model != "tuned_policy"], paired, tuning, POLICY, None, CONTEXT, {}
    )
    assert "**No comparison with a baseline:**" in no_policy
    with pytest.raises(ValueError, match="n_users"):
        offline_metrics_report(metrics.drop(columns="n_users"), None, None, None, None, {}, {})


def test_a_run_without_ease_says_why():
    models = {m: v for m, v in MODELS.items() if m != "ease"}
    metrics, paired, tuning = build(seed=2, models=models)
    baselines = {
        **BASELINES,
        "ease": {"config": None, "skipped": "catalogue of 30,000 items is above ease_max_items"},
    }
    text = offline_metrics_report(
        metrics, paired, tuning, POLICY, None, {**CONTEXT, "baselines": baselines}
    )
    assert "| EASE |" not in text
    assert (
        "- **EASE** (`ease`): not run - catalogue of 30,000 items is above ease_max_items." in text
    )
