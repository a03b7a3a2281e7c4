"""The search: seeded Optuna studies on the validation bench (part of :mod:`tasks.tuning`).

Order (each study with the same per-model budget: ``tuning.n_trials`` trials and
``tuning.budget_seconds`` seconds):

1. tuned baselines - ``popularity`` (nothing to tune), ``item_knn`` and ``ease`` (a grid,
   :class:`optuna.samplers.GridSampler`, when it has at most n_trials points, else TPE), ``als``
   (TPE); EASE is skipped when the catalogue has more items than ``collab.ease_max_items``;
2. the policy (TPE over the CF model and its parameters, ``lambda_div``, pool size and boosts;
   the alphas per cohort by the grid inside each trial). Its first trials are enqueued: each
   tuned CF baseline as a pure-CF policy (alpha 0 is on the grid, ``lambda_div = 0``, no boosts -
   its lists are exactly that baseline's), best first, then the profile's seed configuration.
   They always run (a study has at least as many trials as warm starts), so the search never
   ends below the best tuned CF baseline on validation.

Samplers are seeded (``tuning.seed`` + study number): the proposals depend only on the inputs,
the seed and the trial count. A trial's result is stored under its parameters in a
:class:`TrialStore` beside the run (``<artifacts>/<profile>/.tuning-trials/<key>/``, key = the
inputs' fingerprints + settings + code): a killed search re-run proposes the same trials and
reads the finished ones back; the Optuna journal of the run records every study. A study that
reaches its time budget stops after the running trial, keeps its best so far, and says so
(``cut_short``); the stage then records it and the decision is NEEDS WORK at best.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.io import atomic_path
from tasks.profile import CandidatesSection, CollabSection, TuningSection
from tasks.ranking import RankingPolicy
from tasks.tuning._bench import ValidationBench
from tasks.tuning._space import (
    cf_grid,
    cf_params,
    policy_from_params,
    ranking_params,
    seed_cf_fits_space,
    suggest_cf,
    suggest_policy,
)

__all__ = ["SearchOutcome", "StudyOutcome", "TrialStore", "run_search"]

_METRICS = ("recall", "map", "ndcg")


class TrialStore:
    """Finished trials of a search, one JSON file per (study, parameters), written atomically."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def _path(self, study: str, params: Mapping[str, Any]) -> Path:
        blob = json.dumps(
            {"study": study, "params": dict(params)}, sort_keys=True, default=str
        ).encode()
        return self.folder / study / f"{hashlib.sha256(blob).hexdigest()[:24]}.json"

    def get(self, study: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        path = self._path(study, params)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent or damaged: recomputed, never trusted
            return None

    def put(self, study: str, params: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        path = self._path(study, params)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(
                json.dumps(dict(record), sort_keys=True, default=float), encoding="utf-8"
            )


@dataclass
class StudyOutcome:
    """One study's result: the best configuration, its validation metrics and every trial."""

    name: str
    best_params: dict[str, Any]
    best_value: float
    best_metrics: dict[str, float]
    best_attrs: dict[str, Any]
    n_trials: int
    n_cached: int
    cut_short: bool
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class SearchOutcome:
    """Every study of a search plus the Optuna study objects of the policy search (for figures)."""

    studies: dict[str, StudyOutcome]
    policy_study: Any
    seconds: float

    @property
    def cut_short(self) -> bool:
        return any(s.cut_short for s in self.studies.values())


def _means(per_user: Mapping[str, Any]) -> dict[str, float]:
    return {m: float(per_user[m].mean()) if len(per_user[m]) else 0.0 for m in _METRICS}


def _study(
    name: str,
    number: int,
    suggest: Callable[[Any], Any],
    evaluate: Callable[[Any], tuple[float, dict[str, Any]]],
    *,
    cfg: TuningSection,
    storage: Any,
    store: TrialStore,
    grid: Mapping[str, Sequence[Any]] | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
    say: Callable[[str], None],
) -> tuple[StudyOutcome, Any]:
    """Run one study: ``suggest(trial)`` turns a trial into a configuration, ``evaluate(config)``
    scores it as (value, attributes). A trial whose parameters are in the store is not computed.
    """
    import optuna

    n_grid = math.prod(len(v) for v in grid.values()) if grid else None
    if grid and n_grid <= cfg.n_trials:
        sampler: Any = optuna.samplers.GridSampler(dict(grid), seed=cfg.seed + number)
        n_trials = n_grid
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate/group TPE is marked experimental
            sampler = optuna.samplers.TPESampler(
                seed=cfg.seed + number,
                multivariate=True,
                group=True,
                n_startup_trials=max(1, min(10, cfg.n_trials // 3)),
            )
        # enqueued warm starts always run (they re-score configurations already found): at least
        # as many trials as there are of them
        n_trials = max(cfg.n_trials, len(enqueue))
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, direction="maximize"
    )
    for params in enqueue:
        study.enqueue_trial(dict(params), skip_if_exists=True)
    counts = {"cached": 0}
    started = time.perf_counter()

    def wrapped(trial: Any) -> float:
        t0 = time.perf_counter()
        config = suggest(trial)
        record = store.get(name, trial.params)
        if record is None:
            value, attrs = evaluate(config)
            store.put(name, trial.params, {"value": value, "attrs": attrs})
        else:
            value, attrs = float(record["value"]), dict(record["attrs"])
            counts["cached"] += 1
        for key, val in attrs.items():
            trial.set_user_attr(key, val)
        trial.set_user_attr("cached", record is not None)
        trial.set_user_attr("trial", trial.number)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        note = " (from an earlier run)" if record is not None else ""
        say(f"{name} trial {trial.number + 1}/{n_trials}: {cfg.metric}@10 {value:.4f}{note}")
        return value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(wrapped, n_trials=n_trials, timeout=cfg.budget_seconds, gc_after_trial=False)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError(
            f"the {name} study finished no trial within tuning.budget_seconds = {cfg.budget_seconds:g}"
        )
    best = study.best_trial
    outcome = StudyOutcome(
        name=name,
        best_params=dict(best.params),
        best_value=float(best.value),
        best_metrics={m: float(best.user_attrs.get(m, float("nan"))) for m in _METRICS},
        best_attrs=dict(best.user_attrs),
        n_trials=len(done),
        n_cached=counts["cached"],
        cut_short=len(done) < n_trials,
        seconds=time.perf_counter() - started,
        trials=[
            _trial_row(name, t) for t in study.trials if t.state != optuna.trial.TrialState.WAITING
        ],
    )
    return outcome, study


def _trial_row(study: str, trial: Any) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "study": study,
        "trial": int(trial.number),
        "state": trial.state.name.lower(),
        "value": None if trial.value is None else float(trial.value),
        "recall@10": attrs.get("recall"),
        "map@10": attrs.get("map"),
        "ndcg@10": attrs.get("ndcg"),
        "params": json.dumps(trial.params, sort_keys=True, default=str),
        "alphas": json.dumps(attrs.get("alphas")) if attrs.get("alphas") is not None else "",
        "seconds": attrs.get("seconds"),
        "cached": bool(attrs.get("cached", False)),
        "enqueued": bool(trial.system_attrs.get("fixed_params")),
    }


def run_search(
    bench: ValidationBench,
    cfg: TuningSection,
    seed_cf: CollabSection,
    candidates: CandidatesSection,
    seed_policy: RankingPolicy,
    relevance_threshold: float,
    *,
    storage: Any,
    store: TrialStore,
    ease_allowed: bool,
    say: Callable[[str], None] = lambda message: None,
) -> SearchOutcome:
    """Every study of the module docstring, in order; returns their outcomes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    metric = cfg.metric
    studies: dict[str, StudyOutcome] = {}

    def evaluate_cf(cf: CollabSection) -> tuple[float, dict[str, Any]]:
        means = _means(bench.cf_only(cf))
        return means[metric], means

    number = 0
    for model in cfg.baselines:
        number += 1
        if model == "popularity":  # nothing to tune: one evaluation, recorded as one trial
            t0 = time.perf_counter()
            means = _means(bench.popularity())
            seconds = round(time.perf_counter() - t0, 3)
            row = {"study": model, "trial": 0, "state": "complete", "value": means[metric],
                   **{f"{m}@10": means[m] for m in _METRICS}, "params": "{}", "alphas": "",
                   "seconds": seconds, "cached": False, "enqueued": False}  # fmt: skip
            studies[model] = StudyOutcome(
                model, {}, means[metric], means, {}, 1, 0, False, seconds, [row]
            )
            continue
        if model == "ease" and not ease_allowed:
            studies[model] = StudyOutcome(
                model, {}, float("nan"), {}, {}, 0, 0, False, 0.0,
                skipped=f"not run: the catalogue has more items than collab.ease_max_items = {seed_cf.ease_max_items:,}",
            )  # fmt: skip
            continue
        enqueue = []
        if (
            model == seed_cf.model
            and seed_cf_fits_space(seed_cf, relevance_threshold)
            and cf_grid(model, relevance_threshold) is None
        ):
            enqueue.append(cf_params(seed_cf))
        say(f"tuning the {model} baseline")
        studies[model], _ = _study(
            model,
            number,
            lambda trial, model=model: suggest_cf(
                trial, model, seed_cf, relevance_threshold, ease_grid=True
            ),
            evaluate_cf,
            cfg=cfg,
            storage=storage,
            store=store,
            grid=cf_grid(model, relevance_threshold),
            enqueue=enqueue,
            say=say,
        )

    def suggest_whole(trial: Any) -> tuple[CollabSection, dict[str, Any]]:
        return suggest_policy(trial, models, seed_cf, candidates, relevance_threshold)

    def evaluate_policy(
        config: tuple[CollabSection, dict[str, Any]],
    ) -> tuple[float, dict[str, Any]]:
        cf, knobs = config
        policy = policy_from_params(knobs, seed_policy.alphas, candidates)
        outcome = bench.policy_grid(
            cf, policy, cfg.alpha_grid, metric=metric, fallback=seed_policy.alphas
        )
        means = {m: outcome.mean(m) for m in _METRICS}
        return means[metric], {**means, "alphas": outcome.alphas}

    models = [m for m in cfg.models if m != "ease" or ease_allowed]
    enqueue: list[dict[str, Any]] = []
    knobs = ranking_params(seed_policy)
    pure = {"lambda_div": 0.0, "w_q": 0.0, "w_r": 0.0, "w_p": 0.0, "n_cf_seed": knobs["n_cf_seed"]}
    tuned = [studies[m] for m in models if m in studies and studies[m].best_params]
    for base in sorted(tuned, key=lambda s: -s.best_value):  # best tuned CF baseline first
        enqueue.append({"model": base.name, **base.best_params, **pure})
    if seed_cf.model in models and seed_cf_fits_space(seed_cf, relevance_threshold):
        enqueue.append({"model": seed_cf.model, **cf_params(seed_cf), **knobs})
    say("searching the policy")
    cfg_policy = cfg
    studies["policy"], policy_study = _study(
        "policy",
        number + 1,
        suggest_whole,
        evaluate_policy,
        cfg=cfg_policy,
        storage=storage,
        store=store,
        enqueue=enqueue,
        say=say,
    )
    return SearchOutcome(
        studies=studies, policy_study=policy_study, seconds=time.perf_counter() - started
    )
