"""Tests for tasks/candidates.py, the ``candidates`` stage: its own functions (the check frame of
the candidate table, the sample of users, the manifests' facts) and ``candidates_core`` on a
real run (``ml_ranking_run``). The ranking itself is tested in tests/tasks/ranking/."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tasks.candidates import (
    CANDIDATES_DIR,
    MANIFEST_REQUIRED,
    RERANK_MANIFEST,
    candidates_check_frame,
    manifest_facts,
    sample_users,
)
from tasks.columns import COHORTS, Col
from tasks.validation import validate_table


def candidate_table(ranks_by_user: dict[int, list[int]]) -> pd.DataFrame:
    rows = [(u, 100 + r, r) for u, ranks in ranks_by_user.items() for r in ranks]
    users, items, ranks = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return pd.DataFrame(
        {
            Col.USER: users.astype(np.int32),
            Col.ITEM: items.astype(np.int32),
            Col.RANK: ranks.astype(np.int32),
            Col.SCORE: np.linspace(1.0, -1.0, n).astype(np.float32),
            Col.COLLAB: np.zeros(n, np.float32),
            Col.CONTENT: np.zeros(n, np.float32),
            Col.BOOSTS: np.zeros(n, np.float32),
            Col.RELAXATION_STEP: np.zeros(n, np.int8),
        }
    )


def test_rank_contiguous_flags_ranks_that_are_not_one_to_n():
    ok = candidate_table({7: [1, 2, 3], 3: [1, 2]})
    assert candidates_check_frame(ok)["rank_contiguous"].all()
    shuffled = ok.sample(frac=1.0, random_state=1)  # row order does not matter
    assert candidates_check_frame(shuffled)["rank_contiguous"].all()
    gap = candidate_table({7: [1, 2, 4], 3: [1, 2]})
    assert candidates_check_frame(gap)["rank_contiguous"].tolist() == [
        True, True, False, True, True,
    ]  # fmt: skip
    assert not candidates_check_frame(candidate_table({3: [2, 3]}))["rank_contiguous"].any()
    empty = candidates_check_frame(ok.iloc[:0])
    assert "rank_contiguous" in empty and len(empty) == 0


def test_the_candidate_suite_accepts_the_table_and_catches_a_duplicate_pair():
    df = candidates_check_frame(candidate_table({7: [1, 2, 3], 3: [1, 2]}))
    assert validate_table(df, "candidates", source="test")["success"]
    dup = pd.concat([df, df.iloc[:1]], ignore_index=True)
    summary = validate_table(dup, "candidates", source="test")
    assert not summary["success"]
    assert any(f["column"] == "duplicate_pair" for f in summary["failed"])


def cohort_arrays(cohorts: list[str] | None, n: int | None = None) -> SimpleNamespace:
    n = len(cohorts) if cohorts is not None else n
    return SimpleNamespace(
        n_users=n, cohorts=None if cohorts is None else np.array(cohorts, dtype=object)
    )


def test_sample_users_spreads_over_the_cohorts_and_is_seeded():
    labels = ["heavy"] * 50 + ["cold"] * 3 + ["light"] * 20 + ["medium"] * 27
    arrays = cohort_arrays(labels)
    sample = sample_users(arrays, 12, seed=5)
    assert len(sample) == 12 and len(set(sample.tolist())) == 12
    assert sample.tolist() == sorted(sample.tolist())
    counts = pd.Series(np.array(labels)[sample]).value_counts().to_dict()
    assert counts == {"cold": 3, "light": 3, "medium": 3, "heavy": 3}  # round-robin
    # 20: the three cold users, then the others in turns, in the order of COHORTS
    more = pd.Series(np.array(labels)[sample_users(arrays, 20, seed=5)]).value_counts().to_dict()
    assert more == {"cold": 3, "light": 6, "medium": 6, "heavy": 5}
    np.testing.assert_array_equal(sample, sample_users(arrays, 12, seed=5))
    assert sample.tolist() != sample_users(arrays, 12, seed=6).tolist()
    assert COHORTS == ("cold", "light", "medium", "heavy")


def test_sample_users_limits():
    arrays = cohort_arrays(["light", "cold", "heavy"])
    assert sample_users(arrays, 10, seed=0).tolist() == [0, 1, 2]  # capped at n_users
    assert sample_users(arrays, 0, seed=0).tolist() == []
    no_cohorts = cohort_arrays(None, n=30)
    picked = sample_users(no_cohorts, 5, seed=1)
    assert len(picked) == 5 and picked.tolist() == sorted(picked.tolist())


def test_manifest_facts_check_presence_and_values():
    rerank = {
        "kind": "rerank",
        "config": {"lambda_div": 0.25, "k_final": 5, "c_max": 8},
        "counts": {
            "users_served": 5,
            "mean_pool": 7.5,
            "relaxations": {"none": 5},
            "seconds": 0.1,
            "users_per_second": 50.0,
        },
        "sample_users": [1],
    }
    facts = manifest_facts(rerank, "rerank_manifest")
    assert facts["key"].tolist() == MANIFEST_REQUIRED["rerank_manifest"]
    assert facts["present"].all() and facts["value_ok"].all()
    assert validate_table(facts, "rerank_manifest", source="t")["success"]
    broken = json.loads(json.dumps(rerank))
    del broken["counts"]["seconds"]
    broken["counts"]["mean_pool"] = float("nan")
    broken["sample_users"] = []
    facts = manifest_facts(broken, "rerank_manifest").set_index("key")
    assert not facts.loc["counts.seconds", "present"]
    assert not facts.loc["counts.mean_pool", "value_ok"]
    assert not facts.loc["sample_users", "value_ok"]
    assert not validate_table(facts.reset_index(), "rerank_manifest", source="t")["success"]


# --------------------------------------------------------------------------------------------
# candidates_core on a real run (the fixture ran it in pipeline order, before evaluation)
# --------------------------------------------------------------------------------------------


def test_candidates_core_ranks_the_sample_with_the_runs_policy(ml_ranking_run):
    from tasks.ranking import RecommenderArrays, rank_batch, read_policy

    run, prof = ml_ranking_run["run_dir"], ml_ranking_run["profile"]
    facts = ml_ranking_run["facts"]["candidates"]
    policy, doc = read_policy(run)
    rerank = json.loads((run / RERANK_MANIFEST).read_text())
    n = prof.candidates.sample_users
    assert facts["users_served"] == rerank["counts"]["users_served"] == n
    assert facts["policy_id"] == doc["policy_id"] == rerank["policy_id"]
    assert set(facts["relaxations"]) == {"none", "providers_dropped", "genres_widened"}
    assert facts["relaxations"]["none"] == n  # no filter: nothing relaxed
    assert rerank["config"]["lambda_div"] == policy.lambda_div
    assert rerank["config"]["k_final"] == policy.k_final
    assert rerank["config"]["collab_model"] == doc["collab"]["model"]
    files = sorted((run / CANDIDATES_DIR).glob("user_*_candidates.parquet"))
    assert [f"{CANDIDATES_DIR}/{p.name}" for p in files] == rerank["candidate_files"]
    assert len(files) == n
    # each sample user's file is its served list: the run's policy through the engine
    arrays = RecommenderArrays.from_run(run)
    users = np.array(rerank["sample_users"])
    result = rank_batch(arrays, arrays.user_index(users), policy)
    frames = []
    for uid, row in zip(users, result["item_idx"], strict=True):
        frame = pd.read_parquet(run / CANDIDATES_DIR / f"user_{uid}_candidates.parquet")
        assert frame[Col.ITEM].tolist() == arrays.item_ids[row[row >= 0]].tolist()
        assert frame[Col.RANK].tolist() == list(range(1, len(frame) + 1))
        frames.append(frame)
    table = candidates_check_frame(pd.concat(frames, ignore_index=True))
    assert validate_table(table, "candidates", source="t")["success"]
    pool_sizes = result["pool_size"]
    assert rerank["counts"]["mean_pool"] == pytest.approx(float(pool_sizes.mean()), abs=0.01)


def test_candidates_core_writes_valid_assembly_manifest_and_schema(ml_ranking_run):
    from tasks.ranking import read_policy

    run = ml_ranking_run["run_dir"]
    policy, doc = read_policy(run)
    assembly = json.loads((run / "hybrid" / "assembly_manifest.json").read_text())
    emb = np.load(run / "models" / "content_embeddings.npy", mmap_mode="r")
    assert assembly["arrays"]["embeddings"]["shape"] == list(emb.shape)
    assert assembly["counts"]["n_items"] == emb.shape[0]
    assert assembly["config"]["w_q"] == policy.w_q
    facts = manifest_facts(assembly, "assembly_manifest")
    assert validate_table(facts, "assembly_manifest", source="t")["success"]
    schema = (run / "hybrid" / "scoring_schema.md").read_text()
    assert f"c_max = {policy.c_max}" in schema
    assert f"lambda_div = {policy.lambda_div:g}" in schema
    for cohort, alpha in policy.alphas.items():
        assert f"| {cohort} | {alpha:g} |" in schema
    assert f"({doc['collab']['model']})" in schema
