"""Hand-made run directories for the inventory tests: a tiny run with one file of several kinds,
and a run holding one file of each kind the tuning / collaborative / evaluation stages write."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_files(run_dir: Path) -> set[str]:
    """Every regular file and symbolic link under run_dir, relative, not following links."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(run_dir):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), run_dir))
    return out


def tiny_run(root: Path) -> Path:
    """A small run directory with one file of several kinds."""
    from PIL import Image

    run_dir = root / "tiny" / "20260101T000000Z-abc123"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "reports").mkdir()
    (run_dir / "eval").mkdir()
    Image.new("RGB", (8, 6), "white").save(run_dir / "figures/chart.png")
    (run_dir / "reports/report.md").write_text("# Report\n\n![chart](../figures/chart.png)\n")
    gates = {"gates": [], "all_passed": True, "best_baseline": "ease", "min_lift": 0.0}
    (run_dir / "eval/gates.json").write_text(json.dumps(gates))
    return run_dir


def cf_models(run_dir: Path) -> None:
    """Three tiny saved CF models (factors, EASE, kNN) through tasks.cf's own writer, and roles.json."""
    import numpy as np
    import scipy.sparse as sp

    from tasks.cf import save_cf_model
    from tasks.cf._model import EaseCF, FactorCF, ItemKnnCF
    from tasks.profile import CollabSection

    users, items = np.array([1, 2, 3, 4], np.int32), np.array([10, 20, 30, 40, 50], np.int32)
    user_known = np.array([True, True, True, False])
    item_known = np.array([True, True, False, True, True])
    info = {"n_users": 4, "n_items": 5, "users_known": 3, "items_known": 4}
    common = dict(user_ids=users, item_ids=items, user_known=user_known, item_known=item_known)
    rng = np.random.default_rng(0)
    factors = FactorCF(
        **common,
        config=CollabSection(model="als"),
        info=info,
        user_factors=(rng.random((4, 3)) + 0.1).astype(np.float32) * user_known[:, None],
        item_factors=(rng.random((5, 3)) + 0.1).astype(np.float32) * item_known[:, None],
    )
    active = np.flatnonzero(item_known)
    x = sp.csr_matrix(np.ones((4, 5), np.float32))
    ease = EaseCF(
        **common,
        config=CollabSection(model="ease"),
        info=info,
        x=x[:, active],
        weights=rng.random((len(active), len(active))).astype(np.float32),
        items=active,
    )
    knn = ItemKnnCF(
        **common,
        config=CollabSection(model="item_knn"),
        info=info,
        x=x,
        similarity=sp.csr_matrix(rng.random((5, 5)).astype(np.float32)),
    )
    roles = {}
    for role, model in (("als", factors), ("ease", ease), ("item_knn", knn)):
        save_cf_model(model, run_dir, f"models/cf/{role}")
        roles[role] = {"folder": f"models/cf/{role}", "config": model.config.model_dump()}
    (run_dir / "models/cf/roles.json").write_text(json.dumps({"roles": roles}))


