"""Benchmark: the evaluation stage's work on bench-32m-shaped inputs (every test user, the whole grid).

Builds the random bench-32m-shaped model arrays of ``scripts/bench_models.py`` (200,948 users x
87,585 items, 20 factors, ~32M seen ratings, 384-d embeddings) and a held-out set in the shape of
the split: per user about a quarter of its training count held out (at least one), items drawn by
popularity, relevant with probability 0.55, never an item the user saw. Cohorts by training count
(cold <= 5 < light <= 20 < medium <= 100 < heavy). Then runs what ``evaluation_core`` runs - the
batches (pools, content GEMM, lists at every alpha with MMR, baselines, per-user metrics,
checkpoints), the grid summary, the policy choice, aggregation with bootstrap intervals and paired
tests, the gates, charts and reports - in a forked child under a budget, like the stage
(:func:`tasks.budget.run_with_budget`, which reports the child's peak memory).

Prints users/s of the batches, the seconds of every phase, the projection for every test user and
the peak memory. Targets (issue): whole evaluation <= 600 s, peak < 12 GB on this 2-core machine.

    python scripts/bench_eval.py                         # every test user (~190k)
    python scripts/bench_eval.py --users 20000           # a seeded sample, with a projection
    python scripts/bench_eval.py --users 20000 --rerun   # then again from the checkpoints
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_models import build_arrays  # noqa: E402
from tasks.columns import Col  # noqa: E402
from tasks.profile import load_profile  # noqa: E402


def held_out(arrays, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(test table with ``relevant``, cohorts table) in the split's shape (module docstring)."""
    rng = np.random.default_rng(seed + 1)
    seen = arrays.seen
    n_users, n_items = seen.shape
    n_seen = np.diff(seen.indptr).astype(np.int64)
    n_test = np.maximum(1, np.rint(0.25 * n_seen)).astype(np.int64)
    counts = np.bincount(seen.indices, minlength=n_items).astype(np.float64) + 1.0
    p = counts / counts.sum()
    items = rng.choice(n_items, size=int(n_test.sum()), p=p).astype(np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int64), n_test)
    keys = users * n_items + items
    seen_keys = np.repeat(np.arange(n_users, dtype=np.int64), n_seen) * n_items + seen.indices
    pos = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
    keep = seen_keys[pos] != keys
    keys = np.sort(keys[keep])  # sort-based de-duplication (np.unique is slow here)
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    users, items = keys // n_items, keys % n_items
    test = pd.DataFrame(
        {
            Col.USER: arrays.user_ids[users].astype(np.int32),
            Col.ITEM: arrays.item_ids[items].astype(np.int32),
            Col.RELEVANT: rng.random(len(keys)) < 0.55,
        }
    )
    cohort = np.select(
        [n_seen <= 5, n_seen <= 20, n_seen <= 100], ["cold", "light", "medium"], "heavy"
    )
    cohorts = pd.DataFrame({Col.USER: arrays.user_ids, Col.COHORT: cohort.astype(object)})
    return test, cohorts


def run_evaluation(
    arrays, test, cohorts, profile, parts_dir: str, run_dir: str, users: int, threads: int
) -> dict:
    """The stage core's sequence on in-memory arrays (runs inside the budgeted child)."""
    from tasks.budget import report_progress
    from tasks.charts import write_all_charts
    from tasks.evaluation import (
        EvalSettings,
        PartStore,
        aggregate_results,
        evaluate_batches,
        evaluation_plan,
        grid_summary,
        metric_context,
        metrics_check_frame,
    )
    from tasks.reports import write_offline_reports
    from tasks.tuning import acceptance_gates, choose_alphas, policy_document, tuning_check_frame
    from tasks.validation import require_valid

    t0 = time.perf_counter()
    settings = EvalSettings.from_profile(
        profile.eval, profile.candidates, profile.policy, threads=threads
    )
    plan = evaluation_plan(
        arrays.user_ids,
        arrays.item_ids,
        test,
        cohorts,
        settings.batch_size,
        sample_users=users,
        seed=profile.eval.seed,
    )
    store = PartStore(parts_dir)
    plan_s = time.perf_counter() - t0
    results = evaluate_batches(arrays, plan, settings, store, progress=report_progress)
    t1 = time.perf_counter()
    tuning = grid_summary(results, settings, plan.eligible)
    require_valid(tuning_check_frame(tuning), "tuning_results", source="bench tuning_results")
    alphas, choices = choose_alphas(tuning, settings.seed_policy, allow_timed_out=False)
    policy = policy_document(
        alphas,
        choices,
        grid=settings.grid,
        run_id="bench",
        profile="bench-32m",
        n_users=plan.users_per_cohort(),
        seed_policy=settings.seed_policy,
        mmr_in_grid=True,
    )
    share, n_train = metric_context(arrays.seen)
    metrics, paired, per_user_recall, _, _ = aggregate_results(
        results,
        settings,
        alphas,
        plan=plan,
        metric_inputs=(share, n_train, arrays.embeddings),
        n_boot=profile.eval.bootstrap_samples,
        confidence=profile.eval.confidence,
        seed=profile.eval.seed,
    )
    t2 = time.perf_counter()
    require_valid(metrics_check_frame(metrics), "metrics", source="bench metrics")
    gates = acceptance_gates(metrics, paired, min_lift=profile.eval.min_lift)
    figures = write_all_charts(
        run_dir, metrics, tuning, per_user_recall, paired=paired, policy=policy
    )
    write_offline_reports(
        run_dir, metrics, paired, tuning, policy, gates, {"run_id": "bench"}, figures
    )
    t3 = time.perf_counter()
    return {
        "users": int(len(plan.users)),
        "eligible": int(plan.eligible["all"]),
        "batches": plan.n_batches,
        "computed": len(results.computed),
        "reused": len(results.reused),
        "plan_s": plan_s,
        "prepare_s": results.load_seconds,
        "batches_s": results.seconds,
        "aggregate_s": t2 - t1,
        "validate_charts_reports_s": t3 - t2,
        "total_s": t3 - t0,
        "work": {k: round(v, 1) for k, v in _sum(results.metas).items()},
        "policy": alphas,
        "gates": gates["all_passed"],
        "real_path_check": [
            sum(m["real_path_check"][k] for m in results.metas) for k in ("identical", "users")
        ],
        "recall10": metrics.loc[
            (metrics.cohort == "all") & (metrics.metric == "recall") & (metrics.k == 10)
        ]
        .set_index("model")["value"]
        .round(4)
        .to_dict(),
    }


