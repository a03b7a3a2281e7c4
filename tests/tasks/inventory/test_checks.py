"""Which suites a file gets: the tuning / CF / evaluation files of a hand-made run are validated by
their own suites and a broken one is named; the check frames' other files are declared."""

from __future__ import annotations

import json

from tasks.inventory import MANIFEST, SUITE_CHECKS, checks_for, inventory_core
from tests.tasks.inventory.runs import NEW_KIND_SUITES, new_kinds_run


def test_checks_that_read_other_files_declare_them():
    """The validation cache keys a check on every file its frame reads (SuiteCheck.reads)."""
    by_pattern = {c.pattern: c for c in SUITE_CHECKS}
    assert by_pattern["models/cf/*/item_factors.npy"].reads("models/cf/als/item_factors.npy") == (
        "models/cf/als/item_index.parquet",
    )
    assert by_pattern["models/cf/*/cf_meta.json"].reads("models/cf/ease/cf_meta.json") == (
        "models/cf/ease/*",
    )
    assert "reports/edge_cases.md" in by_pattern["edge_cases/results.parquet"].reads("x")
    assert by_pattern["data/ratings.parquet"].reads("data/ratings.parquet") == ()
    (check,) = checks_for("data/test.parquet", "table", [], {"test"})
    assert set(check.references) == {"movies", "train"}


def test_new_file_kinds_are_validated_and_named_when_broken(tmp_path):
    import numpy as np
    import pandas as pd

    good = new_kinds_run(tmp_path / "good")
    facts = inventory_core(str(good), None, build_docs=False)["facts"]
    files = {f["path"]: f for f in json.loads((good / MANIFEST).read_text())["files"]}
    assert facts["failed_validations"] == [], [
        files[p]["validation"] for p in facts["failed_validations"]
    ]
    for rel, suites in NEW_KIND_SUITES.items():
        assert {c["suite"] for c in files[rel]["checks"]} == suites, rel
    assert files["tuning/policy.json"]["stage"] == "tuning"
    assert files["models/cf/ease/ease_items.npy"]["stage"] == "collaborative"

    bad = new_kinds_run(tmp_path / "bad")
    grid = pd.read_csv(bad / "tuning/tuning_results.csv")
    grid.loc[0, "split"] = "test"  # a choice made on test
    grid.to_csv(bad / "tuning/tuning_results.csv", index=False)
    trials = pd.read_csv(bad / "tuning/trials.csv")
    pd.concat([trials, trials.iloc[[0]]]).to_csv(bad / "tuning/trials.csv", index=False)
    with open(bad / "tuning/study.journal", "a") as fh:
        fh.write("{not json\n")
    policy = json.loads((bad / "tuning/policy.json").read_text())
    del policy["search"]
    (bad / "tuning/policy.json").write_text(json.dumps(policy))
    index = pd.read_parquet(bad / "models/cf/als/user_index.parquet")
    index["user_idx"] = index["user_idx"].to_numpy()[::-1]
    index.to_parquet(bad / "models/cf/als/user_index.parquet")
    item_factors = np.load(bad / "models/cf/als/item_factors.npy")
    item_factors[0] = 0.0  # a known item without factors
    np.save(bad / "models/cf/als/item_factors.npy", item_factors)
    meta = json.loads((bad / "models/cf/ease/cf_meta.json").read_text())
    meta["files"]["ease_weights"] = "gone.npy"
    (bad / "models/cf/ease/cf_meta.json").write_text(json.dumps(meta))
    per_user = pd.read_parquet(bad / "eval/per_user.parquet")
    per_user.loc[3, "ease_map@10"] = 1.5
    per_user.to_parquet(bad / "eval/per_user.parquet")
    paired = pd.read_parquet(bad / "eval/paired_tests.parquet")
    paired.loc[1, ["ci_low", "ci_high"]] = [0.01, -0.05]
    paired.to_parquet(bad / "eval/paired_tests.parquet")

    facts = inventory_core(str(bad), None, build_docs=False)["facts"]
    assert sorted(facts["failed_validations"]) == [
        "eval/paired_tests.parquet",
        "eval/per_user.parquet",
        "models/cf/als/item_factors.npy",
        "models/cf/als/user_index.parquet",
        "models/cf/ease/cf_meta.json",
        "tuning/policy.json",
        "tuning/study.journal",
        "tuning/trials.csv",
        "tuning/tuning_results.csv",
    ]
    files = {f["path"]: f for f in json.loads((bad / MANIFEST).read_text())["files"]}
    assert "split" in files["tuning/tuning_results.csv"]["validation"]
    assert "search" in files["tuning/policy.json"]["validation"]
