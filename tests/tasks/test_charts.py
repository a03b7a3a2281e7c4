"""Charts: every figure is a decodable PNG of the intended size, missing data is tolerated and
said, the lift is the known ratio, the lift chart draws the sign-off's gate, the models-on-test
chart orders the models as the report does, and no legend covers a bar.

Fixtures are real metric tables: per-user metrics from tasks.metrics on random top-50 lists of
80 users over 300 items, where each model hits a different share of the relevant items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tasks.charts as charts
from tasks.charts import (
    DPI,
    FIGURE_FILES,
    alpha_sweep_chart,
    beyond_accuracy_chart,
    cohort_recall_bars_chart,
    lift_chart,
    lift_over_best_baseline,
    metric_vs_k_chart,
    model_label,
    models_on_test_chart,
    policy_parts,
    recall_distribution_chart,
    summary_order,
    write_all_charts,
)
from tasks.metrics import (
    beyond_accuracy_metrics,
    metrics_long_table,
    paired_tests_table,
    ranking_metrics,
    relevance_matrix,
)

N_USERS, N_ITEMS, KS = 80, 300, (5, 10, 20, 50)
#: model -> share of each user's relevant items it puts in its top 50
MODELS = {
    "tuned_policy": 0.3,
    "ease": 0.25,
    "item_knn": 0.15,
    "als": 0.12,
    "popularity": 0.05,
    "content": 0.02,
    "seed_policy": 0.2,
}


def build_tables(cohorts=("cold", "light", "medium", "heavy"), seed=0):
    """(metrics, paired, per-user Recall@10) for MODELS."""
    rng = np.random.default_rng(seed)
    labels = np.array([cohorts[i % len(cohorts)] for i in range(N_USERS)])
    users = np.repeat(np.arange(N_USERS), 5)
    items = np.concatenate([rng.choice(N_ITEMS, 5, replace=False) for _ in range(N_USERS)])
    relevant = relevance_matrix(users, items, N_USERS, N_ITEMS)
    embeddings = rng.normal(size=(N_ITEMS, 8))
    share = np.bincount(items, minlength=N_ITEMS) / N_USERS
    tables, per_user = [], {}
    for model, hit_share in MODELS.items():
        recs = np.empty((N_USERS, 50), dtype=np.int64)
        for u in range(N_USERS):  # tiny fixture: a loop over 80 users is clearer than tricks
            mine = items[users == u][rng.random(5) < hit_share]
            others = rng.permutation(np.setdiff1d(np.arange(N_ITEMS), mine))[: 50 - mine.size]
            recs[u] = rng.permutation(np.concatenate([mine, others]))
        values = ranking_metrics(recs, relevant, KS)
        values |= beyond_accuracy_metrics(
            recs, KS, item_user_share=share, n_train_users=N_USERS, embeddings=embeddings
        )
        per_user[model] = values
        tables.append(
            metrics_long_table(model, labels, values, n_boot=30, seed=1, recs=recs, n_items=N_ITEMS)
        )
    keys = [("recall", 10), ("map", 10), ("ndcg", 10)]
    paired = pd.concat(
        [
            paired_tests_table(
                "tuned_policy",
                base,
                labels,
                {key: per_user["tuned_policy"][key] for key in keys},
                {key: per_user[base][key] for key in keys},
                n_boot=30,
            )  # fmt: skip
            for base in MODELS
            if base != "tuned_policy"
        ],
        ignore_index=True,
    )
    recall10 = {model: values["recall", 10] for model, values in per_user.items()}
    return pd.concat(tables, ignore_index=True), paired, recall10


def build_tuning(cohorts=("all", "cold", "light", "medium", "heavy")):
    """The content-weight grid as tuning/tuning_results.csv writes it (split = validation)."""
    rows = []
    for i, cohort in enumerate(cohorts):
        for alpha in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            timed_out = cohort == "heavy" and alpha == 1.0
            rows.append(
                {
                    "split": "validation",
                    "alpha": alpha,
                    "cohort": cohort,
                    "users_eval": 20,
                    "users_skipped": 0,
                    "mean_cand": 812.5,
                    "candidate_recall": 0.7,
                    "recall@10": np.nan
                    if timed_out
                    else 0.05 + 0.02 * i + 0.1 * alpha * (1 - alpha),
                    "map@10": 0.02 + 0.01 * alpha,
                    "ndcg@10": 0.03 + 0.01 * alpha,
                    "alpha_time_sec": 1.25,
                    "alpha_timed_out": timed_out,
                }
            )
    return pd.DataFrame(rows)


VALIDATION = pd.DataFrame(
    {
        "model": list(MODELS),
        "recall@10": [0.13, 0.124, 0.107, 0.095, 0.071, 0.008, 0.095],
        "map@10": [0.072, 0.065, 0.049, 0.042, 0.040, 0.003, 0.040],
        "ndcg@10": [0.132, 0.122, 0.099, 0.087, 0.078, 0.008, 0.078],
        "users": 560,
    }
)
POLICY = {
    "alphas": {"cold": 0.2, "light": 0.4, "medium": 0.6, "heavy": 0.4},
    "validation": {"metric": "recall@10"},
    "provenance": {"cold": "alpha 0.2: ..."},
}


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
    original = charts._save

    def spy(fig, path):
        FigureCanvasAgg(fig).draw()
        figures.append(fig)
        out = Path(path)
        fig.savefig(out, format="png", dpi=DPI)  # a copy of the figure before it is cleared
        return out

    monkeypatch.setattr(charts, "_save", spy)
    yield figures
    monkeypatch.setattr(charts, "_save", original)


def assert_png(path: Path, width_in: float, height_in: float) -> None:
    assert path.is_file() and path.stat().st_size > 5_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()  # decodes the pixels, not only the header
        width, height = image.size
    assert abs(width - width_in * DPI) <= 2 and abs(height - height_in * DPI) <= 2
    assert not list(path.parent.glob(".*.tmp-*")), "a temporary file was left behind"


def legends_hide_no_bar(fig) -> None:
    """No legend's box overlaps a bar (a Rectangle patch of any axes)."""
    from matplotlib.patches import Rectangle

    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend()]]
    assert legends, "the figure has no legend"
    bars = [
        p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle) and p.get_width() != 0
    ]
    assert bars
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for bar in bars:
            extent = bar.get_window_extent(renderer)
            if extent.width > 0 and extent.height > 0:
                assert not box.overlaps(extent), f"legend covers a bar at {extent}"