def new_kinds_run(root: Path) -> Path:
    """A run holding one file of each kind the tuning / collaborative / evaluation stages write."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from tasks.tuning import TUNING_COLUMNS

    run_dir = root / "ci" / "20260101T000000Z-abc123"
    for d in ("tuning", "eval", "figures", "models/cf"):
        (run_dir / d).mkdir(parents=True, exist_ok=True)
    cf_models(run_dir)
    policy = {
        "version": 2,
        "kind": "hybrid_policy",
        "policy_id": "abc",
        "ranking": {"lambda_div": 0.25},
        "collab": {"model": "ease"},
        "alphas": {"cold": 0.2, "light": 0.4},
        "validation": {"recall@10": 0.13},
        "search": {"cut_short": False, "trials": {"policy": 3}},
        "provenance": {"how_selected": "validation only"},
    }
    (run_dir / "tuning/policy.json").write_text(json.dumps(policy))
    (run_dir / "tuning/baselines.json").write_text(json.dumps({"version": 1, "baselines": {}}))
    pd.DataFrame(
        {
            "model": ["tuned_policy", "ease", "popularity"],
            "recall@10": [0.13, 0.12, 0.07],
            "map@10": [0.07, 0.06, 0.04],
            "ndcg@10": [0.13, 0.12, 0.08],
            "users": 560,
            "trials": [3, 3, 1],
            "params": ["{}", '{"ease.lambda": 100.0}', "{}"],
        }
    ).to_csv(run_dir / "tuning/validation_metrics.csv", index=False)
    pd.DataFrame(
        {
            "study": ["ease", "ease", "policy", "policy"],
            "trial": [0, 1, 0, 1],
            # an enqueued trial the budget never reached stays "waiting", without a value
            "state": ["complete", "complete", "complete", "waiting"],
            "value": [0.1, 0.12, 0.13, None],
            "recall@10": [0.1, 0.12, 0.13, None],
            "map@10": [0.05, 0.06, 0.07, None],
            "ndcg@10": [0.1, 0.12, 0.13, None],
            "params": "{}",
            "alphas": "",
            "seconds": [0.5, 0.4, 1.0, None],
            "cached": [False, True, False, False],
            "enqueued": [False, False, False, True],
        }
    ).to_csv(run_dir / "tuning/trials.csv", index=False)
    grid = pd.DataFrame(
        [
            {"split": "validation", "alpha": a, "cohort": c, "users_eval": 10, "users_skipped": 0,
             "mean_cand": 100.0, "candidate_recall": 0.7, "recall@10": 0.1, "map@10": 0.05,
             "ndcg@10": 0.1, "alpha_time_sec": 0.1, "alpha_timed_out": False}
            for a in (0.0, 0.5) for c in ("all", "light")
        ]
    )  # fmt: skip
    grid[list(TUNING_COLUMNS)].to_csv(run_dir / "tuning/tuning_results.csv", index=False)
    lines = [{"op_code": 0, "study_name": "policy"}, {"op_code": 4, "study_id": 0}]
    (run_dir / "tuning/study.journal").write_text("".join(json.dumps(x) + "\n" for x in lines))
    n = 8
    per_user = {
        "user_id": np.arange(1, n + 1, dtype=np.int32),
        "cohort": ["cold", "light", "medium", "heavy"] * 2,
        "n_relevant": np.full(n, 2, np.int32),
        "pool_size": np.full(n, 100, np.int32),
        "candidate_recall": np.full(n, 0.5, np.float32),
    }
    for model in ("tuned_policy", "ease"):
        for metric in ("recall", "map", "ndcg"):
            per_user[f"{model}_{metric}@10"] = np.linspace(0, 1, n).astype(np.float32)
    per_user["tuned_policy_movie_ids"] = [[10, 20]] * n
    pd.DataFrame(per_user).to_parquet(run_dir / "eval/per_user.parquet")
    pd.DataFrame(
        {"model": "tuned_policy", "baseline": ["ease", "ease"], "cohort": ["all", "cold"],
         "metric": "recall", "k": 10, "model_value": 0.11, "baseline_value": 0.1,
         "mean_diff": [0.01, -0.02], "ci_low": [0.004, -0.05], "ci_high": [0.016, 0.01],
         "p_value": [0.01, 0.4], "wilcoxon_p": None, "n_users": [8, 2], "method": "paired bootstrap"}
    ).to_parquet(run_dir / "eval/paired_tests.parquet")  # fmt: skip
    for name in ("tuning_history", "models_on_test"):
        Image.new("RGB", (8, 6), "white").save(run_dir / f"figures/{name}.png")
    return run_dir


#: file -> the suites that must validate it besides its facts suite
NEW_KIND_SUITES = {
    "tuning/tuning_results.csv": {"csv_facts", "tuning_results"},
    "tuning/validation_metrics.csv": {"csv_facts", "validation_metrics"},
    "tuning/trials.csv": {"csv_facts", "trials"},
    "tuning/study.journal": {"text_facts"},
    "tuning/policy.json": {"json_facts"},
    "eval/per_user.parquet": {"table_facts", "per_user"},
    "eval/paired_tests.parquet": {"table_facts", "paired_tests"},
    "models/cf/als/cf_meta.json": {"json_facts", "cf_model"},
    "models/cf/als/user_index.parquet": {"table_facts", "cf_index"},
    "models/cf/als/user_factors.npy": {"array_facts", "factors"},
    "models/cf/als/item_factors.npy": {"array_facts", "factors"},
    "models/cf/ease/cf_meta.json": {"json_facts", "cf_model"},
    "models/cf/ease/ease_weights.npy": {"array_facts"},
    "models/cf/item_knn/cf_meta.json": {"json_facts", "cf_model"},
    "models/cf/item_knn/knn_similarity.npz": {"array_facts"},
    "models/cf/roles.json": {"json_facts"},
    "figures/models_on_test.png": {"png_facts"},
}
