"""The evaluation's figures and reports, from the run's own tables (part of :mod:`tasks.evaluation`).

Thin wiring: :func:`tasks.charts.write_all_charts` and :func:`tasks.reports.write_offline_reports`
get the test tables of this stage, the validation tables of the tuning stage
(``tuning/validation_metrics.csv``, ``tuning/tuning_results.csv``, ``tuning/trials.csv``,
``tuning/policy.json``, ``tuning/baselines.json``), the run's record of its models
(``models/cf/roles.json``, ``models/content_meta.json``, the ``[candidates]`` of ``profile.toml``:
what the seed policy is) and a context of facts; every number they print comes from these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.evaluation._plan import EvalPlan
from tasks.io import ArtifactRef
from tasks.profile import EvalSection, SplitSection
from tasks.tuning import TUNING_K

__all__ = ["write_charts_and_reports"]


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def write_charts_and_reports(
    run_path: Path,
    refs: Mapping[str, ArtifactRef],
    plan: EvalPlan,
    eval_cfg: EvalSection,
    split_cfg: SplitSection,
    metrics: pd.DataFrame,
    paired: pd.DataFrame,
    policy_doc: Mapping[str, Any],
    gates: Mapping[str, Any],
    per_user_recall: Mapping[str, np.ndarray],
    candidate_recall: Mapping[str, float],
    min_lift: float,
) -> dict[str, ArtifactRef]:
    """The figures (tasks.charts) and the offline reports (tasks.reports); {name: reference}."""
    from tasks.charts import write_all_charts
    from tasks.reports import describe_cf, write_offline_reports

    tuning = _read_csv(run_path / "tuning/tuning_results.csv")
    validation = _read_csv(run_path / "tuning/validation_metrics.csv")
    trials = _read_csv(run_path / "tuning/trials.csv")
    baselines = _read_json(run_path / "tuning/baselines.json")
    profile = _read_toml(run_path / "profile.toml")  # the run's own resolved profile
    artifacts: dict[str, ArtifactRef] = {}
    figures = write_all_charts(
        run_path,
        metrics,
        tuning,
        per_user_recall,
        paired=paired,
        policy=policy_doc,
        validation=validation,
        k=TUNING_K,
        min_lift=min_lift,
        confidence=eval_cfg.confidence,
        configuration=describe_cf(policy_doc["collab"]) if policy_doc.get("collab") else None,
    )
    for name, path in figures.items():
        artifacts[f"figure_{name}"] = ArtifactRef.of(
            run_path, Path(path).relative_to(run_path).as_posix()
        )
    for name in ("tuning_history", "tuning_importances"):
        if (run_path / f"figures/{name}.png").exists():
            figures[name] = run_path / f"figures/{name}.png"
    context = {
        "run_id": run_path.name,
        "profile": str(profile.get("name") or run_path.parent.name),
        "split": split_cfg.model_dump(mode="json"),
        "dataset": {
            "n_users": int(len(plan.user_ids)),
            "n_items": int(plan.n_items),
            "n_test_users_with_relevant": int(plan.eligible["all"]),
            "n_users_evaluated": int(len(plan.users)),
            "n_relevant_pairs": int(plan.relevant.nnz),
        },
        "eval": eval_cfg.model_dump(mode="json"),
        "candidate_recall": dict(candidate_recall),
        "validation_metrics": [] if validation is None else validation.to_dict("records"),
        "baselines": baselines.get("baselines", {}),
        "trials": [] if trials is None else trials.to_dict("records"),
        "cf_roles": _read_json(run_path / "models/cf/roles.json").get("roles", {}),
        "content_meta": _read_json(run_path / "models/content_meta.json"),
        "seed_candidates": dict(profile.get("candidates") or {}),
        "min_lift": float(min_lift),
    }
    reports = write_offline_reports(
        run_path, metrics, paired, tuning, policy_doc, gates, context, figures, k=TUNING_K
    )
    artifacts.update({f"report_{name}": ref for name, ref in reports.items()})
    return artifacts