def test_summary_order_is_policy_first_then_test_recall():
    metrics, _, _ = build_tables()
    order = summary_order(metrics)
    recall = metrics.query("cohort == 'all' and metric == 'recall' and k == 10").set_index("model")
    assert order[0] == "tuned_policy" and set(order) == set(MODELS)
    values = recall.loc[order[1:], "value"].to_numpy()
    assert np.all(np.diff(values) <= 0)
    assert model_label("item_knn") == "item kNN" and model_label("new_model") == "new_model"


def test_models_on_test_chart(tables, tmp_path, drawn):
    metrics, _, _ = tables
    assert_png(
        models_on_test_chart(metrics, tmp_path / "m.png", VALIDATION, confidence=0.95), 13.0, 5.5
    )
    fig = drawn[-1]
    rec = fig.axes[0]
    labels = [t.get_text() for t in rec.get_yticklabels()]
    assert labels == [model_label(m) for m in summary_order(metrics)]  # the report's order
    # the validation diamonds sit at the validation values of the table
    from matplotlib.collections import PathCollection

    (scatter,) = [c for c in rec.collections if isinstance(c, PathCollection)]
    diamonds = scatter.get_offsets()
    by_model = dict(zip(VALIDATION["model"], VALIDATION["recall@10"], strict=True))
    assert sorted(np.round(diamonds[:, 0], 6)) == sorted(round(by_model[m], 6) for m in MODELS)
    legends_hide_no_bar(fig)
    # without validation figures: bars only, and the chart says so
    assert_png(models_on_test_chart(metrics, tmp_path / "m2.png"), 13.0, 5.5)
    assert "No validation figures" in drawn[-1].legends[0].get_title().get_text()
    none = metrics.loc[metrics["cohort"] != "all"]
    assert_png(models_on_test_chart(none, tmp_path / "m3.png"), 8.0, 4.5)  # placeholder


def test_metric_vs_k_chart(tables, tmp_path):
    metrics, _, _ = tables
    assert_png(metric_vs_k_chart(metrics, tmp_path / "k.png"), 9.0, 5.5)
    assert_png(metric_vs_k_chart(metrics, tmp_path / "ndcg_light.png", "ndcg", "light"), 9.0, 5.5)


def test_metric_vs_k_chart_for_an_absent_cohort_says_so(tables_without_cold, tmp_path):
    metrics, _, _ = tables_without_cold
    assert_png(metric_vs_k_chart(metrics, tmp_path / "cold.png", cohort="cold"), 8.0, 4.5)


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_cohort_recall_bars_chart(which, request, tmp_path):
    metrics, _, _ = request.getfixturevalue(which)
    assert_png(cohort_recall_bars_chart(metrics, tmp_path / "c.png"), 10.0, 5.5)


def test_alpha_sweep_chart_draws_the_validation_grid_only(tmp_path, drawn):
    tuning = build_tuning()
    test_rows = tuning.assign(split="test", **{"recall@10": 0.9})  # must never be drawn
    out = alpha_sweep_chart(pd.concat([tuning, test_rows]), tmp_path / "a.png", chosen=POLICY,
                            configuration="EASE, lambda 100, every rating counts as a positive")  # fmt: skip
    assert_png(out, 9.5, 5.5)
    ax = drawn[-1].axes[0]
    drawn_values = np.concatenate([line.get_ydata() for line in ax.get_lines()])
    assert np.nanmax(drawn_values) < 0.9
    assert "validation" in ax.get_title() and "EASE, lambda 100" in ax.get_title()
    stars = [c for c in ax.collections if c.get_offsets().shape[0] == 1 and c.get_sizes()[0] == 260]
    assert len(stars) == 4  # one chosen alpha per cohort (all users has none)
    without_cold = build_tuning(cohorts=("light", "medium", "heavy")).drop(
        columns="alpha_timed_out"
    )
    assert_png(alpha_sweep_chart(without_cold, tmp_path / "b.png", chosen=POLICY), 9.5, 5.5)
    only_test = test_rows
    assert_png(alpha_sweep_chart(only_test, tmp_path / "c.png", chosen=POLICY), 8.0, 4.5)


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_beyond_accuracy_chart(which, request, tmp_path, drawn):
    metrics, _, _ = request.getfixturevalue(which)
    assert_png(beyond_accuracy_chart(metrics, tmp_path / "b.png"), 13.0, 5.0)
    legends_hide_no_bar(drawn[-1])
    no_novelty = metrics.loc[metrics["metric"] != "novelty"]
    assert_png(beyond_accuracy_chart(no_novelty, tmp_path / "b2.png"), 13.0, 5.0)


