"""The ``candidates`` stage: sample users' lists, the re-rank manifest and the scoring schema.

Place in the pipeline: after ``collaborative``, before ``evaluation`` (DESIGN.md step 6, seed
3c.2). It ranks a seeded sample of ``candidates.sample_users`` users (spread over the cohorts)
with the run's chosen policy through the ranking engine (:mod:`tasks.ranking`, the one path the
evaluation and ``movierec recommend`` use too) and writes
``hybrid/candidates/user_<id>_candidates.parquet``, ``hybrid/rerank_manifest.json``,
``hybrid/assembly_manifest.json`` and ``hybrid/scoring_schema.md`` (:mod:`tasks.hybrid`). Every
test user is ranked by the evaluation stage; here only the sample, so the stage costs seconds at
any scale.

The candidate table (:func:`tasks.ranking.candidates_frame`, one row per recommended item):
``user_id, movie_id, rank (1..n), score, collab, content, boosts, relaxation_step`` (0 none,
1 providers dropped, 2 genres widened); collab / content are the z-scaled parts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import COHORTS, Col
from tasks.hybrid import write_assembly_manifest, write_scoring_schema
from tasks.io import ArtifactRef, write_json, write_table
from tasks.profile import CandidatesSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = [
    "CANDIDATES_DIR",
    "MANIFEST_REQUIRED",
    "RERANK_MANIFEST",
    "build_candidates",
    "candidates_check_frame",
    "candidates_core",
    "manifest_facts",
    "sample_users",
]

RERANK_MANIFEST = "hybrid/rerank_manifest.json"
CANDIDATES_DIR = "hybrid/candidates"


def candidates_check_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the derived flag ``rank_contiguous`` (ranks of each user are exactly 1..n)."""
    out = df.copy()
    if len(df) == 0:
        out["rank_contiguous"] = np.zeros(0, bool)
        return out
    users = df[Col.USER].to_numpy(np.int64)
    ranks = df[Col.RANK].to_numpy(np.int64)
    order = np.lexsort((ranks, users))
    u, r = users[order], ranks[order]
    start = np.r_[True, u[1:] != u[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(u)), 0))
    ok_sorted = r == (np.arange(len(u)) - group_start + 1)
    ok = np.empty(len(u), bool)
    ok[order] = ok_sorted
    out["rank_contiguous"] = ok
    return out


def sample_users(arrays: Any, n: int, seed: int) -> np.ndarray:
    """A seeded sample of ``n`` user indices spread over the cohorts (round-robin), sorted."""
    n = min(max(n, 0), arrays.n_users)
    if n == 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(arrays.n_users)
    if arrays.cohorts is None:
        return np.sort(order[:n])
    cohort_rank = {c: j for j, c in enumerate(COHORTS)}
    group = np.array([cohort_rank.get(str(c), len(COHORTS)) for c in arrays.cohorts[order]])
    # position of each user within its cohort (in the permuted order), then round-robin by cohort
    by_group = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[by_group], group[by_group])
    within = np.empty(len(order), np.int64)
    within[by_group] = np.arange(len(order)) - starts
    pick = np.lexsort((group, within))[:n]
    return np.sort(order[pick])


