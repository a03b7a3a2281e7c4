"""Edge cases: scenarios run against the real code paths, each pass or fail with its evidence.

Place in the pipeline: the ``edge_cases`` stage (DESIGN.md step 10, seed 4.3), after
``evaluation``, beside ``case_studies`` (whose triptych drawing it reuses). It loads the run's
arrays and chosen policy once (``tuning/policy.json``, ``models/cf/policy/``) and runs every
scenario of :func:`default_scenarios` (21, at least 18, in six categories) through the product's
own functions: the ingest (:func:`tasks.ingest.ingest_core`), the ranking engine
(:func:`tasks.ranking.rank_batch`, :func:`~tasks.ranking.rank_users`,
:func:`~tasks.ranking.recommend_for_user`), the evaluation (:func:`tasks.evaluation.evaluation_core`)
and the budgets of :mod:`tasks.budget`.

A scenario's expected outcome is written in its category's module, before it runs, next to its
machine check; each runs in its own forked child with a time limit, and an exception or a
timeout is a FAIL with the error recorded - never a crash of the stage. Gate: pass rate >=
``edge_cases.min_pass_rate``.

Modules: one per category (``input_data``, ``user_behaviour``, ``filters``, ``sorting_ties``,
``cpu_time``, ``memory``), ``_context`` (scenario, result, shared context), ``_serving`` (special
users and facts about served lists), ``_runner``, ``_report`` (evidence, table, report),
``_stage`` (core, Prefect task, ``python -m tasks.edge_cases RUN_DIR [--only ID ...]``).
"""

from tasks.edge_cases._context import (
    CATEGORIES,
    CATEGORY_TITLES,
    LIST_K,
    MIN_SCENARIOS,
    EdgeContext,
    Scenario,
    ScenarioResult,
)
from tasks.edge_cases._report import (
    EDGE_DIR,
    REPORT,
    RESULTS_TABLE,
    edge_cases_check_frame,
    render_report,
    write_outputs,
)
from tasks.edge_cases._runner import default_scenarios, pass_rates, run_scenario, run_scenarios
from tasks.edge_cases._serving import user_view
from tasks.edge_cases._stage import (
    edge_cases_core,
    main,
    refs_from_run_dir,
    rerun_edge_cases,
    run_edge_cases,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_TITLES",
    "EDGE_DIR",
    "LIST_K",
    "MIN_SCENARIOS",
    "REPORT",
    "RESULTS_TABLE",
    "EdgeContext",
    "Scenario",
    "ScenarioResult",
    "default_scenarios",
    "edge_cases_check_frame",
    "edge_cases_core",
    "main",
    "pass_rates",
    "refs_from_run_dir",
    "render_report",
    "rerun_edge_cases",
    "run_edge_cases",
    "run_scenario",
    "run_scenarios",
    "user_view",
    "write_outputs",
]