def test_recall_distribution_chart(tables, tmp_path):
    _, _, recall10 = tables
    assert_png(recall_distribution_chart(recall10, tmp_path / "d.png"), 12.0, 5.0)
    assert_png(recall_distribution_chart({}, tmp_path / "empty.png"), 8.0, 4.5)
    with pytest.raises(ValueError, match="outside"):
        recall_distribution_chart({"ease": np.array([0.1, np.nan])}, tmp_path / "bad.png")


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_lift_chart(which, request, tmp_path, drawn):
    metrics, paired, _ = request.getfixturevalue(which)
    assert_png(lift_chart(metrics, tmp_path / "l.png", paired=paired, min_lift=0.05), 10.0, 5.5)
    legends_hide_no_bar(drawn[-1])
    assert_png(lift_chart(metrics, tmp_path / "l2.png"), 10.0, 5.5)  # no paired tests: no bars
    absent = metrics.loc[metrics["model"] != "tuned_policy"]
    assert_png(lift_chart(absent, tmp_path / "l3.png"), 8.0, 4.5)  # placeholder says why


@pytest.mark.parametrize("min_lift", [0.0, 0.05])
def test_lift_chart_draws_the_signoff_gate(tables, tmp_path, drawn, min_lift):
    """The dashed gate is at 100 * min_lift (the sign-off's value, 0 by default), over the
    all-users bar only, and the legend names that number."""
    from matplotlib.collections import LineCollection

    metrics, paired, _ = tables
    lift_chart(metrics, tmp_path / "l.png", paired=paired, min_lift=min_lift)
    ax = drawn[-1].axes[0]
    gates = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = [
        seg for c in gates for seg in c.get_segments() if np.allclose(seg[:, 1], 100 * min_lift)
    ]
    assert len(segments) == 1 and abs(segments[0][:, 0].mean()) < 1e-9  # centred on bar 0 = all
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"lift >= {100 * min_lift:g}%" in t for t in texts), texts


def test_lift_is_the_ratio_to_the_best_baseline_with_the_paired_interval():
    metrics = pd.DataFrame(
        {
            "model": ["tuned_policy", "popularity", "ease", "tuned_policy", "ease"],
            "cohort": ["all", "all", "all", "light", "light"],
            "metric": "recall",
            "k": 10,
            "value": [0.12, 0.05, 0.10, 0.08, 0.0],
            "ci_low": 0.0,
            "ci_high": 1.0,
            "n_users": [40, 40, 40, 10, 10],
        }
    )
    paired = pd.DataFrame(
        {
            "model": ["tuned_policy"],
            "baseline": ["ease"],
            "cohort": ["all"],
            "metric": ["recall"],
            "k": [10],
            "baseline_value": [0.10],
            "mean_diff": [0.02],
            "ci_low": [-0.01],
            "ci_high": [0.05],
            "p_value": [0.03],
            "wilcoxon_p": [0.02],
        }
    )
    lift = lift_over_best_baseline(metrics, paired).set_index("cohort")
    assert lift.loc["all", "best_baseline"] == "ease"
    assert lift.loc["all", "lift_pct"] == pytest.approx(20.0)
    assert lift.loc["all", ["ci_low_pct", "ci_high_pct"]].tolist() == pytest.approx([-10.0, 50.0])
    assert lift.loc["all", ["mean_diff", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [0.02, -0.01, 0.05]
    )
    assert lift.loc["all", "p_value"] == 0.03
    assert np.isnan(lift.loc["light", "lift_pct"])  # best baseline scores 0: undefined, not inf
    assert np.isnan(lift.loc["light", "ci_low_pct"])  # no paired row for light


def test_missing_columns_are_named(tables, tmp_path):
    metrics, _, _ = tables
    with pytest.raises(ValueError, match="ci_high"):
        metric_vs_k_chart(metrics.drop(columns="ci_high"), tmp_path / "x.png")
    with pytest.raises(ValueError, match="recall@10"):
        alpha_sweep_chart(build_tuning().drop(columns="recall@10"), tmp_path / "y.png")
    assert not (tmp_path / "x.png").exists()


def test_policy_parts_rejects_a_non_number():
    with pytest.raises(ValueError, match="cold"):
        policy_parts({"cold": "high"})


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
