"""The collaborative stage: every chosen CF configuration refit on the full train, one folder per
role, one fit per distinct configuration, factor models validated, roles.json written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.collaborative import ROLES_FILE, collab_core, collab_roles, factor_row_table
from tasks.columns import Col
from tasks.profile import CollabSection


def _tiny_run(tmp_path, policy_cf: CollabSection, baselines: dict) -> dict:
    rng = np.random.default_rng(0)
    users, items = np.arange(1, 41), np.arange(1, 31)
    rows = {(int(u), int(i)) for u in users for i in rng.choice(items, 8, replace=False)}
    train = pd.DataFrame(sorted(rows), columns=[Col.USER, Col.ITEM]).assign(
        **{Col.RATING: np.float32(4.0), Col.TIMESTAMP: np.int64(1)}
    )
    train[Col.USER] = train[Col.USER].astype("int32")
    train[Col.ITEM] = train[Col.ITEM].astype("int32")
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "tuning").mkdir()
    train.to_parquet(tmp_path / "data/train.parquet")
    pd.DataFrame({Col.USER: users.astype("int32")}).to_parquet(tmp_path / "data/cohorts.parquet")
    pd.DataFrame({Col.ITEM: items.astype("int32")}).to_parquet(tmp_path / "data/movies.parquet")
    (tmp_path / "tuning/policy.json").write_text(json.dumps({"collab": policy_cf.model_dump(mode="json")}))
    (tmp_path / "tuning/baselines.json").write_text(json.dumps({"baselines": baselines}))
    return {k: str(tmp_path / v) for k, v in {"train": "data/train.parquet", "cohorts": "data/cohorts.parquet",
            "movies": "data/movies.parquet", "policy": "tuning/policy.json", "baselines": "tuning/baselines.json"}.items()}  # fmt: skip


def test_roles_are_the_policy_the_seed_and_every_tuned_cf_baseline():
    ease = CollabSection(model="ease", ease_lambda=300.0)
    roles = collab_roles(
        {"collab": ease.model_dump(mode="json")},
        {"baselines": {"ease": {"config": ease.model_dump(mode="json")}, "popularity": {"config": None},
                       "item_knn": {"config": None, "skipped": "not run"}}},  # fmt: skip
        CollabSection(),
    )
    assert list(roles) == ["policy", "seed_policy", "ease"]
    assert roles["policy"] == roles["ease"] and roles["seed_policy"].model == "als"


def test_the_stage_fits_each_distinct_configuration_once(tmp_path):
    ease = CollabSection(model="ease", ease_lambda=10.0)
    seed = CollabSection(model="als", factors=4, iterations=3)
    paths = _tiny_run(tmp_path, ease, {"ease": {"config": ease.model_dump(mode="json")}})
    out = collab_core(paths["train"], paths["cohorts"], paths["movies"], paths["policy"], paths["baselines"], seed, 0, str(tmp_path))
    facts = out["facts"]
    assert facts["n_fits"] == 2  # policy and ease share one EASE fit; the seed's ALS is the other
    assert facts["roles"]["ease"]["shared_fit"] is True and facts["roles"]["policy"]["shared_fit"] is False
    assert facts["roles"]["seed_policy"]["validation"] == {"user_factors": True, "item_factors": True}
    roles = json.loads((tmp_path / ROLES_FILE).read_text())["roles"]
    assert set(roles) == {"policy", "seed_policy", "ease"}
    for role in roles:
        assert (tmp_path / f"models/cf/{role}/cf_meta.json").is_file()
    import scipy.sparse as sp

    from tasks.cf import load_cf_model
    from tasks.ranking import RecommenderArrays  # noqa: F401 - the engine reads these folders
    train = pd.read_parquet(paths["train"])
    ratings = sp.csr_matrix((train[Col.RATING], (train[Col.USER] - 1, train[Col.ITEM] - 1)), shape=(40, 30), dtype=np.float32)
    a = load_cf_model(tmp_path / "models/cf/policy", ratings=ratings)
    b = load_cf_model(tmp_path / "models/cf/ease", ratings=ratings)
    assert np.array_equal(a.scores(np.arange(5)), b.scores(np.arange(5)))


def test_factor_row_table_flags_rows_that_break_the_rule():
    table = factor_row_table(np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0]]), np.array([True, False, True]))
    assert table["zero_iff_no_factors"].tolist() == [True, True, True]
    assert table["all_finite"].tolist() == [True, True, False]
    bad = factor_row_table(np.zeros((1, 2)), np.array([True]))
    assert bad["zero_iff_no_factors"].tolist() == [False]


@pytest.mark.parametrize("model", ["ease", "item_knn"])
def test_roles_keep_their_own_model_kind(tmp_path, model):
    cfg = CollabSection(model=model, knn_k=5, ease_lambda=5.0)
    paths = _tiny_run(tmp_path, cfg, {})
    out = collab_core(paths["train"], paths["cohorts"], paths["movies"], paths["policy"], paths["baselines"],
                      CollabSection(model="als", factors=2, iterations=2), 0, str(tmp_path))  # fmt: skip
    meta = json.loads((tmp_path / "models/cf/policy/cf_meta.json").read_text())
    assert meta["config"]["model"] == model and out["facts"]["n_fits"] == 2
