"""CPU and time scenarios: a stage stopped at a tiny budget, a heavy user served within its
budget (part of :mod:`tasks.edge_cases`).

The tiny-budget scenario runs the real evaluation core (:func:`tasks.evaluation.evaluation_core`)
under :func:`tasks.budget.run_with_budget`, in a scratch run directory outside the run (its inputs
linked in), so a finished evaluation could never overwrite the run's own ``eval/`` files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.budget import StageTimeout, run_with_budget
from tasks.edge_cases._context import EdgeContext, Observed, Scenario
from tasks.edge_cases._serving import (
    DotProductCF,
    full_list_unmet,
    history_lines,
    list_summary,
    serve_view,
    user_view,
)

__all__ = ["heavy_catalogue", "scenarios"]

#: What the evaluation reads from a run directory besides its refs (linked into the scratch run).
_EVAL_READS = ("models", "tuning", "data", "profile.toml")


def _scratch_run(ctx: EdgeContext, root: Path) -> Path:
    """A run directory under ``root`` whose inputs are links to the run's: what the core writes
    (``eval/``) stays in the scratch folder."""
    shadow = root / "run"
    shadow.mkdir(parents=True)
    for name in _EVAL_READS:
        source = Path(ctx.run_dir) / name
        if source.exists():
            (shadow / name).symlink_to(source.resolve())
    return shadow


def _run_tiny_budget(ctx: EdgeContext) -> Observed:
    from tasks.evaluation import evaluation_core
    from tasks.profile import ContentSection, PolicySection, SignoffSection
    from tasks.ranking import run_profile

    profile = run_profile(Path(ctx.run_dir))  # the run's own settings for the seed policy
    budget = ctx.cfg.tiny_budget_seconds
    root = ctx.scratch("tiny-budget")
    shadow = _scratch_run(ctx, root)
    start = time.monotonic()
    obs: Observed = {"stage": "evaluation", "budget_seconds": budget}
    try:
        run_with_budget(
            "evaluation",
            budget,
            evaluation_core,
            str(shadow),
            dict(ctx.refs),
            ctx.eval_cfg,
            ctx.candidates_cfg,
            profile.policy if profile else PolicySection(),
            ctx.split_cfg,
            profile.content if profile else ContentSection(),
            (profile.signoff if profile else SignoffSection()).min_lift,
            ctx.seed,
            parts_root=str(root / "parts"),
            reports=False,
        )
        obs["outcome"] = "finished"
    except StageTimeout as exc:
        obs.update({"outcome": "StageTimeout", "message": str(exc)})
    obs["elapsed_seconds"] = round(time.monotonic() - start, 3)
    return obs


def _check_tiny_budget(obs: Observed) -> list[str]:
    unmet = []
    if obs.get("outcome") != "StageTimeout":
        unmet.append(f"the stage {obs.get('outcome')} instead of being stopped")
    limit = 2 * obs.get("budget_seconds", 0)
    if obs.get("elapsed_seconds", 1e9) > limit:
        unmet.append(
            f"stopped after {obs.get('elapsed_seconds')} s, more than 2x the budget ({limit:g} s)"
        )
    if "budgets.evaluation" not in obs.get("message", "budgets.evaluation"):
        unmet.append("the timeout message does not say which budget to raise")
    return unmet


def heavy_catalogue(n_items: int, dim: int = 32, seed: int = 0) -> Any:
    """A synthetic catalogue of ``n_items`` (for a heavy user when the run's is too small):
    random unit embeddings, exact 10 nearest neighbours, random CF factors, five genres."""
    from tasks.ranking import RecommenderArrays

    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_items, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    neighbors = np.empty((n_items, 10), np.int32)
    for lo in range(0, n_items, 1024):  # blocks of 1024 x n_items similarities, not n_items^2
        sims = emb[lo : lo + 1024] @ emb.T
        sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        neighbors[lo : lo + len(sims)] = np.take_along_axis(top, order, axis=1)
    item_ids = np.arange(1, n_items + 1, dtype=np.int32)
    user_ids = np.array([1], np.int32)
    cf = DotProductCF.of(
        user_ids,
        item_ids,
        rng.standard_normal((1, 16)).astype(np.float32),
        rng.standard_normal((n_items, 16)).astype(np.float32),
    )
    return RecommenderArrays(
        item_ids=item_ids,
        user_ids=user_ids,
        embeddings=emb,
        neighbor_idx=neighbors,
        cf=cf,
        profiles=np.zeros((1, dim), np.float32),
        quality=rng.random(n_items).astype(np.float32),
        recency=rng.random(n_items).astype(np.float32),
        genre_names=["Action", "Comedy", "Drama", "Horror", "Romance"],
        genre_matrix=rng.random((n_items, 5)) < 0.3,
        provider_names=[],
        provider_matrix=np.zeros((n_items, 0), bool),
        seen=sp.csr_matrix((1, n_items), dtype=np.float32),
        seed_items=np.full((1, 20), -1, np.int32),
        cohorts=np.array(["heavy"], dtype=object),
        titles=np.array([f"Synthetic movie {i}" for i in range(1, n_items + 1)], dtype=object),
    )


def _heavy_job(ctx: EdgeContext, n: int) -> Observed:
    arrays = ctx.arrays
    k_final = ctx.policy.k_final
    need = n + 3 * k_final
    source = "the run's catalogue"
    synthetic = int(arrays.has_metadata.sum()) < need
    if synthetic:
        arrays = heavy_catalogue(need + 2_000, seed=ctx.seed)
        source = (
            f"a synthetic catalogue of {arrays.n_items:,} items (the run's has "
            f"{int(ctx.arrays.has_metadata.sum()):,} servable items, fewer than {n:,} + a list)"
        )
    rng = np.random.default_rng(ctx.seed)
    safe = np.flatnonzero(arrays.has_metadata)
    items = np.sort(rng.choice(safe, size=n, replace=False))
    ratings = rng.choice(np.arange(1, 11, dtype=np.float32) / 2, size=n)
    start = time.perf_counter()
    # the synthetic catalogue's one user has CF factors: it keeps them
    view, _ = user_view(ctx, items, ratings, arrays=arrays, factors_of=0 if synthetic else None)
    result = serve_view(ctx, view, k_final)
    obs = list_summary(arrays, view, result, 0, k_final)
    obs.pop("movie_ids")
    obs.update(
        {
            "n_ratings": n,
            "catalogue": source,
            "serve_seconds": round(time.perf_counter() - start, 3),
        }
    )
    obs["history"] = history_lines(arrays, view, limit=10)
    return obs


def _run_heavy_user(ctx: EdgeContext) -> Observed:
    budget = ctx.cfg.heavy_user_budget_seconds
    obs: Observed = {"budget_seconds": budget}
    try:
        result = run_with_budget("heavy_user", budget, _heavy_job, ctx, ctx.cfg.heavy_user_ratings)
        obs.update(result.value)
        obs["wall_seconds"] = round(result.wall_seconds, 3)
    except StageTimeout as exc:
        obs.update({"outcome": "StageTimeout", "message": str(exc)})
    return obs


def _check_heavy_user(obs: Observed) -> list[str]:
    if obs.get("outcome") == "StageTimeout":
        return [f"not served within its budget of {obs.get('budget_seconds')} s"]
    unmet = full_list_unmet(obs)
    if obs.get("n_ratings", 0) < 10_000:
        unmet.append(f"the user has {obs.get('n_ratings')} ratings, fewer than 10,000")
    if obs.get("wall_seconds", 1e9) > obs.get("budget_seconds", 0):
        unmet.append("served after its budget")
    return unmet


def scenarios() -> list[Scenario]:
    """The CPU and time scenarios, in report order."""
    return [
        Scenario(
            "tiny_time_budget", "cpu_time", "A stage given a tiny time budget",
            "tasks.evaluation.evaluation_core on the run's models and policy (in a scratch run directory "
            "linked to the run's inputs) under tasks.budget.run_with_budget with "
            "edge_cases.tiny_budget_seconds.",
            "StageTimeout naming the budget to raise (budgets.evaluation), raised within 2x the budget: "
            "the stage is stopped and reported, not hung.",
            _run_tiny_budget,
            _check_tiny_budget,
            inputs=("stage", "budget_seconds"),
        ),
        Scenario(
            "heavy_user_within_budget", "cpu_time", "A heavy user (10,000+ ratings)",
            "tasks.ranking.rank_batch with the run's policy for a user with edge_cases.heavy_user_ratings "
            "ratings (a synthetic catalogue when the run's is too small), under "
            "edge_cases.heavy_user_budget_seconds.",
            "A full list of k_final distinct unseen movies with finite scores on the engine's z scale "
            "(|score| <= sqrt(pool size)), served within the budget.",
            _run_heavy_user,
            _check_heavy_user,
            inputs=("n_ratings", "catalogue", "budget_seconds"),
        ),
    ]  # fmt: skip
