"""``tuning/policy.json`` (format 2) and ``tuning/baselines.json`` (part of :mod:`tasks.tuning`).

policy.json: ``{"version": 2, "kind": "hybrid_policy", "policy_id", "alphas", "ranking":
RankingPolicy, "collab": CollabSection, "lambda_div_meaning", "validation": {metric values on the
validation users}, "search": {trials, cut_short, ...}, "provenance": {one sentence per cohort,
selection rule, run, grid, ...}}``. ``ranking`` and ``collab`` are all a ranking needs: the
evaluation, the candidates stage and ``movierec recommend`` read them
(:func:`tasks.ranking.read_policy`). ``policy_id`` hashes both, so the same policy has the same id
in every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tasks.io import ArtifactRef, write_json
from tasks.profile import CollabSection
from tasks.ranking import POLICY_FILE, POLICY_VERSION, RankingPolicy
from tasks.tuning._grid import SELECTION_RULE, TUNING_K, choice_text

__all__ = ["BASELINES_FILE", "LAMBDA_DIV_MEANING", "policy_document", "write_policy"]

BASELINES_FILE = "tuning/baselines.json"
LAMBDA_DIV_MEANING = (
    "lambda_div is the weight of diversity: next = argmax (1 - lambda_div) * rel_i - lambda_div * "
    "max_j sim_ij (rel = the score min-max scaled over the MMR pool); 0 = score order"
)


def policy_document(
    ranking: RankingPolicy,
    collab: CollabSection,
    choices: Mapping[str, Mapping[str, Any]],
    *,
    validation: Mapping[str, Any],
    search: Mapping[str, Any],
    grid: Sequence[float],
    run_id: str,
    profile: str,
    seed_policy: Mapping[str, float],
    metric: str = f"recall@{TUNING_K}",
    created: str | None = None,
) -> dict[str, Any]:
    """The chosen policy as written to ``tuning/policy.json`` (module docstring)."""
    tie = f"map@{TUNING_K}" if not metric.startswith("map") else f"recall@{TUNING_K}"
    blob = json.dumps(
        {"ranking": ranking.model_dump(mode="json"), "collab": collab.model_dump(mode="json")},
        sort_keys=True,
    )
    provenance: dict[str, Any] = {
        cohort: choice_text(cohort, choices[cohort], metric, tie)
        for cohort in ranking.alphas
        if cohort in choices
    }
    provenance.update(
        {
            "run_id": run_id,
            "profile": profile,
            "grid": [float(a) for a in grid],
            "selection_rule": SELECTION_RULE,
            "how_selected": "chosen on the validation split only (train_fit -> validation); the test "
            "set is scored once, afterwards, by the evaluation stage",
            "seed_policy": {c: float(a) for c, a in seed_policy.items()},
            "choices": {c: dict(v) for c, v in choices.items()},
            "created": created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    return {
        "version": POLICY_VERSION,
        "kind": "hybrid_policy",
        "policy_id": hashlib.sha256(blob.encode()).hexdigest()[:12],
        "alphas": dict(ranking.alphas),
        "ranking": ranking.model_dump(mode="json"),
        "collab": collab.model_dump(mode="json"),
        "lambda_div_meaning": LAMBDA_DIV_MEANING,
        "validation": dict(validation),
        "search": dict(search),
        "provenance": provenance,
    }


def write_policy(
    document: Mapping[str, Any], run_dir: Any, relpath: str = POLICY_FILE
) -> ArtifactRef:
    """Write ``tuning/policy.json`` (atomic) after checking the ranking part parses."""
    missing = {"version", "alphas", "ranking", "collab", "provenance"} - set(document)
    if missing:
        raise ValueError(f"policy document lacks {sorted(missing)}")
    RankingPolicy.model_validate(document["ranking"])
    CollabSection.model_validate(document["collab"])
    return write_json(dict(document), run_dir, relpath)
