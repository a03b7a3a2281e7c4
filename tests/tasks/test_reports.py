"""Reports: the numbers of the input tables come back out of the markdown, every number has
its n, the definitions are DESIGN.md's, a failed gate reads FAILED, what is missing is said,
and the figure links resolve to files written beside the reports.

Fixture: per-user metric arrays for 60 users (cohorts light / medium / heavy / cold, or
without cold) summarised by tasks.metrics into the real long and paired tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.charts import FIGURE_FILES, lift_over_best_baseline, write_all_charts
from tasks.metrics import (
    BEYOND_ACCURACY_METRICS,
    RANKING_METRICS,
    metrics_long_table,
    paired_tests_table,
)
from tasks.profile import EvalSection, SplitSection
from tasks.reports import (
    EVALUATION_DEFINITIONS,
    REPORT_FILES,
    cf_eval_report,
    content_eval_report,
    format_any,
    format_estimate,
    format_metric,
    format_p,
    offline_metrics_report,
    write_offline_reports,
)

DESIGN_MD = Path(__file__).resolve().parents[3] / "shared" / "DESIGN.md"
MODELS = {
    "popularity": 0.03,
    "cf_full": 0.07,
    "cf_only": 0.065,
    "content_full": 0.04,
    "seed_policy": 0.08,
    "tuned_policy": 0.1,
}
N_USERS, KS = 60, (5, 10, 20, 50)


def build(cohorts=("cold", "light", "medium", "heavy"), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array([cohorts[i % len(cohorts)] for i in range(N_USERS)])
    tables, per_user = [], {}
    for j, (model, level) in enumerate(MODELS.items()):
        values = {}
        for k in KS:
            scale = level * (k / 10) ** 0.7
            for metric in RANKING_METRICS:
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
            for base in MODELS
            if base != "tuned_policy"
        ],
        ignore_index=True,
    )
    tuning = pd.DataFrame(
        [
            {
                "alpha": alpha,
                "cohort": cohort,
                "users_eval": int((labels == cohort).sum()),
                "users_skipped": 1,
                "mean_cand": 733.25,
                "recall@10": 0.04 + 0.01 * i + 0.07 * alpha * (1 - alpha),
                "map@10": 0.0213 + alpha / 97,
                "alpha_time_sec": 2.5,
                "alpha_timed_out": cohort == "heavy" and alpha == 1.0,
                "candidate_recall": 0.6125 + 0.01 * i,
            }  # fmt: skip
            for i, cohort in enumerate(cohorts)
            for alpha in (0.0, 0.15, 0.4, 0.6, 1.0)
        ]
    )
    return (
        pd.concat(tables, ignore_index=True),
        paired,
        tuning,
        {m: v["recall", 10] for m, v in per_user.items()},
    )


POLICY = {
    "alphas": {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.6},
    "provenance": {
        "cold": "grid argmax (0.0612 vs seed 0.0598)",
        "source": "tuning/tuning_results.csv",
    },
}
GATES = {
    "gates": [
        {"name": "lift_over_best_baseline", "description": "policy beats the best baseline by >= 5% Recall@10",
         "measured": 0.1734, "threshold": 0.05, "passed": True, "details": {"baseline": "seed_policy"}},
        {"name": "no_cohort_regression", "description": "no cohort regresses against its best baseline",
         "measured": -0.0421, "threshold": 0.0, "passed": False, "details": "medium below cf_full"},
    ],
    "all_passed": False,
}  # fmt: skip
CONTEXT = {
    "run_id": "20260101T000000Z-abc123",
    "profile": "ci",
    "split": SplitSection(relevance_threshold=3.5, holdout_fraction=0.25, cold_max=4),
    "eval": EvalSection(bootstrap_samples=25, confidence=0.9),
    "dataset": {"n_users": 1234, "n_items": 567, "n_ratings": 89012},
    "candidate_recall": {"all": 0.6543},
    "mmr_skipped_in_grid": True,
    "collab": {"model": "als", "factors": 20},
}


@pytest.fixture(scope="module")
def tables():
    return build()


@pytest.fixture(scope="module")
def report(tables):
    metrics, paired, tuning, _ = tables
    return offline_metrics_report(
        metrics, paired, tuning, POLICY, GATES, CONTEXT, dict(FIGURE_FILES)
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


def test_formatting_is_one_style():
    assert format_estimate(0.07123, 0.06501, 0.07809, 4321) == "0.0712 [0.0650, 0.0781], n=4,321"
    assert format_p(0.5) == "0.5000" and format_p(3e-7) == "3.00e-07"
    assert format_any(np.int64(7)) == "7" and format_any(np.bool_(False)) == "no"


def test_headline_numbers_are_the_tables_numbers(tables, report):
    metrics, _, _, _ = tables
    header = row_of(report, "Model", after="## Headline: all users, K=10")
    assert header[1:] == ["Recall@10 [90% CI]", "MAP@10 [90% CI]", "NDCG@10 [90% CI]", "n users"]
    for model in MODELS:
        cells = row_of(report, f"`{model}`", after="## Headline: all users, K=10")
        for cell, metric in zip(cells[1:4], ("recall", "map", "ndcg"), strict=True):
            expected = metric_row(metrics, model, "all", metric, 10)
            value, low, high, _ = parse(cell)
            assert value == pytest.approx(expected.value, abs=5e-5)
            assert (low, high) == pytest.approx((expected.ci_low, expected.ci_high), abs=5e-5)
        assert cells[4] == f"{N_USERS:,}"


def test_every_per_cohort_number_has_its_n(tables, report):
    metrics, _, _, _ = tables
    section = report.split("## Per cohort, K=10")[1].split("\n## ")[0]
    header = row_of(section, "Model", after="### Recall@10")
    assert header[1:] == ["all", "cold", "light", "medium", "heavy"]
    for metric in RANKING_METRICS:
        title = f"### {dict(recall='Recall', precision='Precision', map='MAP', ndcg='NDCG', mrr='MRR', hit_rate='HitRate')[metric]}@10"
        for model in MODELS:
            cells = row_of(section, f"`{model}`", after=title)
            for cohort, cell in zip(header[1:], cells[1:], strict=True):
                value, _, _, n = parse(cell)
                expected = metric_row(metrics, model, cohort, metric, 10)
                assert n == expected.n_users, cell
                assert value == pytest.approx(expected.value, abs=5e-5)


def test_every_four_decimal_number_comes_from_the_inputs(tables, report):
    """The honesty rule, mechanically: each 0.dddd in the report is a formatted input value."""
    metrics, paired, tuning, _ = tables
    allowed = set()
    for frame in (metrics, paired, tuning):
        for col in frame.select_dtypes("number").columns:
            allowed |= {format_metric(v) for v in frame[col]} | {format_p(v) for v in frame[col]}
    for gate in GATES["gates"]:
        allowed |= {format_any(gate["measured"]), format_any(gate["threshold"])}
    allowed |= {format_any(v) for v in CONTEXT["candidate_recall"].values()}
    allowed |= {"0.0612", "0.0598"}  # inside the provenance text of POLICY
    found = re.findall(r"(?<![\d.])-?\d+\.\d{4}(?![\d])", report)
    assert found and set(found) <= allowed, sorted(set(found) - allowed)[:10]


def test_all_k_and_beyond_accuracy_tables(tables, report):
    metrics, _, _, _ = tables
    section = report.split("## Every K, all users")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `tuned_policy` |")]
    assert [int(r.split("|")[2]) for r in rows] == list(KS)
    for line, k in zip(rows, KS, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert parse(cells[2])[0] == pytest.approx(
            metric_row(metrics, "tuned_policy", "all", "recall", k).value, abs=5e-5
        )
        assert cells[-1] == f"{N_USERS:,}"
    beyond = report.split("## Beyond accuracy, all users")[1].split("\n## ")[0]
    header = row_of(beyond, "Model")
    assert header[2:6] == ["User coverage", "Catalog coverage", "Novelty", "Intra-list diversity"]
    cells = row_of(beyond, "`popularity`")
    assert cells[1] == "5"
    coverage = metric_row(metrics, "popularity", "all", "catalog_coverage", 5).value
    assert cells[3] == format_metric(coverage)  # a count: no interval
    assert parse(cells[4])[0] == pytest.approx(
        metric_row(metrics, "popularity", "all", "novelty", 5).value, abs=5e-5
    )
    assert set(BEYOND_ACCURACY_METRICS) == {
        "user_coverage",
        "catalog_coverage",
        "novelty",
        "intra_list_diversity",
    }


def test_definitions_split_and_relevance(report):
    assert EVALUATION_DEFINITIONS in report
    if DESIGN_MD.exists():  # the constant is DESIGN.md's text, word for word
        design = DESIGN_MD.read_text(encoding="utf-8")
        section = design.split("## Evaluation definitions (write them in the report too)\n")[1]
        assert section.split("\n## ")[0].strip() == EVALUATION_DEFINITIONS.strip()
    assert "rating >= 3.5" in report
    assert "last 25% of ratings" in report
    assert "cold n_train <= 4" in report
    assert "90% bootstrap percentile intervals over users (25 resamples, seed 42)" in report
    assert "1,234 users, 567 items in the catalog, 89,012 ratings" in report
    assert "Run `20260101T000000Z-abc123` of profile `ci`." in report


def test_failed_gate_reads_failed(report):
    cells = row_of(report, "no_cohort_regression")
    assert cells[2:5] == ["-0.0421", "0", "**FAILED**"]
    assert row_of(report, "lift_over_best_baseline")[4] == "passed"
    assert "**Overall: FAILED** - failed: no_cohort_regression." in report


def test_a_failed_gate_is_not_hidden_by_all_passed(tables):
    metrics, paired, tuning, _ = tables
    gates = {**GATES, "all_passed": True}
    text = offline_metrics_report(metrics, paired, tuning, POLICY, gates, CONTEXT, {})
    assert "**FAILED**" in text and "Inconsistent input" in text
    assert "all gates passed" not in text


def test_policy_lift_paired_tuning_and_diagnostics(tables, report):
    metrics, paired, tuning, _ = tables
    cells = row_of(report, "cold", after="## Policy: content weight alpha per cohort")
    at = tuning[(tuning.cohort == "cold") & (tuning.alpha == 0.15)].iloc[0]
    assert cells[:4] == [
        "cold",
        "0.15",
        "grid argmax (0.0612 vs seed 0.0598)",
        format_metric(at["recall@10"]),
    ]
    assert cells[4] == str(at.users_eval)
    assert "- source: tuning/tuning_results.csv" in report
    lift = lift_over_best_baseline(metrics, paired).set_index("cohort")
    cells = row_of(
        report, "medium", after="## Lift of `tuned_policy` over the best baseline, Recall@10"
    )
    assert cells[2] == f"`{lift.loc['medium', 'best_baseline']}`"
    assert cells[4] == f"{lift.loc['medium', 'lift_pct']:+.1f}%"
    assert cells[-1] == f"{lift.loc['medium', 'n_users']:,}"
    first = paired[
        (paired.baseline == "popularity") & (paired.cohort == "light") & (paired.metric == "map")
    ].iloc[0]
    line = next(
        ln
        for ln in report.splitlines()
        if ln.startswith("| `tuned_policy` | `popularity` | light | MAP@10 |")
    )
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[6] == format_estimate(first.mean_diff, first.ci_low, first.ci_high)
    assert cells[7:] == [format_p(first.p_value), format_p(first.wilcoxon_p), f"{first.n_users:,}"]
    assert "Recall@5" not in report.split("## Paired tests")[1].split("\n## ")[0]  # K=10 only
    assert "MMR diversity re-ranking was skipped" in report
    assert "Grid points that hit their time budget: 1 of 20." in report
    assert "| all | 0.6543 |" in report
    assert row_of(report, "heavy", after="From the tuning results:")[1] == format_metric(
        0.6125 + 0.03
    )


def test_missing_inputs_are_reported_as_missing():
    metrics, paired, tuning, _ = build(cohorts=("light", "medium", "heavy"), seed=5)
    metrics = metrics[metrics.model != "seed_policy"]
    text = offline_metrics_report(
        metrics, None, tuning.drop(columns="alpha_timed_out"), None, None, {}, {}
    )
    assert "Cohort(s) cold: *missing*" in text
    assert "no paired-tests table was given" in text
    assert "no gates were given" in text
    assert "no policy was given" in text
    assert "Figure Recall@K vs K: *missing*" in text
    assert "Run id: *missing*; profile: *missing*." in text
    assert "Split rule, relevance rule, cohorts: *missing*" in text
    assert "Columns *missing* from the tuning results: alpha_timed_out." in text
    assert "No lift for cold: *missing*" in text
    assert "`seed_policy`" not in text  # never invented
    no_policy_model = offline_metrics_report(
        metrics[metrics.model != "tuned_policy"], paired, tuning, POLICY, GATES, CONTEXT, {}
    )
    assert "`tuned_policy`: *missing* - the metrics table has no rows for it." in no_policy_model
    with pytest.raises(ValueError, match="n_users"):
        offline_metrics_report(metrics.drop(columns="n_users"), None, None, None, None, {}, {})


def test_cf_and_content_reports_hold_only_their_model(tables):
    metrics, paired, _, _ = tables
    cf = cf_eval_report(metrics, CONTEXT, paired)
    content = content_eval_report(metrics, CONTEXT, paired)
    cells = row_of(cf, "`cf_only`", after="## Headline: all users, K=10")
    assert parse(cells[1])[0] == pytest.approx(
        metric_row(metrics, "cf_only", "all", "recall", 10).value, abs=5e-5
    )
    assert "`content_full`" not in cf and "`popularity` |" not in cf.split("## Paired tests")[0]
    assert "- factors: 20" in cf
    assert "`cf_full`" not in content
    assert "`content_only`: *missing* - the metrics table has no rows for it." in content
    assert "Model settings (profile section `[content]`):\n\n- *missing*" in content
    assert EVALUATION_DEFINITIONS in cf and EVALUATION_DEFINITIONS in content
    row = row_of(cf, "`tuned_policy`", after="## Paired tests against each baseline, K=10")
    assert row[1] in ("`cf_full`", "`cf_only`")
    empty = cf_eval_report(metrics[~metrics.model.isin(["cf_full", "cf_only"])], CONTEXT)
    assert "there is nothing to report for this model" in empty


def test_written_reports_link_to_the_written_figures(tables, tmp_path):
    metrics, paired, tuning, recall10 = tables
    figures = write_all_charts(tmp_path, metrics, tuning, recall10, paired=paired, policy=POLICY)
    refs = write_offline_reports(tmp_path, metrics, paired, tuning, POLICY, GATES, CONTEXT, figures)
    assert set(refs) == set(REPORT_FILES)
    for name, ref in refs.items():
        assert ref.path == tmp_path / REPORT_FILES[name] and len(ref.fingerprint) == 64
    text = refs["offline_metrics"].path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(f"../{rel}" for rel in FIGURE_FILES.values())
    for link in links:
        assert (refs["offline_metrics"].path.parent / link).resolve().is_file(), link
    # Without an explicit mapping the figures on disk are found; a deleted one is reported missing.
    (tmp_path / FIGURE_FILES["alpha_sweep"]).unlink()
    again = write_offline_reports(tmp_path, metrics, paired, tuning, POLICY, GATES, CONTEXT)
    text = again["offline_metrics"].path.read_text(encoding="utf-8")
    assert "../figures/metric_vs_k.png" in text and "../figures/alpha_sweep.png" not in text
    assert "Figure Recall@10 vs alpha per cohort: *missing*" in text


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