def _sum(metas):
    out = {}
    for m in metas:
        for k, v in m["timings"].items():
            out[k] = out.get(k, 0.0) + v
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--users", type=int, default=0, help="evaluate a seeded sample (0 = every test user)"
    )
    parser.add_argument("--threads", type=int, default=0, help="worker threads (0 = every core)")
    parser.add_argument("--profile", default="bench-32m")
    parser.add_argument(
        "--budget", type=float, default=1800.0, help="seconds before the child is killed"
    )
    parser.add_argument(
        "--rerun", action="store_true", help="run a second time from the checkpoints"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from tasks.budget import run_with_budget

    t0 = time.perf_counter()
    arrays = build_arrays(seed=args.seed)
    test, cohorts = held_out(arrays, args.seed)
    n_rel_users = test.loc[test[Col.RELEVANT], Col.USER].nunique()
    print(
        f"built bench inputs in {time.perf_counter() - t0:.1f} s: {arrays.n_users:,} users x {arrays.n_items:,} "
        f"items, {arrays.seen.nnz:,} seen, {len(test):,} held out ({int(test[Col.RELEVANT].sum()):,} relevant, "
        f"{n_rel_users:,} users with one)",
        flush=True,
    )
    profile = load_profile(args.profile, environ={})
    threads = args.threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        parts, run_dir = os.path.join(tmp, "parts"), os.path.join(tmp, "run")
        for label in ("first run", "re-run from checkpoints")[: 2 if args.rerun else 1]:
            last = {"f": -1.0}

            def show(fraction: float, message: str, last: dict = last) -> None:
                if fraction - last["f"] >= 0.05 or fraction >= 1.0:
                    last["f"] = fraction
                    print(f"  {100 * fraction:5.1f}%  {message}", flush=True)

            result = run_with_budget(
                "evaluation",
                args.budget,
                run_evaluation,
                arrays,
                test,
                cohorts,
                profile,
                parts,
                run_dir,
                args.users,
                threads,
                on_progress=show,
            )
            r = result.value
            print(
                f"\n{label}: {r['users']:,} users of {r['eligible']:,} with a relevant item, {r['batches']} batches "
                f"({r['computed']} computed, {r['reused']} from checkpoints), {threads} threads"
            )
            print(f"  prepare (shared state)    {r['prepare_s']:8.1f} s")
            print(
                f"  batches                   {r['batches_s']:8.1f} s   ({r['users'] / r['batches_s']:,.0f} users/s)"
            )
            print(f"  aggregate (bootstrap...)  {r['aggregate_s']:8.1f} s")
            print(f"  validate, charts, reports {r['validate_charts_reports_s']:8.1f} s")
            print(
                f"  total                     {r['total_s']:8.1f} s   wall {result.wall_seconds:.1f} s"
            )
            print(f"  peak memory (child)       {result.peak_rss_bytes / 2**30:8.2f} GiB")
            print(f"  work seconds (thread-summed): {r['work']}")
            print(
                f"  real-path check: {r['real_path_check'][0]}/{r['real_path_check'][1]} identical lists"
            )
            print(f"  policy {r['policy']}, gates passed: {r['gates']}")
            print(f"  Recall@10: {r['recall10']}")
            if r["computed"] and r["users"] < r["eligible"]:
                scale = r["eligible"] / r["users"]
                projected = (
                    r["prepare_s"]
                    + r["batches_s"] * scale
                    + (r["aggregate_s"] + r["validate_charts_reports_s"]) * scale
                )
                print(
                    f"  projection for all {r['eligible']:,} users: about {projected:,.0f} s "
                    f"(batches and aggregation scaled linearly)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
