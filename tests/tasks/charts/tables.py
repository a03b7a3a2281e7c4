"""Shared by the tasks.charts tests: real metric tables - per-user metrics from tasks.metrics on
random top-50 lists of 80 users over 300 items, where each model hits a different share of the
relevant items - the validation grid and figures as the tuning stage writes them, and checks of a
written PNG and of the legends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tasks.charts import DPI
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
