"""The ``evaluation`` stage: the chosen policy and every tuned baseline, scored once on test.

Writes ``eval/metrics.parquet`` (long table: model, cohort, metric, k, value, ci_low, ci_high,
n_users), ``eval/paired_tests.parquet`` (tuned policy - each baseline, paired bootstrap +
Wilcoxon), ``eval/gates.json`` (:func:`tasks.tuning.acceptance_gates` with ``signoff.min_lift``),
``eval/per_user.parquet``, ``eval/eval_manifest.json``, the figures (:mod:`tasks.charts`) and the
reports (:mod:`tasks.reports`) - where each test figure stands beside the validation figure the
tuning stage measured for the same model. Nothing here chooses anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tasks.columns import Col
from tasks.evaluation._aggregate import (
    candidate_recall,
    metrics_check_frame,
    model_lists,
    per_user_frame,
    per_user_metrics,
    stacked_metrics_table,
    stacked_paired_table,
    wilcoxon_headline,
)
from tasks.evaluation._batches import EvalModels, evaluate_batches
from tasks.evaluation._plan import EvalPlan, PartStore, evaluation_plan, part_key
from tasks.io import ArtifactRef, read_table, write_json, write_table
from tasks.metrics import RANKING_METRICS
from tasks.profile import (
    CandidatesSection,
    ContentSection,
    EvalSection,
    PolicySection,
    SplitSection,
)
from tasks.ranking import RankingPolicy
from tasks.stage import StageOutput, run_stage_core, stage_task
from tasks.tuning import BASELINE_MODELS, POLICY_MODEL, TUNING_K, acceptance_gates

__all__ = ["EVAL_FILES", "checkpoint_batch", "evaluate_models", "evaluation_core", "evaluation_refs", "evaluation_setup"]

EVAL_FILES: dict[str, str] = {
    "metrics": "eval/metrics.parquet",
    "paired_tests": "eval/paired_tests.parquet",
    "gates": "eval/gates.json",
    "per_user": "eval/per_user.parquet",
    "eval_manifest": "eval/eval_manifest.json",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def evaluation_setup(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    eval_cfg: EvalSection,
    seed_policy: RankingPolicy,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    *,
    parts_root: str | None = None,
) -> tuple[EvalPlan, str, PartStore, Callable[[], EvalModels]]:
    """Plan, checkpoint key, part store and model loader of one evaluation."""
    from tasks.budget import report_progress

    run_path = Path(run_dir)
    cohorts = read_table(refs["cohorts"], columns=[Col.USER, Col.COHORT])
    user_ids = np.sort(cohorts[Col.USER].to_numpy(np.int64))
    item_ids = np.sort(read_table(refs["movies"], columns=[Col.ITEM])[Col.ITEM].to_numpy(np.int64))
    plan = evaluation_plan(
        user_ids,
        item_ids,
        read_table(refs["test"], columns=[Col.USER, Col.ITEM, Col.RELEVANT]),
        cohorts,
        eval_cfg.batch_size,
        sample_users=eval_cfg.sample_users,
        seed=eval_cfg.seed,
    )
    if len(plan.users) == 0:
        raise ValueError(
            f"no test user has a relevant held-out item (rating >= {split_cfg.relevance_threshold}): "
            "nothing to evaluate. Check split.relevance_threshold and data/test.parquet."
        )
    settings = {
        "ks": list(eval_cfg.k_values),
        "batch_size": eval_cfg.batch_size,
        "seed_policy": seed_policy.model_dump(mode="json"),
        "relevance_threshold": split_cfg.relevance_threshold,
        "bayes_prior_weight": content_cfg.bayes_prior_weight,
        "sample_users": eval_cfg.sample_users,
        "eval_seed": eval_cfg.seed,
    }
    key = part_key(refs, settings, {})
    store = PartStore((Path(parts_root) if parts_root else run_path.parent / ".eval-parts") / key)

    def load() -> EvalModels:
        report_progress(0.01, "loading the models")
        return EvalModels.load(
            run_path, refs, relevance_threshold=split_cfg.relevance_threshold,
            bayes_prior_weight=content_cfg.bayes_prior_weight, seed_policy=seed_policy,
        )  # fmt: skip

    return plan, key, store, load


#: What a worker process keeps between batches, per set of inputs (only the newest is kept).
_WORKER_STATE: dict[str, Any] = {}


def checkpoint_batch(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy_cfg: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    index: int | None,
    *,
    parts_root: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Compute batch ``index`` and write its part file unless a valid one exists - for a remote
    worker (:mod:`flows.dask_batches`); the ``evaluation`` stage then reuses the part exactly as if
    it had computed it (same key, same file). ``index=None`` only plans: returns ``{"n_batches",
    "missing", "parts_folder"}``. The plan and the models are loaded once per process."""
    from tasks.evaluation._batches import compute_batch

    seed_policy = RankingPolicy.from_profile(candidates_cfg, policy_cfg)
    signature = json.dumps(
        [str(Path(run_dir).resolve()), {n: r.cache_token() for n, r in sorted(refs.items())},
         [c.model_dump(mode="json") for c in (eval_cfg, candidates_cfg, policy_cfg, split_cfg, content_cfg)], parts_root],
        sort_keys=True,
    )  # fmt: skip
    state = _WORKER_STATE.get(signature)
    if state is None:
        _WORKER_STATE.clear()
        plan, _, store, load = evaluation_setup(run_dir, refs, eval_cfg, seed_policy, split_cfg, content_cfg, parts_root=parts_root)
        state = _WORKER_STATE[signature] = {"plan": plan, "store": store, "load": load, "models": None}
    plan, store = state["plan"], state["store"]

    def part_ok(i: int) -> bool:
        found = store.read(f"batch-{i:05d}.parquet")
        return found is not None and np.array_equal(found[0].column("user_idx").to_numpy(), plan.batch(i).astype(np.int32))

    if index is None:
        return {"n_batches": plan.n_batches, "missing": [i for i in range(plan.n_batches) if not part_ok(i)],
                "parts_folder": str(store.folder)}  # fmt: skip
    if not 0 <= index < plan.n_batches:
        raise ValueError(f"batch {index} does not exist: the plan has {plan.n_batches} batches")
    started = time.perf_counter()
    users = plan.batch(index)
    if part_ok(index):
        return {"batch": index, "computed": False, "users": int(len(users)), "seconds": 0.0}
    if state["models"] is None:
        state["models"] = state["load"]()
    table, meta = compute_batch(state["models"], plan, users, tuple(int(k) for k in eval_cfg.k_values), threads=threads)
    meta["batch"] = index
    store.write(f"batch-{index:05d}.parquet", table, meta)
    return {"batch": index, "computed": True, "users": int(len(users)), "seconds": round(time.perf_counter() - started, 3)}


