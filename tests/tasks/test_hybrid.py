"""Tests for tasks/hybrid.py: the assembly manifest (paths, shapes, dtypes, config, counts, the
rules' names) and the scoring schema, whose every number comes from its arguments. The formulas
themselves are tested in tests/tasks/ranking/."""

from __future__ import annotations

import json
import re

import numpy as np
import scipy.sparse as sp

from tasks.hybrid import (
    ASSEMBLY_MANIFEST,
    SCHEMA_FORMAT,
    SCORING_SCHEMA,
    assembly_manifest,
    scoring_schema_text,
    write_assembly_manifest,
    write_scoring_schema,
)

POLICY = {"cold": 0.11, "light": 0.22, "medium": 0.33, "heavy": 0.44}
#: Every value distinct, none a small integer (those are section numbers and ladder steps).
CONFIG = {
    "w_q": 0.07,
    "w_r": 0.013,
    "w_p": 0.04,
    "lambda_div": 0.35,
    "c_max": 999,
    "k_final": 41,
    "n_cf_seed": 333,
    "k_neighbors": 17,
    "m_seed_items": 23,
    "mmr_pool": 123,
    "content_rank": 29,
    "mmr_rank": 57,
    "embedding_dim": 384,
    "collab_model": "ease",
}
COUNTS = {"users_served": 1234, "mean_pool": 456.7}
EXTRA = {"relaxation_step_none": 19}
#: Numbers of the text itself: section numbers 1-6, the ladder's steps 0-2, [0, 1], "1 - W".
STRUCTURE = {str(n) for n in range(7)}

NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def test_every_number_of_the_scoring_schema_comes_from_its_arguments():
    text = scoring_schema_text(policy=POLICY, candidates=CONFIG, counts=COUNTS, extra=EXTRA)
    numbers = set(NUMBER.findall(text))
    given = {f"{v:g}" for v in [*POLICY.values(), *COUNTS.values(), *EXTRA.values()]}
    given |= {f"{v:g}" for k, v in CONFIG.items() if k not in ("collab_model", "embedding_dim")}
    given.add(f"{CONFIG['w_q'] + CONFIG['w_r'] + CONFIG['w_p']:g}")  # W = 0.123
    assert given <= numbers  # each argument is shown ...
    assert numbers <= given | STRUCTURE  # ... and nothing else is
    assert str(SCHEMA_FORMAT) in STRUCTURE and f"rules format {SCHEMA_FORMAT}" in text
    for expected in (
        "w_q = 0.07",
        "w_r = 0.013",
        "w_p = 0.04",
        "(W = 0.123)",
        "lambda_div = 0.35",
        "c_max = 999",
        "k_final = 41",
        "n_cf_seed = 333",
        "k_neighbors = 17",
        "m_seed_items = 23",
        "mmr_pool = 123",
        "the first 29 principal components",
        "the first 57 principal components",
        "| cold | 0.11 |",
        "| heavy | 0.44 |",
        "| users_served | 1234 |",
        "| relaxation_step_none | 19 |",
        "collaborative model (ease)",
    ):
        assert expected in text, expected


def test_the_scoring_schema_states_the_format_2_rules():
    text = scoring_schema_text(policy=POLICY, candidates=CONFIG)
    assert "score_ui = (1 - W) * blend_ui + w_q z(quality)_ui" in text
    assert "blend_ui = alpha_u * z(cos)_ui + (1 - alpha_u) * z(cf)_ui" in text
    assert "(1 - lambda_div) * rel_i - lambda_div * max_{j in S} cos(e_i, e_j)" in text
    assert "weight of DIVERSITY" in text
    assert "lambda_div = 0 is the score order" in text


def test_the_scoring_schema_without_optional_settings():
    config = {k: v for k, v in CONFIG.items() if k not in ("mmr_pool", "content_rank", "mmr_rank")}
    text = scoring_schema_text(policy=POLICY, candidates={**config, "mmr_rank": 384})
    assert "mmr_pool = 3 * k_final" in text
    assert "with `cos` computed in the full embeddings" in text
    assert "principal components" not in text
    assert "| figure | value |" in text  # an empty figures table, no invented number


def test_write_scoring_schema(tmp_path):
    ref = write_scoring_schema(tmp_path, policy=POLICY, candidates=CONFIG, counts=COUNTS)
    assert ref.relpath == SCORING_SCHEMA
    assert (tmp_path / SCORING_SCHEMA).read_text() == scoring_schema_text(
        policy=POLICY, candidates=CONFIG, counts=COUNTS
    )


def test_assembly_manifest_records_paths_shapes_dtypes_config_counts(tmp_path):
    seen = sp.csr_matrix(np.eye(3, 5, dtype=np.float32))
    arrays = {
        "profiles": np.zeros((2, 4), np.float32),
        "embeddings": np.zeros((5, 4), np.float32),
        "seen": seen,
    }
    inputs = {"policy": "tuning/policy.json", "cf_model": "models/cf/policy/"}
    ref = write_assembly_manifest(
        tmp_path, inputs=inputs, arrays=arrays, config={"w_q": 0.05}, counts={"n_items": 5}
    )
    data = json.loads((tmp_path / ASSEMBLY_MANIFEST).read_text())
    assert ref.relpath == ASSEMBLY_MANIFEST
    assert data == json.loads(
        json.dumps(
            assembly_manifest(
                inputs=inputs, arrays=arrays, config={"w_q": 0.05}, counts={"n_items": 5}
            )
        )
    )
    assert data["kind"] == "hybrid_assembly" and data["schema_format"] == SCHEMA_FORMAT
    assert list(data["inputs"]) == ["cf_model", "policy"]  # sorted
    assert list(data["arrays"]) == ["embeddings", "profiles", "seen"]
    assert data["arrays"]["embeddings"] == {"shape": [5, 4], "dtype": "float32"}
    assert data["arrays"]["seen"] == {
        "shape": [3, 5],
        "dtype": "float32",
        "nnz": 3,
        "format": "csr",
    }
    assert data["config"] == {"w_q": 0.05} and data["counts"] == {"n_items": 5}
    assert set(data["rules"]) == {"normalisation", "content", "collab", "blend", "score", "mmr"}
    assert "lambda_div = diversity weight" in data["rules"]["mmr"]
    assert data["scoring_schema"] == SCORING_SCHEMA
