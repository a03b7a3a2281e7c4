"""Tests for tasks/ranking/_policy.py: the seed policy from the profile, the knobs' validation,
alphas per cohort, the policy id, and reading ``tuning/policy.json`` (format 2 only: a run of an
older version is refused with a message that says so)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from tasks.errors import UsageError
from tasks.profile import CandidatesSection, PolicySection
from tasks.ranking import (
    MMR_POOL_FACTOR,
    POLICY_FILE,
    POLICY_VERSION,
    RankingPolicy,
    policy_alphas,
    read_policy,
)

ALPHAS = {"cold": 0.11, "light": 0.22, "medium": 0.33, "heavy": 0.44}


def test_the_seed_policy_takes_every_knob_from_the_profile():
    cand = CandidatesSection(
        n_cf_seed=300, m_seed_items=7, k_neighbors=9, c_max=500, w_q=0.07, w_r=0.01, w_p=0.04,
        lambda_div=0.35, k_final=40,
    )  # fmt: skip
    pol = PolicySection()
    policy = RankingPolicy.from_profile(cand, pol)
    assert policy.alphas == pol.as_dict()
    assert (policy.n_cf_seed, policy.m_seed_items, policy.k_neighbors, policy.c_max) == (
        300, 7, 9, 500,
    )  # fmt: skip
    assert (policy.w_q, policy.w_r, policy.w_p, policy.lambda_div) == (0.07, 0.01, 0.04, 0.35)
    assert policy.k_final == 40 and policy.mmr_pool == MMR_POOL_FACTOR * 40
    assert policy.boost_total == pytest.approx(0.12)
    assert policy.pool_key() == (300, 7, 9, 500)


@pytest.mark.parametrize(
    "change",
    [
        {"w_q": 0.6, "w_r": 0.3, "w_p": 0.2},  # boosts above 1
        {"alphas": {"cold": 1.5}},
        {"lambda_div": -0.1},
        {"k_final": 0},
        {"unknown_knob": 1},  # extra="forbid"
    ],
)
def test_invalid_policies_are_refused(change):
    with pytest.raises(ValidationError):
        RankingPolicy(**{"alphas": ALPHAS, **change})


def test_a_policy_is_frozen():
    policy = RankingPolicy(alphas=ALPHAS)
    with pytest.raises(ValidationError):
        policy.lambda_div = 0.5


def test_policy_alphas_follow_each_users_cohort():
    out = policy_alphas(np.array(["heavy", "cold", "light", "medium"], dtype=object), ALPHAS)
    np.testing.assert_allclose(out, [0.44, 0.11, 0.22, 0.33], rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(RankingPolicy(alphas=ALPHAS).alphas_of(["light"]), out[2:3])


def test_policy_alphas_reject_a_cohort_the_policy_lacks_and_alphas_out_of_range():
    with pytest.raises(ValueError, match="superfan"):
        policy_alphas(["cold", "superfan"], {"cold": 0.1})
    with pytest.raises(ValueError, match="within"):
        policy_alphas(["cold"], {"cold": 1.1})


def test_policy_id_is_a_hash_of_every_knob():
    a = RankingPolicy(alphas=ALPHAS)
    assert a.policy_id() == RankingPolicy(alphas=dict(ALPHAS)).policy_id()
    assert len(a.policy_id()) == 12
    others = [
        RankingPolicy(alphas={**ALPHAS, "cold": 0.12}),
        a.model_copy(update={"lambda_div": 0.3}),
        a.model_copy(update={"n_cf_seed": 801}),
    ]
    assert len({a.policy_id(), *(o.policy_id() for o in others)}) == 4


def write_doc(run_dir, doc) -> None:
    path = run_dir / POLICY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_read_policy_round_trip(tmp_path):
    policy = RankingPolicy(alphas=ALPHAS, lambda_div=0.1, n_cf_seed=200)
    doc = {"version": POLICY_VERSION, "ranking": policy.model_dump(mode="json"), "collab": {}}
    write_doc(tmp_path, doc)
    got, whole = read_policy(tmp_path)
    assert got == policy and whole == doc


def test_read_policy_refuses_an_older_run(tmp_path):
    v1 = {
        "version": 1,
        "kind": "bucket_gate_policy",
        "policy_id": "abc",
        "alphas": ALPHAS,
        "provenance": {},
    }
    write_doc(tmp_path, v1)
    with pytest.raises(UsageError, match="older version") as err:
        read_policy(tmp_path)
    assert "format 1" in str(err.value) and "re-run" in str(err.value)


def test_read_policy_without_a_policy_file(tmp_path):
    with pytest.raises(UsageError, match="no tuned policy"):
        read_policy(tmp_path)