def evaluation_refs(
    features: StageOutput,
    collab: StageOutput,
    tuning: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    dropped_history: ArtifactRef,
) -> dict[str, ArtifactRef]:
    """The artifact refs the evaluation reads (the same names everywhere, so the part key is too)."""
    return {
        **features.artifacts,
        **collab.artifacts,
        "policy": tuning.ref("policy"),
        "baselines": tuning.ref("baselines"),
        "train": train,
        "test": test,
        "cohorts": cohorts,
        "movies": movies,
        "dropped_history": dropped_history,
    }


def evaluation_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy_cfg: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    min_lift: float,
    seed: int,
    *,
    parts_root: str | None = None,
    threads: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    reports: bool = True,
) -> dict[str, Any]:
    """Pure core of the ``evaluation`` stage (module docstring); returns refs + facts.

    ``on_batch(batch)`` is called before a batch is computed (not when read from a checkpoint);
    tests use it to interrupt a run. ``reports=False`` skips figures and reports.
    """
    import os

    from tasks.budget import report_progress
    from tasks.validation import require_valid

    started = time.perf_counter()
    run_path = Path(run_dir)
    report_progress(0.0, "planning the evaluation")
    seed_policy = RankingPolicy.from_profile(candidates_cfg, policy_cfg)
    plan, key, store, load = evaluation_setup(
        run_dir, refs, eval_cfg, seed_policy, split_cfg, content_cfg, parts_root=parts_root
    )
    ks = tuple(int(k) for k in eval_cfg.k_values)
    width = max(max(ks), TUNING_K)
    results = evaluate_batches(
        load, plan, ks, store, threads=max(1, int(threads or os.cpu_count() or 1)), on_batch=on_batch,
        progress=report_progress,
    )  # fmt: skip
    report_progress(0.82, "metrics, bootstrap intervals and paired tests")
    agg_start = time.perf_counter()
    table = results.table
    models = [m for m in (POLICY_MODEL, *BASELINE_MODELS) if f"recs|{m}" in table.column_names]
    labels = table.column("cohort").to_numpy(zero_copy_only=False).astype(object)
    per_user = {m: per_user_metrics(table, m, ks) for m in models}
    recs = {m: model_lists(table, m, width) for m in models}
    metrics = stacked_metrics_table(models, per_user, recs, labels, plan.n_items, eval_cfg.bootstrap_samples,
                                    eval_cfg.confidence, eval_cfg.seed)  # fmt: skip
    require_valid(
        metrics_check_frame(metrics), "metrics", source=str(run_path / EVAL_FILES["metrics"])
    )
    keys = [(m, int(k)) for m in RANKING_METRICS for k in ks]
    tuned = {k: per_user[POLICY_MODEL][k] for k in keys}
    bases = {b: {k: per_user[b][k] for k in keys} for b in models if b != POLICY_MODEL}
    paired = stacked_paired_table(
        tuned, bases, labels, eval_cfg.bootstrap_samples, eval_cfg.confidence, eval_cfg.seed
    )
    if TUNING_K in ks:
        paired = wilcoxon_headline(paired, labels, tuned, bases, TUNING_K)
    gates = acceptance_gates(
        metrics, paired, min_lift=min_lift, baselines=[m for m in models if m != POLICY_MODEL]
    )
    cand_recall = candidate_recall(table)
    aggregate_seconds = time.perf_counter() - agg_start
    artifacts: dict[str, ArtifactRef] = {
        "metrics": write_table(metrics, run_path, EVAL_FILES["metrics"]),
        "paired_tests": write_table(paired, run_path, EVAL_FILES["paired_tests"]),
        "gates": write_json(gates, run_path, EVAL_FILES["gates"]),
        "per_user": write_table(
            per_user_frame(plan, table, models, ks, width), run_path, EVAL_FILES["per_user"]
        ),
    }
    policy_doc = _read_json(run_path / "tuning/policy.json")
    if reports:
        report_progress(0.92, "charts and reports")
        from tasks.evaluation._reports import write_charts_and_reports

        k_recall = TUNING_K if TUNING_K in ks else ks[0]
        artifacts.update(
            write_charts_and_reports(
                run_path,
                refs,
                plan,
                eval_cfg,
                split_cfg,
                metrics,
                paired,
                policy_doc,
                gates,
                {m: per_user[m]["recall", k_recall] for m in models},
                cand_recall,
                min_lift,
            )  # fmt: skip
        )
    headline = metrics.loc[
        (metrics["cohort"] == "all")
        & metrics["metric"].isin(["recall", "map", "ndcg"])
        & (metrics["k"] == TUNING_K)
    ]
    facts = {
        "users_eval": int(len(plan.users)),
        "users_with_relevant": int(plan.eligible["all"]),
        "models": models,
        "batches": plan.n_batches,
        "batches_computed": len(results.computed),
        "batches_reused": len(results.reused),
        "parts_folder": str(store.folder),
        "policy": policy_doc.get("alphas"),
        "policy_id": policy_doc.get("policy_id"),
        "gates_passed": bool(gates["all_passed"]),
        "failed_gates": [g["name"] for g in gates["gates"] if g["passed"] is not True],
        "best_baseline": gates.get("best_baseline"),
        "candidate_recall": cand_recall,
        "headline": {
            f"{r['model']}|{r['metric']}@{TUNING_K}": round(float(r["value"]), 6)
            for r in headline.to_dict("records")
        },
        "seconds": {
            "load": round(results.load_seconds, 3),
            "batches": round(results.seconds, 3),
            "aggregate": round(aggregate_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        "users_per_second": round(len(plan.users) / results.seconds, 1)
        if results.computed and results.seconds > 0
        else None,
        "work_seconds": _sum_timings(results.metas),
    }
    artifacts["eval_manifest"] = write_json(
        {"kind": "evaluation", "key": key, "facts": facts}, run_path, EVAL_FILES["eval_manifest"]
    )
    report_progress(1.0, "done")
    return {"artifacts": artifacts, "facts": facts}


def _sum_timings(metas: list[Mapping[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for meta in metas:
        for name, value in meta.get("timings", {}).items():
            total[name] = round(total.get(name, 0.0) + float(value), 3)
    return total


@stage_task("evaluation")
def evaluate_models(
    features: StageOutput,
    collab: StageOutput,
    tuning: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    dropped_history: ArtifactRef,
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    min_lift: float,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``evaluation``: every test user, the tuned policy and every tuned baseline, once."""
    refs = evaluation_refs(features, collab, tuning, train, test, cohorts, movies, dropped_history)
    result = run_stage_core(
        "evaluation", budget_seconds, evaluation_core, run_dir, refs, eval_cfg, candidates_cfg, policy,
        split_cfg, content_cfg, min_lift, seed,
    )  # fmt: skip
    return StageOutput.from_result("evaluation", result)
