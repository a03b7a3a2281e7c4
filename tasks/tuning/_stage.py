"""The ``tuning`` stage: the seeded search on the validation split, and what it chose.

Reads ``data/train_fit.parquet``, ``data/validation.parquet``, ``data/cohorts.parquet``
(``cohort_fit``), ``data/movies.parquet`` and the features stage's content features - never
``data/test.parquet``. Writes ``tuning/policy.json`` (the chosen
policy: CF model + ranking knobs), ``tuning/baselines.json`` (each tuned baseline's configuration
and validation metrics), ``tuning/validation_metrics.csv`` (every model on validation, the table
the reports put beside the test figures), ``tuning/trials.csv`` (every trial of every study),
``tuning/tuning_results.csv`` (the chosen configuration's alpha grid per cohort, split
"validation"), ``tuning/study.journal`` (Optuna's journal of the run's studies) and two figures
(optimisation history, parameter importances; Optuna's matplotlib plots).
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
from tasks.io import ArtifactRef, atomic_path, read_table, write_json, write_text
from tasks.profile import (
    CandidatesSection,
    CollabSection,
    ContentSection,
    PolicySection,
    SplitSection,
    TuningSection,
)
from tasks.ranking import RankingPolicy, RecommenderArrays
from tasks.stage import StageOutput, run_stage_core, source_hash, stage_task
from tasks.tuning._bench import ValidationBench
from tasks.tuning._document import BASELINES_FILE, policy_document, write_policy
from tasks.tuning._grid import TUNING_FILE, TUNING_K, tuning_check_frame, write_tuning_results
from tasks.tuning._search import SearchOutcome, TrialStore, run_search
from tasks.tuning._space import cf_from_params, policy_from_params

__all__ = ["TUNING_FILES", "tune_policy", "tuning_core", "validation_bench"]

TUNING_FILES = {
    "policy": "tuning/policy.json",
    "baselines": BASELINES_FILE,
    "validation_metrics": "tuning/validation_metrics.csv",
    "trials": "tuning/trials.csv",
    "tuning_results": TUNING_FILE,
    "study_journal": "tuning/study.journal",
    "figure_tuning_history": "figures/tuning_history.png",
    "figure_tuning_importances": "figures/tuning_importances.png",
}
#: Modules whose code decides a trial's result (part of the trial store's key).
_TRIAL_MODULES = ("tasks.tuning", "tasks.ranking", "tasks.cf", "tasks.metrics")


def validation_bench(
    refs: Mapping[str, ArtifactRef],
    *,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    max_users: int,
    seed: int,
    worker: Any = None,
    threads: int | None = None,
) -> ValidationBench:
    """The bench of the run's validation split: arrays from train_fit, every validation user with a
    relevant item (a seeded sample of ``max_users`` of them when > 0)."""
    import os

    from tasks.content import load_content_features
    from tasks.metrics import relevance_matrix

    content = load_content_features(dict(refs))
    train_fit = read_table(
        refs["train_fit"], columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    )
    cohorts = read_table(refs["cohorts"])
    movies = read_table(refs["movies"]) if "movies" in refs else None
    # the dropped history of simulated cold users is NOT excluded here: it lies after their
    # validation ratings, so excluding it would use knowledge from later than validation time
    base = RecommenderArrays.from_parts(
        content,
        None,
        train_fit,
        cohorts=cohorts,
        cohort_column=Col.COHORT_FIT,
        movies=movies,
        relevance_threshold=split_cfg.relevance_threshold,
        bayes_prior_weight=content_cfg.bayes_prior_weight,
    )
    validation = read_table(refs["validation"], columns=[Col.USER, Col.ITEM, Col.RELEVANT])
    rel = validation.loc[validation[Col.RELEVANT].to_numpy(bool)]
    u = base.user_index(rel[Col.USER].to_numpy())
    i = np.searchsorted(base.item_ids, rel[Col.ITEM].to_numpy())
    relevant = relevance_matrix(u, i, base.n_users, base.n_items)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0).astype(np.int64)
    if len(users) == 0:
        from tasks.errors import InputDataError

        raise InputDataError(
            f"no validation user has a relevant item (rating >= {split_cfg.relevance_threshold}): nothing "
            "to choose a policy on. Lower split.relevance_threshold or raise split.validation_fraction."
        )
    n_eligible = len(users)
    if 0 < max_users < len(users):
        users = np.sort(
            np.random.default_rng(seed).choice(users, size=int(max_users), replace=False)
        )
    bench = ValidationBench(
        base,
        users,
        relevant[users],
        seed=seed,
        worker=worker,
        threads=threads or os.cpu_count() or 1,
    )
    bench.n_eligible = n_eligible
    return bench


def _validation_table(search: SearchOutcome, seed_metrics: Mapping[str, float], content_metrics: Mapping[str, float],
                      n_users: int) -> pd.DataFrame:  # fmt: skip
    rows = []
    for name, study in search.studies.items():
        if study.skipped:
            continue
        model = "tuned_policy" if name == "policy" else name
        rows.append({"model": model, **{f"{m}@{TUNING_K}": study.best_metrics[m] for m in ("recall", "map", "ndcg")},
                     "users": n_users, "trials": study.n_trials, "params": json.dumps(study.best_params, sort_keys=True, default=str)})  # fmt: skip
    for model, metrics in (("seed_policy", seed_metrics), ("content", content_metrics)):
        rows.append({"model": model, **{f"{m}@{TUNING_K}": metrics[m] for m in ("recall", "map", "ndcg")},
                     "users": n_users, "trials": 0, "params": "{}"})  # fmt: skip
    order = ["tuned_policy", "ease", "item_knn", "als", "popularity", "content", "seed_policy"]
    table = pd.DataFrame(rows)
    table["_o"] = table["model"].map({m: i for i, m in enumerate(order)})
    return table.sort_values("_o").drop(columns="_o").reset_index(drop=True)


def _figures(study: Any, run_path: Path) -> dict[str, ArtifactRef]:
    """Optuna's optimisation history and parameter importances of the policy search (PNG)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    out: dict[str, ArtifactRef] = {}
    plots = {
        "figure_tuning_history": ovm.plot_optimization_history,
        "figure_tuning_importances": ovm.plot_param_importances,
    }
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances of 1 trial
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(9, 5)
        fig.tight_layout()
        relpath = TUNING_FILES[name]
        (run_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_path / relpath) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        out[name] = ArtifactRef.of(run_path, relpath)
    return out


