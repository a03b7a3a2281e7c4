"""The ranking policy: every knob of the ranking engine that a search may tune.

Part of :mod:`tasks.ranking`. A :class:`RankingPolicy` is what ``tuning/policy.json`` stores (with
the collaborative model's configuration beside it) and what every caller ranks with: the
evaluation, the candidates stage, case studies, edge cases and ``movierec recommend``. The
profile's ``[candidates]`` and ``[policy]`` sections give the seed values
(:meth:`RankingPolicy.from_profile`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.columns import COHORTS
from tasks.profile import CandidatesSection, PolicySection

__all__ = [
    "MMR_POOL_FACTOR",
    "POLICY_FILE",
    "POLICY_VERSION",
    "RankingPolicy",
    "policy_alphas",
    "read_policy",
]

#: Where a run keeps its chosen policy, and the format version this code reads and writes.
POLICY_FILE = "tuning/policy.json"
POLICY_VERSION = 2
#: The best MMR_POOL_FACTOR * k_final items (first pass) are re-scored exactly and re-ranked by MMR.
MMR_POOL_FACTOR = 3


def policy_alphas(
    cohorts_of_users: Sequence[str] | np.ndarray, alphas: Mapping[str, float]
) -> np.ndarray:
    """The content weight alpha of each user's cohort (float32); an uncovered cohort is an error.

    >>> policy_alphas(["cold", "heavy", "cold"], {"cold": 0.15, "light": 0.4, "medium": 0.6,
    ...     "heavy": 0.8}).astype(float).round(2).tolist()
    [0.15, 0.8, 0.15]
    """
    cohorts = np.asarray(cohorts_of_users, dtype=object)
    out = np.full(len(cohorts), np.nan, dtype=np.float32)
    for name, alpha in alphas.items():
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(
                f"policy alpha for cohort {name!r} is {alpha}; it must be within [0, 1]."
            )
        out[cohorts == name] = float(alpha)
    missing = np.isnan(out)
    if missing.any():
        unknown = sorted({str(c) for c in cohorts[missing]})
        raise ValueError(
            f"{int(missing.sum())} users have a cohort the policy does not cover: {unknown[:5]}; "
            f"the policy names {sorted(alphas)} (cohorts are {list(COHORTS)})."
        )
    return out


class RankingPolicy(BaseModel):
    """How a user's list is built from the CF model and the content features.

    - pools: ``n_cf_seed`` CF seeds, the ``k_neighbors`` nearest items of the ``m_seed_items`` best
      recent liked items, at most ``c_max`` items;
    - score: ``(1 - W) [alpha_c z_content + (1 - alpha_c) z_collab] + w_q z_quality + w_r z_recency
      + w_p z_provider`` with ``W = w_q + w_r + w_p`` and ``alpha_c`` the content weight of the
      user's cohort (z = per-user z-score over the pool, see :mod:`tasks.ranking._scores`);
    - MMR over the best ``mmr_pool``: ``next = argmax (1 - lambda_div) rel_i - lambda_div max_sim``;
      ``lambda_div`` is the weight of diversity (0 = score order);
    - lists of ``k_final`` items.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alphas: dict[str, float]
    lambda_div: float = Field(0.25, ge=0.0, le=1.0)
    w_q: float = Field(0.05, ge=0.0, le=1.0)
    w_r: float = Field(0.03, ge=0.0, le=1.0)
    w_p: float = Field(0.02, ge=0.0, le=1.0)
    n_cf_seed: int = Field(800, ge=1)
    m_seed_items: int = Field(20, ge=1)
    k_neighbors: int = Field(50, ge=1)
    c_max: int = Field(1200, ge=1)
    k_final: int = Field(50, ge=1)
    mmr_pool: int = Field(150, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> RankingPolicy:
        total = self.w_q + self.w_r + self.w_p
        if total > 1.0 + 1e-9:
            raise ValueError(f"boost weights w_q + w_r + w_p = {total:g} must be at most 1")
        for cohort, alpha in self.alphas.items():
            if not 0.0 <= float(alpha) <= 1.0:
                raise ValueError(f"alpha of cohort {cohort!r} is {alpha}; it must be within [0, 1]")
        return self

    @classmethod
    def from_profile(cls, candidates: CandidatesSection, policy: PolicySection) -> RankingPolicy:
        """The seed policy: the profile's ``[policy]`` alphas and ``[candidates]`` knobs."""
        return cls(
            alphas=policy.as_dict(),
            lambda_div=candidates.lambda_div,
            w_q=candidates.w_q,
            w_r=candidates.w_r,
            w_p=candidates.w_p,
            n_cf_seed=candidates.n_cf_seed,
            m_seed_items=candidates.m_seed_items,
            k_neighbors=candidates.k_neighbors,
            c_max=candidates.c_max,
            k_final=candidates.k_final,
            mmr_pool=MMR_POOL_FACTOR * candidates.k_final,
        )

    @property
    def boost_total(self) -> float:
        return self.w_q + self.w_r + self.w_p

    def alphas_of(self, cohorts: Sequence[str] | np.ndarray) -> np.ndarray:
        """Each user's content weight (float32) from its cohort."""
        return policy_alphas(cohorts, self.alphas)

    def pool_key(self) -> tuple[int, int, int, int]:
        """What a candidate pool depends on (besides the CF model and the filters)."""
        return (self.n_cf_seed, self.m_seed_items, self.k_neighbors, self.c_max)

    def policy_id(self) -> str:
        """A short hash of every knob: the same policy has the same id in every run."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def read_policy(run_dir: Path | str) -> tuple[RankingPolicy, dict[str, Any]]:
    """The ranking policy a run chose (``tuning/policy.json``) and the whole document.

    Runs made before format 2 (where ``lambda_div`` was the weight of relevance, and the blend a
    min-max mix) cannot be served by this code: a clear :class:`~tasks.errors.UsageError` says so.
    """
    from tasks.errors import UsageError

    path = Path(run_dir) / POLICY_FILE
    if not path.exists():
        raise UsageError(
            f"{path}: no tuned policy in this run (incomplete run?); run `movierec run` again."
        )
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("version") != POLICY_VERSION or "ranking" not in doc:
        raise UsageError(
            f"{path}: policy format {doc.get('version')!r} was written by an older version of the "
            f"pipeline (this one reads format {POLICY_VERSION}); re-run the pipeline to serve it."
        )
    return RankingPolicy.model_validate(doc["ranking"]), doc
