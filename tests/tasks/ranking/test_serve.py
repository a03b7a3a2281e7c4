"""Tests for tasks/ranking/_serve.py: ``movierec recommend`` serves the evaluated list.

On a real run (``ml_ranking_run``, ml-latest-small): for 20 users the top 10 served equal the
first 10 items the evaluation scored (``eval/per_user.parquet`` ``tuned_policy_movie_ids``); k
above k_final is cut and says so; an unknown user, an unknown genre and a run of an older
version are refused with messages that name the problem. On the tiny catalogue: known, unknown
and brand-new users, the explanations and the canonical candidate table.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tasks.candidates import candidates_check_frame
from tasks.columns import Col
from tasks.errors import UsageError
from tasks.ranking import (
    POLICY_FILE,
    RecommenderArrays,
    candidates_frame,
    explain,
    rank_batch,
    read_policy,
    recommend_for_user,
)

# --------------------------------------------------------------------------------------------
# a real run
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(ml_ranking_run):
    run = ml_ranking_run["run_dir"]
    policy, _ = read_policy(run)
    return run, RecommenderArrays.from_run(run), policy


def test_recommend_serves_the_first_items_of_the_evaluated_list(served):
    run, arrays, policy = served
    per_user = pd.read_parquet(run / "eval" / "per_user.parquet")
    sample = per_user.sample(20, random_state=0)
    for uid, evaluated in zip(sample[Col.USER], sample["tuned_policy_movie_ids"], strict=True):
        frame = recommend_for_user(run, int(uid), k=10, arrays=arrays, policy=policy)
        evaluated = [int(m) for m in evaluated if m >= 0]
        assert frame[Col.ITEM].tolist() == evaluated[:10], f"user {uid}"
        assert frame[Col.RANK].tolist() == list(range(1, 11))
        assert "k_capped_from" not in frame.attrs
    # the same without preloaded arrays or policy (what `movierec recommend` does)
    uid, evaluated = sample[Col.USER].iloc[0], sample["tuned_policy_movie_ids"].iloc[0]
    frame = recommend_for_user(run, int(uid), k=10)
    assert frame[Col.ITEM].tolist() == [int(m) for m in evaluated if m >= 0][:10]
    assert (frame["mode"] == "personalised").all()
    assert frame["reason"].str.startswith("because you rated").all()
    for item, shown in zip(frame[Col.ITEM], frame[Col.PROVIDERS], strict=True):  # checkable by eye
        row = int(np.searchsorted(arrays.item_ids, item))
        expected = [arrays.provider_names[p] for p in np.flatnonzero(arrays.provider_matrix[row])]
        assert shown == ", ".join(expected)


def test_k_above_k_final_is_cut_and_says_so(served):
    run, arrays, policy = served
    uid = int(arrays.user_ids[0])
    frame = recommend_for_user(run, uid, k=policy.k_final + 25, arrays=arrays, policy=policy)
    assert len(frame) == policy.k_final
    assert frame.attrs["k_capped_from"] == policy.k_final + 25
    assert frame.attrs["k_final"] == policy.k_final
    shorter = recommend_for_user(run, uid, k=7, arrays=arrays, policy=policy)
    assert shorter[Col.ITEM].tolist() == frame[Col.ITEM].tolist()[:7]


def test_an_unknown_user_without_genres_is_refused_by_id(served):
    run, arrays, policy = served
    missing = int(arrays.user_ids.max()) + 1000
    with pytest.raises(UsageError, match=rf"unknown user id {missing}\b") as err:
        recommend_for_user(run, missing, k=10, arrays=arrays, policy=policy)
    assert "--genre" in str(err.value)
    new = recommend_for_user(run, missing, k=5, genres=["Comedy"], arrays=arrays, policy=policy)
    assert len(new) == 5 and (new["mode"] == "cold-start").all()
    assert new[Col.GENRES].str.contains("Comedy").all()


def test_an_unknown_genre_is_refused_with_the_valid_ones(served):
    run, arrays, policy = served
    with pytest.raises(UsageError, match="unknown genre") as err:
        recommend_for_user(
            run, int(arrays.user_ids[0]), k=10, genres=["Spaghetti Western"], arrays=arrays,
            policy=policy,
        )  # fmt: skip
    message = str(err.value)
    assert "Spaghetti Western" in message
    assert all(g in message for g in arrays.genre_names)


def test_a_run_of_an_older_version_is_refused(served, tmp_path):
    run, _, _ = served
    old = tmp_path / "old-run"
    (old / "tuning").mkdir(parents=True)
    shutil.copy(run / "profile.toml", old / "profile.toml")
    v1 = {"version": 1, "kind": "bucket_gate_policy", "policy_id": "x", "provenance": {},
          "alphas": {"cold": 0.1, "light": 0.2, "medium": 0.3, "heavy": 0.4}}  # fmt: skip
    (old / POLICY_FILE).write_text(json.dumps(v1), encoding="utf-8")
    with pytest.raises(UsageError, match="older version of the pipeline"):
        recommend_for_user(old, 1, k=10)


# --------------------------------------------------------------------------------------------
# the tiny catalogue
# --------------------------------------------------------------------------------------------


def test_recommend_known_unknown_and_brand_new_users(tiny, make_policy, tmp_path):
    policy = make_policy()
    df = recommend_for_user(tmp_path, 1, k=3, arrays=tiny, policy=policy)
    assert len(df) == 3 and (df["mode"] == "personalised").all()
    assert df[Col.ITEM].tolist() == [
        int(tiny.item_ids[i]) for i in rank_batch(tiny, np.array([0]), policy)["item_idx"][0][:3]
    ]
    assert df["reason"].str.startswith("because you rated").all()
    with pytest.raises(UsageError, match="unknown user id 999"):
        recommend_for_user(tmp_path, 999, k=3, arrays=tiny, policy=policy)
    new = recommend_for_user(tmp_path, 999, k=3, genres=["Drama"], arrays=tiny, policy=policy)
    assert len(new) == 3 and (new["mode"] == "cold-start").all()
    assert new[Col.GENRES].str.contains("Drama").all()
    assert (new["reason"] == "popular in Drama (no history yet)").all()
    with pytest.raises(UsageError, match="valid genres"):
        recommend_for_user(tmp_path, 1, k=3, genres=["Nope"], arrays=tiny, policy=policy)
    with pytest.raises(UsageError, match="at least 1"):
        recommend_for_user(tmp_path, 1, k=0, arrays=tiny, policy=policy)
    cold = recommend_for_user(tmp_path, 5, k=3, arrays=tiny, policy=policy)  # known, no history
    assert (cold["mode"] == "cold-start").all()


def test_explain_names_the_most_similar_liked_item(tiny):
    # user 0 liked items 0 (Movie 10) and 1 (Movie 20), disliked item 8; item 3 is in cluster 0
    assert explain(tiny, 0, 3) == "because you rated Movie 20 highly"
    assert explain(tiny, 0, 9) in {
        "because you rated Movie 10 highly",
        "because you rated Movie 20 highly",
    }
    assert explain(tiny, 3, 3) == "because you rated Movie 110 highly"  # liked only item 10
    assert explain(tiny, 4, 5, genres=["comedy"]) == "popular in Comedy (no history yet)"
    assert explain(tiny, None, 8) == "popular in Drama (no history yet)"


def test_candidates_frame_is_canonical(tiny, make_policy):
    users = np.arange(tiny.n_users)
    out = rank_batch(tiny, users, make_policy())
    df = candidates_frame(tiny, users, out)
    assert list(df.columns) == [
        Col.USER, Col.ITEM, Col.RANK, Col.SCORE, Col.COLLAB, Col.CONTENT, Col.BOOSTS,
        Col.RELAXATION_STEP,
    ]  # fmt: skip
    assert df[Col.USER].dtype == np.int32 and df[Col.ITEM].dtype == np.int32
    assert len(df) == int((out["item_idx"] >= 0).sum())
    for uid, part in df.groupby(Col.USER):
        u = int(np.searchsorted(tiny.user_ids, uid))
        assert part[Col.RANK].tolist() == list(range(1, len(part) + 1))
        assert part[Col.ITEM].tolist() == tiny.item_ids[out["item_idx"][u][: len(part)]].tolist()
        np.testing.assert_array_equal(part[Col.SCORE], out["score"][u][: len(part)])
    assert candidates_check_frame(df)["rank_contiguous"].all()
