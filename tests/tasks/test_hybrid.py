"""Hybrid assembly: normalisation, blending, cold-start rules, policy alphas, the two artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.hybrid import (
    ASSEMBLY_MANIFEST,
    CONSTANT_ROW_VALUE,
    SCORING_SCHEMA,
    blend_scores,
    content_from_cosine,
    minmax_normalise,
    policy_alphas,
    write_assembly_manifest,
    write_scoring_schema,
)
from tasks.profile import CandidatesSection, PolicySection


def test_minmax_scales_each_row_over_its_valid_entries_only():
    scores = np.array([[2.0, 4.0, 3.0, 100.0], [-1.0, 1.0, 0.0, -50.0]], np.float32)
    mask = np.array([[True, True, True, False], [True, True, True, False]])
    out = minmax_normalise(scores, mask)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.5, 0.0], [0.0, 1.0, 0.5, 0.0]])
    assert out.dtype == np.float32


def test_minmax_constant_row_is_neutral_and_empty_row_is_zero():
    scores = np.array([[7.0, 7.0, 7.0], [1.0, 2.0, 3.0]], np.float32)
    mask = np.array([[True, True, False], [False, False, False]])
    out = minmax_normalise(scores, mask)
    np.testing.assert_allclose(
        out, [[CONSTANT_ROW_VALUE, CONSTANT_ROW_VALUE, 0.0], [0.0, 0.0, 0.0]]
    )


def test_minmax_ignores_non_finite_scores():
    scores = np.array([[np.nan, 1.0, 3.0, np.inf]], np.float32)
    out = minmax_normalise(scores, np.ones((1, 4), bool))
    np.testing.assert_allclose(out, [[0.0, 0.0, 1.0, 0.0]])
    assert np.isfinite(out).all()


def test_content_score_maps_cosine_to_unit_interval():
    np.testing.assert_allclose(
        content_from_cosine(np.array([-1.0, 0.0, 0.5, 1.0, 1.0001])), [0, 0.5, 0.75, 1, 1]
    )


def test_blend_mixes_with_alpha_and_falls_back_to_content_without_factors():
    content = np.array([[0.8, 0.2], [0.8, 0.2]], np.float32)
    collab = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    alpha = np.array([0.25, 0.25], np.float32)
    user_has = np.array([True, False])  # second user: cold, no factors
    item_has = np.array([[True, False], [True, True]])  # item 1 of user 0 has no factors
    out = blend_scores(content, collab, alpha, user_has, item_has)
    np.testing.assert_allclose(out, [[0.25 * 0.8, 0.25 * 0.2], [0.8, 0.2]], rtol=1e-6)


def test_policy_alphas_follow_each_users_cohort():
    policy = PolicySection().as_dict()
    out = policy_alphas(np.array(["heavy", "cold", "light", "medium"], dtype=object), policy)
    np.testing.assert_allclose(
        out, [policy["heavy"], policy["cold"], policy["light"], policy["medium"]]
    )


def test_policy_alphas_reject_a_cohort_the_policy_lacks():
    with pytest.raises(ValueError, match="superfan"):
        policy_alphas(["cold", "superfan"], {"cold": 0.1})


def test_scoring_schema_numbers_come_from_the_configuration(tmp_path):
    cfg = CandidatesSection(w_q=0.07, w_r=0.01, w_p=0.04, lambda_div=0.35, c_max=999, k_final=40)
    policy = {"cold": 0.11, "light": 0.22, "medium": 0.33, "heavy": 0.44}
    ref = write_scoring_schema(
        tmp_path,
        policy=policy,
        candidates={**cfg.model_dump(), "mmr_pool": 120},
        counts={"users_served": 1234},
    )
    assert ref.relpath == SCORING_SCHEMA
    text = (tmp_path / SCORING_SCHEMA).read_text()
    for expected in (
        "w_q = 0.07",
        "w_r = 0.01",
        "w_p = 0.04",
        "lambda_div = 0.35",
        "c_max = 999",
        "k_final = 40",
        "| cold | 0.11 |",
        "| heavy | 0.44 |",
        "The best 120 items",
        "| users_served | 1234 |",
    ):
        assert expected in text, expected
    # the defaults' numbers must not leak in when the configuration differs
    assert "0.05" not in text and "lambda_div = 0.25" not in text
    assert "score_ui  = (1 - w_q - w_r - w_p) * blend_ui + boosts_ui" in text


def test_assembly_manifest_records_paths_shapes_dtypes_config_counts(tmp_path):
    arrays = {
        "embeddings": np.zeros((5, 3), np.float32),
        "user_factors": np.zeros((2, 4), np.float32),
    }
    ref = write_assembly_manifest(
        tmp_path,
        inputs={"content_embeddings": "models/content_embeddings.npy"},
        arrays=arrays,
        config={"w_q": 0.05},
        counts={"n_users": 2, "n_items": 5},
    )
    data = json.loads((tmp_path / ASSEMBLY_MANIFEST).read_text())
    assert ref.relpath == ASSEMBLY_MANIFEST
    assert data["arrays"]["embeddings"] == {"shape": [5, 3], "dtype": "float32"}
    assert data["inputs"]["content_embeddings"] == "models/content_embeddings.npy"
    assert data["config"]["w_q"] == 0.05 and data["counts"]["n_items"] == 5
    assert data["scoring_schema"] == SCORING_SCHEMA
