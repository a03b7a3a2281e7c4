"""Tuning: every choice of the pipeline, made on the validation split only (DESIGN.md step 7).

Place in the pipeline: the ``tuning`` stage, after ``split`` and ``features`` and before
``collaborative`` (which refits the chosen CF model on the full train) and ``evaluation`` (which
scores the chosen policy and every tuned baseline ONCE on test). Nothing here reads the test set.

A seeded Optuna search (:mod:`tasks.tuning._search`) on a validation bench
(:mod:`tasks.tuning._bench`: models fitted on ``train_fit``, scored on ``validation``) tunes the
baselines (popularity, item kNN, EASE, ALS) and then the whole policy - the CF model and its
parameters, ``lambda_div``, the pool size, the boosts, and inside each trial the content weight of
every cohort (:mod:`tasks.tuning._grid`). The space is :mod:`tasks.tuning._space`; the files the
stage writes, :mod:`tasks.tuning._stage`; the acceptance gates the evaluation and the handoff
apply on test, :mod:`tasks.tuning._gates`.
"""

from tasks.tuning._bench import GridOutcome, ValidationBench
from tasks.tuning._document import BASELINES_FILE, LAMBDA_DIV_MEANING, policy_document, write_policy
from tasks.tuning._gates import BASELINE_MODELS, POLICY_MODEL, acceptance_gates, best_baseline
from tasks.tuning._grid import (
    SELECTION_RULE,
    TUNING_COLUMNS,
    TUNING_FILE,
    TUNING_K,
    choice_text,
    choose_alphas,
    summarise_grid,
    tuning_check_frame,
    write_tuning_results,
)
from tasks.tuning._search import SearchOutcome, StudyOutcome, TrialStore, run_search
from tasks.tuning._stage import TUNING_FILES, tune_policy, tuning_core, validation_bench

__all__ = [
    "BASELINES_FILE",
    "BASELINE_MODELS",
    "LAMBDA_DIV_MEANING",
    "POLICY_MODEL",
    "SELECTION_RULE",
    "TUNING_COLUMNS",
    "TUNING_FILE",
    "TUNING_FILES",
    "TUNING_K",
    "GridOutcome",
    "SearchOutcome",
    "StudyOutcome",
    "TrialStore",
    "ValidationBench",
    "acceptance_gates",
    "best_baseline",
    "choice_text",
    "choose_alphas",
    "policy_document",
    "run_search",
    "summarise_grid",
    "tune_policy",
    "tuning_check_frame",
    "tuning_core",
    "validation_bench",
    "write_policy",
    "write_tuning_results",
]
