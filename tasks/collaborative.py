"""The ``collaborative`` stage: refit every chosen CF model on the full training table.

Place in the pipeline: after ``tuning`` (which chose each configuration on the validation split,
fitting on ``train_fit``) and before ``candidates`` / ``evaluation``. For each role it fits
:func:`tasks.cf.fit_cf` on ``data/train.parquet`` over the shared index (users = the cohorts
table's sorted ids, items = the catalogue sorted by ``movie_id``) and writes ``models/cf/<role>/``
(:func:`tasks.cf.save_cf_model`) plus ``models/cf/roles.json``:

- ``policy``: the tuned policy's CF model (``tuning/policy.json``, ``collab``);
- ``seed_policy``: the profile's ``[collab]`` (the seed policy's model);
- ``ease``, ``item_knn``, ``als``: each tuned CF baseline (``tuning/baselines.json``), unless its
  study did not run (EASE above ``collab.ease_max_items``).

Roles with the same configuration share one fit (the files are written once per role). Factor
models are validated through the ``factors`` suite on a derived per-row table. The CF formulas
are in :mod:`tasks.cf`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.io import ArtifactRef, read_table, write_json
from tasks.profile import CollabSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = ["ROLES_FILE", "collab_core", "collab_roles", "factor_row_table", "fit_collab"]

ROLES_FILE = "models/cf/roles.json"


def factor_row_table(factors: np.ndarray, has_factors: np.ndarray) -> pd.DataFrame:
    """One row per factor row: ``row, norm, all_finite, n_nonzero, has_factors, zero_iff_no_factors``.

    ``zero_iff_no_factors`` is True when a row without factors is all zero and a row with factors
    is not (64-bit columns: GX checks them fast).
    """
    a = np.asarray(factors)
    finite = np.isfinite(a).all(axis=1)
    norm = np.linalg.norm(np.where(np.isfinite(a), a, 0.0).astype(np.float64), axis=1)
    has = np.asarray(has_factors, bool)
    return pd.DataFrame(
        {
            "row": np.arange(len(a), dtype=np.int64),
            "norm": norm,
            "all_finite": finite,
            "n_nonzero": (a != 0).sum(axis=1).astype(np.int64),
            "has_factors": has,
            # an ALS row of a known user can be all zero only by accident; unknown rows must be
            "zero_iff_no_factors": np.where(has, norm > 0, norm == 0),
        }
    )


def collab_roles(policy_doc: Mapping[str, Any], baselines_doc: Mapping[str, Any], seed_cfg: CollabSection) -> dict[str, CollabSection]:
    """Role -> CF configuration to fit (module docstring)."""
    roles = {
        "policy": CollabSection.model_validate(policy_doc["collab"]),
        "seed_policy": seed_cfg,
    }
    for name, entry in baselines_doc.get("baselines", {}).items():
        if name in ("ease", "item_knn", "als") and entry.get("config"):
            roles[name] = CollabSection.model_validate(entry["config"])
    return roles


def _validate_factors(model: Any, folder: str) -> dict[str, Any]:
    from tasks.validation import require_valid

    return {
        side: require_valid(factor_row_table(factors, known), "factors", source=f"{folder}/{side}.npy")["success"]
        for side, factors, known in (
            ("user_factors", model.user_factors, model.user_known),
            ("item_factors", model.item_factors, model.item_known),
        )
    }


def collab_core(
    train_path: str,
    cohorts_path: str,
    movies_path: str,
    policy_path: str,
    baselines_path: str,
    cfg: CollabSection,
    seed: int,
    run_dir: str,
) -> dict[str, Any]:
    """Pure core of the ``collaborative`` stage (module docstring); returns refs + facts."""
    from tasks.budget import report_progress
    from tasks.cf import ImplicitWorker, fit_cf, rating_matrix, save_cf_model
    from tasks.ranking import cf_folder
    from tasks.tuning._bench import cf_key

    train = read_table(train_path, columns=[Col.USER, Col.ITEM, Col.RATING])
    user_ids = np.sort(read_table(cohorts_path, columns=[Col.USER])[Col.USER].to_numpy()).astype(np.int32)
    item_ids = np.sort(read_table(movies_path, columns=[Col.ITEM])[Col.ITEM].to_numpy()).astype(np.int32)
    ratings = rating_matrix(train, user_ids, item_ids)
    roles = collab_roles(
        json.loads(Path(policy_path).read_text(encoding="utf-8")),
        json.loads(Path(baselines_path).read_text(encoding="utf-8")),
        cfg,
    )
    fitted: dict[str, Any] = {}
    artifacts: dict[str, ArtifactRef] = {}
    facts: dict[str, Any] = {"roles": {}}
    with ImplicitWorker() as worker:
        for n, (role, role_cfg) in enumerate(roles.items()):
            key = cf_key(role_cfg)
            report_progress(0.05 + 0.9 * n / len(roles), f"{role}: {role_cfg.model}")
            started = time.perf_counter()
            shared = key in fitted
            if not shared:
                fitted[key] = fit_cf(ratings, user_ids, item_ids, role_cfg, seed, worker=worker)
            model = fitted[key]
            folder = cf_folder(role)
            refs = save_cf_model(model, run_dir, folder)
            artifacts.update({f"cf_{role}_{name}": ref for name, ref in refs.items()})
            validation = _validate_factors(model, folder) if model.kind == "factors" else None
            facts["roles"][role] = {
                "folder": folder,
                "config": role_cfg.model_dump(mode="json"),
                "shared_fit": shared,
                "fit_seconds": round(time.perf_counter() - started, 3),
                "users_known": int(model.user_known.sum()),
                "items_known": int(model.item_known.sum()),
                "validation": validation,
            }
    manifest = {"roles": {r: {"folder": v["folder"], "config": v["config"]} for r, v in facts["roles"].items()}}
    artifacts["cf_roles"] = write_json(manifest, run_dir, ROLES_FILE)
    report_progress(1.0, f"{len(roles)} roles, {len(fitted)} fits")
    facts["n_fits"] = len(fitted)
    facts["n_ratings"] = int(ratings.nnz)
    return {"artifacts": artifacts, "facts": facts}


@stage_task("collaborative")
def fit_collab(
    train: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    tuning: StageOutput,
    cfg: CollabSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``collaborative``: the chosen CF models refit on the full train."""
    result = run_stage_core(
        "collaborative",
        budget_seconds,
        collab_core,
        str(train.path),
        str(cohorts.path),
        str(movies.path),
        str(tuning.ref("policy").path),
        str(tuning.ref("baselines").path),
        cfg,
        seed,
        run_dir,
    )
    return StageOutput.from_result("collaborative", result)