def _trial_store(run_path: Path, trials_root: str | None, refs: Mapping[str, ArtifactRef],
                 sections: tuple[Any, ...], seed: int) -> TrialStore:  # fmt: skip
    """The trial store of these inputs: ``<root>/<key>``, key = the inputs' fingerprints + every
    setting + the source of the code that computes a trial (never the run id)."""
    import hashlib

    payload = {
        "inputs": {n: r.cache_token() for n, r in sorted(refs.items())},
        "settings": [c.model_dump(mode="json") for c in sections],
        "seed": seed,
        "code": source_hash(list(_TRIAL_MODULES)),
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return TrialStore(
        (Path(trials_root) if trials_root else run_path.parent / ".tuning-trials") / key
    )


def tuning_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    cfg: TuningSection,
    collab: CollabSection,
    candidates: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    seed: int,
    *,
    trials_root: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Pure core of the ``tuning`` stage (module docstring); returns refs + facts."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from tasks.budget import report_progress
    from tasks.cf import ImplicitWorker

    started = time.perf_counter()
    run_path = Path(run_dir)
    report_progress(0.0, "loading train_fit and validation")
    seed_policy = RankingPolicy.from_profile(candidates, policy)
    store = _trial_store(
        run_path, trials_root, refs, (cfg, collab, candidates, policy, split_cfg, content_cfg), seed
    )
    journal_tmp = run_path / "tuning" / ".study.journal.partial"
    journal_tmp.parent.mkdir(parents=True, exist_ok=True)
    journal_tmp.unlink(missing_ok=True)
    storage = JournalStorage(JournalFileBackend(str(journal_tmp)))
    progress = {"n": 0}
    n_studies = 1 + sum(1 for b in cfg.baselines if b != "popularity")

    def say(message: str) -> None:
        progress["n"] += 1
        report_progress(
            min(0.9, 0.05 + 0.85 * progress["n"] / max(1, n_studies * cfg.n_trials)), message
        )

    with ImplicitWorker() as worker:
        bench = validation_bench(refs, split_cfg=split_cfg, content_cfg=content_cfg, max_users=cfg.max_validation_users,
                                 seed=cfg.seed, worker=worker, threads=threads)  # fmt: skip
        n_items_known = int((np.diff(bench.base.seen.tocsc().indptr) > 0).sum())
        search = run_search(
            bench, cfg, collab, candidates, seed_policy, split_cfg.relevance_threshold,
            storage=storage, store=store, ease_allowed=n_items_known <= collab.ease_max_items, say=say,
        )  # fmt: skip
        report_progress(0.92, "scoring the chosen configuration")
        best = search.studies["policy"]
        best_cf = cf_from_params(best.best_params, collab)
        knobs = {k: best.best_params[k] for k in ("lambda_div", "n_cf_seed", "w_q", "w_r", "w_p")}
        grid_policy = policy_from_params(knobs, seed_policy.alphas, candidates)
        outcome = bench.policy_grid(
            best_cf, grid_policy, cfg.alpha_grid, metric=cfg.metric, fallback=seed_policy.alphas
        )
        chosen = policy_from_params(knobs, outcome.alphas, candidates)
        seed_metrics = {
            m: float(v.mean()) for m, v in bench.fixed_policy(collab, seed_policy).items()
        }
        content_metrics = {m: float(v.mean()) for m, v in bench.content().items()}
    n_val = bench.n_users
    eligible = bench.eligible()
    validation = {
        "metric": f"{cfg.metric}@{TUNING_K}",
        "value": float(outcome.mean(cfg.metric)),
        **{f"{m}@{TUNING_K}": float(outcome.mean(m)) for m in ("recall", "map", "ndcg")},
        "users": n_val,
        "users_per_cohort": eligible,
        "users_with_relevant": int(bench.n_eligible),
        "sampled": bool(n_val < bench.n_eligible),
    }
    search_facts = {
        "trials": {name: s.n_trials for name, s in search.studies.items()},
        "trials_read_from_the_store": {name: s.n_cached for name, s in search.studies.items()},
        "cut_short": search.cut_short,
        "cut_short_studies": [n for n, s in search.studies.items() if s.cut_short],
        "n_trials": cfg.n_trials,
        "budget_seconds": cfg.budget_seconds,
        "seed": cfg.seed,
        "best_trial": best.best_attrs.get("trial"),
        "best_params": best.best_params,
        "seconds": round(search.seconds, 3),
    }
    doc = policy_document(
        chosen,
        best_cf,
        outcome.choices,
        validation=validation,
        search=search_facts,
        grid=cfg.alpha_grid,
        run_id=run_path.name,
        profile=run_path.parent.name,
        seed_policy=seed_policy.alphas,
        metric=f"{cfg.metric}@{TUNING_K}",
    )
    baselines = {
        name: {
            "config": None
            if s.skipped
            else cf_from_params(s.best_params, collab).model_dump(mode="json")
            if s.best_params
            else None,
            "params": s.best_params,
            "validation": {f"{m}@{TUNING_K}": v for m, v in s.best_metrics.items()},
            "trials": s.n_trials,
            "cut_short": s.cut_short,
            "skipped": s.skipped,
        }
        for name, s in search.studies.items()
        if name != "policy"
    }
    table = outcome.table
    from tasks.validation import require_valid

    require_valid(tuning_check_frame(table), "tuning_results", source=str(run_path / TUNING_FILE))
    trials = pd.DataFrame([row for s in search.studies.values() for row in s.trials])
    artifacts: dict[str, ArtifactRef] = {
        "policy": write_policy(doc, run_path),
        "baselines": write_json(
            {
                "version": 1,
                "baselines": baselines,
                "seed_policy_validation": seed_metrics,
                "content_validation": content_metrics,
            },
            run_path,
            BASELINES_FILE,
        ),  # fmt: skip
        "validation_metrics": write_text(
            _validation_table(search, seed_metrics, content_metrics, n_val).to_csv(
                index=False, float_format="%.10g"
            ),
            run_path,
            TUNING_FILES["validation_metrics"],
        ),
        "trials": write_text(
            trials.to_csv(index=False, float_format="%.10g"), run_path, TUNING_FILES["trials"]
        ),
        "tuning_results": write_tuning_results(table, run_path),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    artifacts.update(_figures(search.policy_study, run_path))
    journal_tmp.replace(
        run_path / TUNING_FILES["study_journal"]
    )  # complete: publish it under its name
    artifacts["study_journal"] = ArtifactRef.of(run_path, TUNING_FILES["study_journal"])
    report_progress(
        1.0, f"chosen: {best_cf.model}, validation {cfg.metric}@10 {validation['value']:.4f}"
    )
    facts = {
        "policy_id": doc["policy_id"],
        "cf_model": best_cf.model,
        "alphas": chosen.alphas,
        "lambda_div": chosen.lambda_div,
        "validation": {k: v for k, v in validation.items() if k != "users_per_cohort"},
        "baselines_validation": {n: b["validation"] for n, b in baselines.items()},
        "search": {k: v for k, v in search_facts.items() if k != "best_params"},
        "seconds": round(time.perf_counter() - started, 3),
    }
    return {"artifacts": artifacts, "facts": facts}


@stage_task("tuning")
def tune_policy(
    features: StageOutput,
    train_fit: ArtifactRef,
    validation: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    cfg: TuningSection,
    collab: CollabSection,
    candidates: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``tuning``: the search on the validation split (see :mod:`tasks.tuning`)."""
    refs = {
        **features.artifacts,
        "train_fit": train_fit,
        "validation": validation,
        "cohorts": cohorts,
        "movies": movies,
    }
    result = run_stage_core(
        "tuning",
        budget_seconds,
        tuning_core,
        run_dir,
        refs,
        cfg,
        collab,
        candidates,
        policy,
        split_cfg,
        content_cfg,
        seed,
    )
    return StageOutput.from_result("tuning", result)
