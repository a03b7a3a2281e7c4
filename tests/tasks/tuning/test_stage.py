"""The tuning stage on real files: what it writes, and that the test set cannot influence it.

Honesty check: the ratings that the split puts in test are changed (every test rating flipped
to its opposite on the 0.5-5 scale) and the whole chain ingest -> split -> features -> tuning is
run again: train, train_fit and validation are the same, so the chosen policy must be the same,
parameter for parameter. A stage that read the test set anywhere would differ."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.profile import load_profile

OVERRIDES = [
    "synthetic.n_users=500",
    "synthetic.n_movies=300",
    "synthetic.n_ratings=25000",
    "tuning.n_trials=2",
    "tuning.baselines=[\"popularity\",\"ease\"]",
    "tuning.models=[\"ease\",\"als\"]",
]


def _tune(run_dir: Path, ratings: pd.DataFrame | None = None) -> dict:
    """ingest (or the given ratings) -> split -> features -> tuning in ``run_dir``; the tuning result."""
    from tasks.content import features_core
    from tasks.ingest import ingest_core
    from tasks.io import write_table
    from tasks.split import split_core
    from tasks.tuning import tuning_core

    prof = load_profile("ci", OVERRIDES)
    run_dir.mkdir(parents=True, exist_ok=True)
    ing = ingest_core(prof, None, str(run_dir))
    ratings_ref = ing["artifacts"]["ratings"]
    if ratings is not None:
        ratings_ref = write_table(ratings, run_dir, "data/ratings.parquet")
    split = split_core(str(ratings_ref.path), prof.split, prof.run.seed, str(run_dir))
    feats = features_core(
        str(ing["artifacts"]["movies"].path), str(split["artifacts"]["train"].path), prof.content, prof.run.seed, str(run_dir)
    )
    refs = {
        **feats["artifacts"],
        **{k: split["artifacts"][k] for k in ("train_fit", "validation", "cohorts")},
        "movies": ing["artifacts"]["movies"],
    }
    out = tuning_core(
        str(run_dir), refs, prof.tuning, prof.collab, prof.candidates, prof.policy, prof.split, prof.content,
        prof.run.seed, trials_root=str(run_dir / "trials"), threads=1,
    )  # fmt: skip
    return {"out": out, "split": split}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict:
    return _tune(tmp_path_factory.mktemp("tuning") / "run")


def test_the_stage_writes_its_files_and_the_policy_parses(tuned):
    from tasks.ranking import read_policy

    arts = tuned["out"]["artifacts"]
    for name in ("policy", "baselines", "validation_metrics", "trials", "tuning_results", "study_journal"):
        assert arts[name].path.is_file(), name
    run_dir = arts["policy"].path.parents[1]
    policy, doc = read_policy(run_dir)
    assert doc["version"] == 2 and doc["collab"]["model"] in ("ease", "als")
    assert "validation split only" in doc["provenance"]["how_selected"]
    assert set(pd.read_csv(arts["tuning_results"].path)["split"]) == {"validation"}
    trials = pd.read_csv(arts["trials"].path)
    assert {"popularity", "ease", "policy"} <= set(trials["study"])
    validation = pd.read_csv(arts["validation_metrics"].path).set_index("model")
    assert validation.loc["tuned_policy", "recall@10"] >= validation.loc["ease", "recall@10"] - 1e-12
    journal = arts["study_journal"].path.read_text(encoding="utf-8").splitlines()
    assert journal and all(json.loads(line) for line in journal)


def test_changing_the_test_ratings_cannot_change_the_policy(tuned, tmp_path):
    split = tuned["split"]
    ratings = pd.read_parquet(split["artifacts"]["train"].path.parent / "ratings.parquet")
    test = pd.read_parquet(split["artifacts"]["test"].path)
    key = ["user_id", "movie_id"]
    flipped = ratings.merge(test[key].assign(_t=True), on=key, how="left")
    in_test = flipped["_t"].fillna(False).to_numpy(bool)
    assert in_test.sum() == len(test) > 0
    flipped.loc[in_test, "rating"] = (5.5 - flipped.loc[in_test, "rating"]).astype("float32")
    flipped = flipped.drop(columns="_t")
    other = _tune(tmp_path / "run", flipped)
    assert not pd.read_parquet(other["split"]["artifacts"]["test"].path).equals(test)  # test changed
    a = json.loads(tuned["out"]["artifacts"]["policy"].path.read_text())
    b = json.loads(other["out"]["artifacts"]["policy"].path.read_text())
    for part in ("ranking", "collab", "alphas", "validation", "policy_id"):
        assert a[part] == b[part], part
