"""Reports: the summary comes first and its numbers are the tables' numbers (test beside
validation), the selection is said in one sentence from policy.json, a win, a tie and a loss
against the best baseline are each written plainly, descriptions come from the run's files, every
4-decimal number comes from an input, prose has no variable names, what is missing is said, and
the figure links resolve.

Fixture: per-user metric arrays for 60 users (cohorts cold / light / medium / heavy, or without
cold) summarised by tasks.metrics into the real long and paired tables, and the tuning stage's
files (policy.json, baselines.json, validation_metrics.csv, trials.csv, tuning_results.csv) as
small dicts and frames.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.charts import FIGURE_FILES, lift_over_best_baseline, summary_order, write_all_charts
from tasks.metrics import metrics_long_table, paired_tests_table
from tasks.profile import EvalSection, SplitSection
from tasks.reports import (
    EVALUATION_DEFINITIONS,
    REPORT_FILES,
    cf_eval_report,
    content_eval_report,
    describe_cf,
    describe_models,
    format_any,
    format_diff,
    format_estimate,
    format_metric,
    format_p,
    offline_metrics_report,
    verdict_text,
    write_offline_reports,
)

#: model -> level of its per-user metrics (the tuned policy best, EASE next)
MODELS = {
    "tuned_policy": 0.1,
    "ease": 0.08,
    "item_knn": 0.07,
    "als": 0.06,
    "popularity": 0.04,
    "content": 0.01,
    "seed_policy": 0.065,
}
N_USERS, KS = 60, (5, 10, 20, 50)
METRICS = ("recall", "precision", "map", "ndcg", "mrr", "hit_rate")


def build(cohorts=("cold", "light", "medium", "heavy"), seed=0, models=MODELS):
    rng = np.random.default_rng(seed)
    labels = np.array([cohorts[i % len(cohorts)] for i in range(N_USERS)])
    tables, per_user = [], {}
    for j, (model, level) in enumerate(models.items()):
        values = {}
        for k in KS:
            scale = level * (k / 10) ** 0.7
            for metric in METRICS:
                values[metric, k] = np.clip(
                    rng.exponential(scale, N_USERS) * (rng.random(N_USERS) < 0.6), 0, 1
                )
            values["user_coverage", k] = (rng.random(N_USERS) < 0.97).astype(float)
            values["novelty", k] = rng.uniform(5.0, 9.0, N_USERS) + j / 3
            values["intra_list_diversity", k] = rng.uniform(0.4, 0.9, N_USERS)
        per_user[model] = values
        recs = rng.integers(0, 400, (N_USERS, 1)) + np.arange(50)
        tables.append(
            metrics_long_table(model, labels, values, n_boot=25, seed=2, recs=recs, n_items=500)
        )
    keys = [(m, 10) for m in ("recall", "map", "ndcg")] + [("recall", 5)]
    paired = pd.concat(
        [
            paired_tests_table(
                "tuned_policy",
                base,
                labels,
                {key: per_user["tuned_policy"][key] for key in keys},
                {key: per_user[base][key] for key in keys},
                n_boot=25,
            )  # fmt: skip
            for base in models
            if base != "tuned_policy"
        ],
        ignore_index=True,
    )
    tuning = pd.DataFrame(
        [
            {
                "split": "validation",
                "alpha": alpha,
                "cohort": cohort,
                "users_eval": 11 + i,
                "users_skipped": 0,
                "mean_cand": 733.25,
                "candidate_recall": 0.6125 + 0.01 * i,
                "recall@10": 0.0413 + 0.01 * i + 0.07 * alpha * (1 - alpha),
                "map@10": 0.0213 + alpha / 97,
                "ndcg@10": 0.0377 + alpha / 89,
                "alpha_time_sec": 2.5,
                "alpha_timed_out": False,
            }  # fmt: skip
            for i, cohort in enumerate(("all", *cohorts))
            for alpha in (0.0, 0.2, 0.4, 0.6, 1.0)
        ]
    )
    return pd.concat(tables, ignore_index=True), paired, tuning


EASE_CONFIG = {"model": "ease", "ease_lambda": 3000.0, "min_rating": 3.0, "factors": 20}
POLICY = {
    "version": 2,
    "alphas": {"cold": 0.2, "light": 0.4, "medium": 0.6, "heavy": 0.4},
    "collab": EASE_CONFIG,
    "ranking": {"alphas": {"cold": 0.2, "light": 0.4, "medium": 0.6, "heavy": 0.4}, "lambda_div": 0.0,
                "w_q": 0.0, "w_r": 0.0, "w_p": 0.0, "c_max": 1200, "n_cf_seed": 800},
    "validation": {"metric": "recall@10", "recall@10": 0.1301, "users": 56, "sampled": False},
    "search": {"trials": {"policy": 18, "ease": 18, "item_knn": 18, "als": 18, "popularity": 1},
               "cut_short": False, "seconds": 43.2, "budget_seconds": 900.0, "seed": 42},
    "provenance": {
        "seed_policy": {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.8},
        "selection_rule": "per cohort, the alpha of the grid with the highest Recall@10",
        "choices": {"cold": {"tied": [0.0, 0.2]}},
    },
}  # fmt: skip
BASELINES = {
    "ease": {"config": EASE_CONFIG, "params": {"ease.lambda": 3000.0}, "trials": 18, "cut_short": False},
    "item_knn": {"config": {"model": "item_knn", "knn_k": 10, "knn_weighting": "cosine", "min_rating": 0.0},
                 "params": {"item_knn.k": 10}, "trials": 18, "cut_short": False},
    "als": {"config": {"model": "als", "factors": 174, "regularization": 0.0144, "iterations": 15,
                       "confidence": "binary", "confidence_alpha": 65.5, "min_rating": 0.0},
            "params": {"als.factors": 174}, "trials": 18, "cut_short": True},
    "popularity": {"config": None, "params": {}, "trials": 1},
}  # fmt: skip
VALIDATION = [
    {"model": m, "recall@10": r, "map@10": r / 2, "ndcg@10": r * 1.1, "users": 56, "trials": t}
    for m, r, t in [("tuned_policy", 0.1301, 18), ("ease", 0.1241, 18), ("item_knn", 0.1068, 18),
                    ("als", 0.0954, 18), ("popularity", 0.0713, 1), ("content", 0.0081, 0),
                    ("seed_policy", 0.0947, 0)]
]  # fmt: skip
TRIALS = [
    {"study": "ease", "trial": i, "state": "complete", "value": v, "recall@10": v, "map@10": v / 2,
     "ndcg@10": v, "params": json.dumps({"ease.lambda": lam}), "cached": i == 2}
    for i, (v, lam) in enumerate([(0.1062, 10000.0), (0.1241, 3000.0), (0.1241, 3000.0)])
]  # fmt: skip
CONTEXT = {
    "run_id": "20260101T000000Z-abc123",
    "profile": "ci",
    "split": SplitSection(relevance_threshold=3.5, holdout_fraction=0.25, cold_max=4),
    "eval": EvalSection(bootstrap_samples=25, confidence=0.9),
    "dataset": {"n_users": 1234, "n_items": 567, "n_test_users_with_relevant": 19523},
    "candidate_recall": {"all": 0.6543, "cold": 0.4321},
    "validation_metrics": VALIDATION,
    "baselines": BASELINES,
    "trials": TRIALS,
    "cf_roles": {"seed_policy": {"config": {"model": "als", "factors": 20, "regularization": 0.05,
                                           "iterations": 15, "confidence": "linear",
                                           "confidence_alpha": 10.0, "min_rating": 0.0}}},
    "seed_candidates": {"lambda_div": 0.25, "w_q": 0.05, "w_r": 0.03, "w_p": 0.02, "c_max": 1200,
                        "n_cf_seed": 800},
    "content_meta": {"encoder": "tfidf", "embedding_size": 384},
    "min_lift": 0.0,
}  # fmt: skip


def gates_for(metrics: pd.DataFrame, paired: pd.DataFrame, min_lift: float = 0.0) -> dict:
    from tasks.tuning import acceptance_gates

    return acceptance_gates(
        metrics, paired, min_lift=min_lift,
        baselines=[m for m in metrics["model"].unique() if m != "tuned_policy"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def tables():
    return build()


@pytest.fixture(scope="module")
def report(tables):
    metrics, paired, tuning = tables
    return offline_metrics_report(
        metrics, paired, tuning, POLICY, gates_for(metrics, paired), CONTEXT, dict(FIGURE_FILES)
    )


def row_of(text: str, first_cell: str, after: str | None = None) -> list[str]:
    """Cells of the first table row starting with ``first_cell`` (after the line ``after``)."""
    lines = text.splitlines()
    start = lines.index(after) if after else 0
    for line in lines[start:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} after {after!r}")


ESTIMATE = re.compile(r"^(-?\d+\.\d{4})(?: \[(-?\d+\.\d{4}), (-?\d+\.\d{4})\])?(?:, n=([\d,]+))?$")


def parse(cell: str) -> tuple[float, float | None, float | None, int | None]:
    match = ESTIMATE.match(cell)
    assert match, f"not a formatted estimate: {cell!r}"
    v, lo, hi, n = match.groups()
    return float(v), lo and float(lo), hi and float(hi), n and int(n.replace(",", ""))


def metric_row(metrics: pd.DataFrame, model: str, cohort: str, metric: str, k: int) -> pd.Series:
    sel = metrics[
        (metrics.model == model)
        & (metrics.cohort == cohort)
        & (metrics.metric == metric)
        & (metrics.k == k)
    ]
    assert len(sel) == 1
    return sel.iloc[0]


LABELS = {"tuned_policy": "**tuned policy**", "ease": "EASE", "item_knn": "item kNN", "als": "ALS",
          "popularity": "popularity", "content": "content", "seed_policy": "seed policy"}  # fmt: skip


def test_formatting_is_one_style():
    assert format_estimate(0.07123, 0.06501, 0.07809, 4321) == "0.0712 [0.0650, 0.0781], n=4,321"
    assert format_diff(-0.00504, -0.009, 0.0011) == "-0.0050 [-0.0090, +0.0011]"
    assert format_p(0.5) == "0.5000" and format_p(3e-7) == "3.00e-07"
    assert format_any(np.int64(7)) == "7" and format_any(np.bool_(False)) == "no"


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


def small_case(tuned: float, diff: tuple[float, float, float]):
    metrics = pd.DataFrame(
        {"model": ["tuned_policy", "ease", "popularity"], "cohort": "all", "metric": "recall", "k": 10,
         "value": [tuned, 0.075, 0.04], "ci_low": 0.0, "ci_high": 1.0, "n_users": 592}
    )  # fmt: skip
    paired = pd.DataFrame(
        {"model": "tuned_policy", "baseline": ["ease", "popularity"], "cohort": "all", "metric": "recall",
         "k": 10, "model_value": tuned, "baseline_value": [0.075, 0.04], "mean_diff": [diff[0], 0.03],
         "ci_low": [diff[1], 0.02], "ci_high": [diff[2], 0.04], "p_value": 0.01, "n_users": 592}
    )  # fmt: skip
    return metrics, paired


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


def test_descriptions_come_from_the_run_files():
    described = describe_models(POLICY, CONTEXT)
    assert described["tuned_policy"].startswith(
        "hybrid of EASE (lambda 3,000, ratings below 3 dropped) and content similarity; "
        "content weight cold 0.2, light 0.4, medium 0.6, heavy 0.4;"
    )
    assert described["tuned_policy"].endswith("(tuned on validation, 18 trials)")
    assert described["ease"].startswith("EASE, lambda 3,000, ratings below 3 dropped")
    assert (
        "ALS, 174 factors, regularization 0.0144, 15 iterations, binary confidence"
        in described["als"]
    )
    assert described["als"].endswith(
        "(tuned on validation, 18 trials, cut short by its time budget)"
    )
    assert (
        "ALS (20 factors, regularization 0.05, 15 iterations, confidence 1 + 10 x rating"
        in described["seed_policy"]
    )
    assert (
        "MMR diversity weight 0.25; boosts quality 0.05, recency 0.03, provider 0.02"
        in described["seed_policy"]
    )
    assert "tfidf embeddings, 384 dimensions" in described["content"]
    # change the record, the words follow
    other = {**BASELINES, "ease": {**BASELINES["ease"], "config": {**EASE_CONFIG, "ease_lambda": 250.0,
                                                                    "min_rating": 0.0}, "trials": 5}}  # fmt: skip
    again = describe_models(POLICY, {**CONTEXT, "baselines": other})["ease"]
    assert (
        again.startswith("EASE, lambda 250, every rating counts as a positive")
        and "5 trials" in again
    )
    assert describe_cf(
        {"model": "item_knn", "knn_k": 7, "knn_weighting": "bm25", "min_rating": 4.0}
    ) == ("item kNN, 7 neighbours per film, bm25 similarity, ratings below 4 dropped")


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


def test_cf_and_content_reports(tables):
    metrics, paired, tuning = tables
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
    content = content_eval_report(metrics, paired, POLICY, tuning, CONTEXT)
    cells = row_of(content, "light", after="## What content adds to the tuned policy (validation)")
    at = tuning.query("cohort == 'light'").set_index("alpha")["recall@10"]
    assert cells[1:3] == ["0.4", "0.4"]  # chosen weight, seed weight
    assert cells[3:6] == [format_metric(at[0.4]), format_metric(at[0.0]), format_metric(at[1.0])]
    assert cells[6] == format_diff(at[0.4] - at[0.0])
    assert EVALUATION_DEFINITIONS in cf and EVALUATION_DEFINITIONS in content
    empty = cf_eval_report(
        metrics[~metrics.model.isin(["ease", "item_knn", "als"])], paired, POLICY, CONTEXT
    )
    assert "nothing to report" in empty


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
    from tasks.reports import _figure_relpaths

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