def candidates_core(run_dir: str, cfg: CandidatesSection, seed: int) -> dict[str, Any]:
    """Pure core of the ``candidates`` stage: rank the sample users with the run's policy, write
    their candidate files, the re-rank manifest, the assembly manifest and the scoring schema."""
    from tasks.budget import report_progress
    from tasks.ranking import (
        STEP_NAMES,
        RecommenderArrays,
        candidates_frame,
        rank_users,
        read_policy,
    )

    start = time.perf_counter()
    report_progress(0.0, "loading the models")
    policy, policy_doc = read_policy(run_dir)
    arrays = RecommenderArrays.from_run(run_dir)
    load_seconds = time.perf_counter() - start
    sample = sample_users(arrays, cfg.sample_users, seed)
    report_progress(0.3, f"ranking {len(sample)} sample users")
    serve_start = time.perf_counter()
    result = rank_users(arrays, sample, policy, workers=1)
    serve_seconds = time.perf_counter() - serve_start
    list_len = (result["item_idx"] >= 0).sum(axis=1)
    steps = result["relaxation_step"]
    n = len(sample)
    counts = {
        "users_served": int(n),
        "users_with_full_list": int((list_len >= policy.k_final).sum()),
        "mean_pool": round(float(result["pool_size"].mean()) if n else 0.0, 2),
        "mean_list_length": round(float(list_len.mean()) if n else 0.0, 2),
        "relaxations": {STEP_NAMES[s]: int((steps == s).sum()) for s in STEP_NAMES},
        "seconds": round(serve_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "users_per_second": round(n / serve_seconds, 1) if serve_seconds > 0 else None,
        "users_without_cf": int((~arrays.user_has_factors).sum()),
        "items_without_cf": int((~arrays.item_has_factors).sum()),
        "items_without_metadata": int((~arrays.has_metadata).sum()),
    }
    report_progress(0.8, "writing candidate files and manifests")
    frame = candidates_frame(arrays, sample, result)
    _validate_table(frame, "candidates", source=str(Path(run_dir) / CANDIDATES_DIR))
    artifacts: dict[str, ArtifactRef] = {}
    for uid, part in frame.groupby(Col.USER, sort=True):  # one file per sample user
        rel = f"{CANDIDATES_DIR}/user_{int(uid)}_candidates.parquet"
        artifacts[f"candidates_user_{int(uid)}"] = write_table(part.reset_index(drop=True), run_dir, rel)
    collab = policy_doc.get("collab", {})
    config = {
        **policy.model_dump(mode="json"),
        "collab_model": collab.get("model"),
        "collab": collab,
        "content_rank": arrays.content_rank,
        "mmr_rank": arrays.mmr_rank,
        "embedding_dim": int(arrays.embeddings.shape[1]),
        "sample_users": cfg.sample_users,
        "seed": seed,
    }
    rerank = {
        "kind": "rerank",
        "config": config,
        "counts": counts,
        "sample_users": [int(u) for u in arrays.user_ids[sample]],
        "candidate_files": sorted(a.relpath for a in artifacts.values()),
        "relaxation_steps": {str(k): v for k, v in STEP_NAMES.items()},
        "policy_id": policy_doc.get("policy_id"),
    }
    _validate_manifest(rerank, "rerank_manifest", RERANK_MANIFEST)
    artifacts["rerank_manifest"] = write_json(rerank, run_dir, RERANK_MANIFEST)
    inputs = {"run_dir": str(run_dir), "policy": "tuning/policy.json", "cf_model": "models/cf/policy/"}
    manifest_arrays = {
        "embeddings": arrays.embeddings,
        "neighbor_idx": arrays.neighbor_idx,
        "profiles": arrays.profiles,
        "seen": arrays.seen,
        "exclude": arrays.exclude,
        "seed_items": arrays.seed_items,
        "genre_matrix": arrays.genre_matrix,
        "provider_matrix": arrays.provider_matrix,
    }
    assembly_counts = {
        "n_users": arrays.n_users,
        "n_items": arrays.n_items,
        "users_without_cf": counts["users_without_cf"],
        "items_without_cf": counts["items_without_cf"],
        "users_without_profile": int((np.abs(arrays.profiles).sum(axis=1) == 0).sum()),
        "items_without_metadata": counts["items_without_metadata"],
    }
    from tasks.hybrid import assembly_manifest

    _validate_manifest(
        assembly_manifest(inputs=inputs, arrays=manifest_arrays, config=config, counts=assembly_counts),
        "assembly_manifest",
        "hybrid/assembly_manifest.json",
    )
    artifacts["assembly_manifest"] = write_assembly_manifest(
        run_dir, inputs=inputs, arrays=manifest_arrays, config=config, counts=assembly_counts
    )
    artifacts["scoring_schema"] = write_scoring_schema(
        run_dir,
        policy=policy.alphas,
        candidates=config,
        counts={k: v for k, v in counts.items() if not isinstance(v, dict)},
        extra={f"relaxation_step_{STEP_NAMES[s]}": counts["relaxations"][STEP_NAMES[s]] for s in STEP_NAMES},
    )
    report_progress(1.0, "done")
    facts = {k: counts[k] for k in ("users_served", "mean_pool", "relaxations", "seconds", "users_per_second")}
    facts["policy_id"] = policy_doc.get("policy_id")
    return {"artifacts": artifacts, "facts": facts}


#: Keys every manifest must carry (checked through a derived facts table, see manifest_facts).
MANIFEST_REQUIRED = {
    "rerank_manifest": [
        "kind",
        "config",
        "counts",
        "counts.users_served",
        "counts.mean_pool",
        "counts.relaxations",
        "counts.seconds",
        "counts.users_per_second",
        "config.lambda_div",
        "config.k_final",
        "config.c_max",
        "sample_users",
    ],
    "assembly_manifest": [
        "kind",
        "inputs",
        "arrays",
        "config",
        "counts",
        "rules",
        "scoring_schema",
        "counts.n_users",
        "counts.n_items",
        "arrays.embeddings",
        "arrays.profiles",
        "arrays.seen",
        "config.w_q",
        "config.w_r",
        "config.w_p",
    ],
}


def manifest_facts(data: Mapping[str, Any], suite: str) -> pd.DataFrame:
    """A derived facts table for a manifest: one row per required key, ``present`` (bool) and
    ``value_ok`` (bool: numbers finite and >= 0, anything else non-empty)."""
    rows = []
    for key in MANIFEST_REQUIRED[suite]:  # a dozen keys
        node: Any = data
        present = True
        for part in key.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                present = False
                break
        if not present:
            ok = False
        elif isinstance(node, bool):
            ok = True
        elif isinstance(node, (int, float)):
            ok = math.isfinite(node) and node >= 0
        else:
            ok = node is not None and node != "" and node != {} and node != []
        rows.append({"key": key, "present": present, "value_ok": bool(ok)})
    return pd.DataFrame(rows)


def _validate_table(df: pd.DataFrame, suite: str, *, source: str) -> None:
    from tasks.validation import require_valid

    require_valid(candidates_check_frame(df), suite, source=source)


def _validate_manifest(data: Mapping[str, Any], suite: str, relpath: str) -> None:
    from tasks.validation import require_valid

    json.dumps(data, default=str)  # must serialise
    require_valid(manifest_facts(data, suite), suite, source=relpath)


@stage_task("candidates")
def build_candidates(
    features: StageOutput,
    collab: StageOutput,
    tuning: StageOutput,
    train: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    dropped_history: ArtifactRef,
    cfg: CandidatesSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``candidates``: the sample users' lists with the run's chosen policy; manifests.

    Its inputs (features, the CF models, the chosen policy, the split's tables) are the cache key;
    the core reads them from the run directory (every upstream file is in it by then).
    """
    result = run_stage_core("candidates", budget_seconds, candidates_core, run_dir, cfg, seed)
    return StageOutput.from_result("candidates", result)
