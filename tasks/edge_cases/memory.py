"""Memory scenarios: batch size does not change a list, and a memory budget really bounds a job
(part of :mod:`tasks.edge_cases`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.budget import StageMemoryExceeded, rows_within_memory, run_with_budget
from tasks.edge_cases._context import LIST_K, EdgeContext, Observed, Scenario

__all__ = ["DENSE_BYTES_PER_CELL", "cf_top_k_batched", "scenarios"]

#: Score fields compared with a tolerance (float32 rounding of BLAS products of different shapes).
SCORE_FIELDS = ("score", "collab", "content", "boosts")
SCORE_TOLERANCE = 1e-5


def _run_batch_sizes(ctx: EdgeContext) -> Observed:
    from tasks.candidates import sample_users
    from tasks.ranking import SUB_BATCH, rank_batch, rank_users

    arrays = ctx.arrays
    users = sample_users(arrays, min(arrays.n_users, 64), ctx.seed)
    singles = [
        rank_batch(arrays, users[i : i + 1], ctx.policy, k=LIST_K) for i in range(len(users))
    ]
    one = {name: np.concatenate([s[name] for s in singles]) for name in singles[0]}
    big = rank_users(arrays, users, ctx.policy, k=LIST_K)
    fields = ("item_idx", "score", "collab", "content", "boosts", "relaxation_step")
    # exact for lists and steps; scores may differ in the last float32 bits, because BLAS sums a
    # (1 x f) @ (f x n) product in another order than a (32 x f) one - the gap is recorded
    differing = [
        name
        for name in fields
        if not (
            np.array_equal(one[name], big[name], equal_nan=True)
            or (
                name in SCORE_FIELDS
                and np.allclose(
                    one[name], big[name], rtol=0.0, atol=SCORE_TOLERANCE, equal_nan=True
                )
            )
        )
    ]
    max_abs_diff = {
        name: float(
            np.nanmax(
                np.abs(one[name].astype(np.float64) - big[name].astype(np.float64)), initial=0.0
            )
        )
        for name in SCORE_FIELDS
    }
    return {
        "users": int(len(users)),
        "batch_sizes": [1, int(min(len(users), SUB_BATCH))],
        "largest_batch_path": (
            f"rank_users (forked workers; every user in one call, ranked in sub-batches of "
            f"{SUB_BATCH})"
        ),
        "fields_compared": list(fields),
        "fields_differing": differing,
        "score_tolerance": SCORE_TOLERANCE,
        "max_abs_diff": max_abs_diff,
        "rows_differing": int((one["item_idx"] != big["item_idx"]).any(axis=1).sum()),
    }


def _check_batch_sizes(obs: Observed) -> list[str]:
    unmet = []
    if obs.get("fields_differing"):
        unmet.append(
            f"results differ in {obs['fields_differing']} ({obs.get('rows_differing')} users' lists; "
            f"largest score gaps {obs.get('max_abs_diff')})"
        )
    if obs.get("users", 0) < 2:
        unmet.append("fewer than two users compared")
    return unmet


#: Bytes a dense scoring row holds per catalogue item: the float32 score block, the scorer's and
#: the top-k selection's temporaries. Measured with :func:`cf_top_k_batched` on ml-latest-small
#: (peak RSS growth / cells): 12.5-14.4 for the EASE, ALS and item-kNN models alike.
DENSE_BYTES_PER_CELL = 14


def cf_top_k_batched(arrays: Any, users: np.ndarray, k: int, batch_rows: int) -> np.ndarray:
    """Exact collaborative top-k over the whole catalogue (excluded and unsafe items removed), in
    batches of ``batch_rows`` users: the ranking of the evaluation's CF baselines
    (:func:`tasks.ranking.cf_lists`) with the run's policy CF model. Memory grows with
    ``batch_rows``: each batch is one dense (batch_rows x n_items) score block."""
    from tasks.ranking import row_coords, top_k_columns

    out = np.full((len(users), k), -1, np.int32)
    blocked = np.flatnonzero(~(arrays.item_has_factors & arrays.has_metadata))
    for lo in range(0, len(users), batch_rows):  # one dense block per batch: that is the point
        batch = np.asarray(users[lo : lo + batch_rows], dtype=np.int64)
        scores = arrays.cf.scores(batch)
        rows, items, _ = row_coords(arrays.exclude, batch)
        scores.reshape(-1)[rows * arrays.n_items + items] = -np.inf
        scores[:, blocked] = -np.inf
        out[lo : lo + len(batch)] = top_k_columns(scores, k)[0]
        del scores
    return out


def _run_memory_budget(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    budget = ctx.cfg.memory_budget_mb
    per_row = DENSE_BYTES_PER_CELL * arrays.n_items
    batch = rows_within_memory(budget, per_row)
    # enough user rows that scoring them at once would need about twice the budget
    n_rows = max(2 * rows_within_memory(budget, per_row, share=1.0), 2)
    users = np.resize(np.arange(arrays.n_users), n_rows)
    k = LIST_K
    obs: Observed = {
        "memory_budget_mb": budget,
        "cf_model": arrays.cf.config.model,
        "bytes_per_row_estimate": int(per_row),
        "rows": int(n_rows),
        "batch_rows_from_budget": int(batch),
        "estimated_unbatched_mb": round(n_rows * per_row / 2**20, 1),
    }
    limit = ctx.cfg.scenario_time_limit_seconds
    budgeted = run_with_budget(
        "memory_budget", limit, cf_top_k_batched, arrays, users, k, batch, memory_budget_mb=budget
    )
    obs["budgeted_peak_growth_mb"] = round(budgeted.peak_growth_bytes / 2**20, 1)
    obs["budgeted_completed"] = True
    try:
        unbatched = run_with_budget(
            "memory_unbatched", limit, cf_top_k_batched, arrays, users, k, n_rows,
            memory_budget_mb=budget,
        )  # fmt: skip
        obs["unbatched_outcome"] = "completed"
        obs["unbatched_peak_growth_mb"] = round(unbatched.peak_growth_bytes / 2**20, 1)
        obs["same_lists"] = bool(np.array_equal(budgeted.value, unbatched.value))
    except StageMemoryExceeded as exc:
        obs["unbatched_outcome"] = "StageMemoryExceeded"
        obs["unbatched_observed_mb"] = round(exc.observed_mb, 1)
        obs["unbatched_stopped_by"] = exc.when
    return obs


def _check_memory_budget(obs: Observed) -> list[str]:
    unmet = []
    if not obs.get("budgeted_completed"):
        unmet.append("the budgeted job did not complete")
    if obs.get("budgeted_peak_growth_mb", 1e9) > obs.get("memory_budget_mb", 0):
        unmet.append(
            f"peak growth {obs.get('budgeted_peak_growth_mb')} MB is over the budget of "
            f"{obs.get('memory_budget_mb')} MB"
        )
    if obs.get("unbatched_outcome") != "StageMemoryExceeded":
        unmet.append(
            "the same job without the budget's batch size was not stopped by the memory watchdog "
            f"({obs.get('unbatched_outcome')}, peak growth {obs.get('unbatched_peak_growth_mb')} MB)"
        )
    return unmet


def scenarios() -> list[Scenario]:
    """The memory scenarios, in report order."""
    return [
        Scenario(
            "batch_size_one_vs_largest", "memory", "Batch size 1 and the largest batch",
            "tasks.ranking.rank_batch one user at a time vs tasks.ranking.rank_users with every sampled "
            "user in one call (forked workers, the engine's largest sub-batch), for 64 seeded users, "
            "with the run's policy.",
            "Identical lists (movie ids in order) and relaxation steps; scores, collab, content and "
            "boosts equal within 1e-5 (float32 rounding of BLAS products of different shapes).",
            _run_batch_sizes,
            _check_batch_sizes,
            inputs=("users", "batch_sizes"),
        ),
        Scenario(
            "memory_budget_respected", "memory", "A memory budget keeps peak memory under it",
            "Collaborative top-10 over the whole catalogue (the policy's CF model, "
            "tasks.ranking.top_k_columns) for enough users that one dense batch would need about twice "
            "edge_cases.memory_budget_mb, in batches sized from the budget "
            "(tasks.budget.rows_within_memory), in a child watched by the memory budget "
            "(tasks.budget.run_with_budget memory_budget_mb); then the same job in one batch.",
            "The budgeted job completes with a measured peak RSS growth under the budget; the one-batch job "
            "is stopped by the watchdog (StageMemoryExceeded).",
            _run_memory_budget,
            _check_memory_budget,
            inputs=("memory_budget_mb", "rows", "batch_rows_from_budget", "estimated_unbatched_mb"),
        ),
    ]  # fmt: skip
