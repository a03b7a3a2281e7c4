"""The scenario runner: every scenario in its own forked child with a time limit, each a pass or
a fail with its evidence, never a crash of the stage (part of :mod:`tasks.edge_cases`).

An exception inside a scenario, a check that raises, or a scenario stopped at its time limit
(``edge_cases.scenario_time_limit_seconds``, or what is left of the stage budget) is a FAIL with
the error recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tasks.budget import StageTimeout, run_with_budget
from tasks.edge_cases import cpu_time, filters, input_data, memory, sorting_ties, user_behaviour
from tasks.edge_cases._context import (
    CATEGORIES,
    EdgeContext,
    Observed,
    Scenario,
    ScenarioResult,
)

__all__ = ["default_scenarios", "error_text", "pass_rates", "run_scenario", "run_scenarios"]

#: The module of each category, in report order.
_CATEGORY_MODULES = {
    "input_data": input_data,
    "user_behaviour": user_behaviour,
    "filters": filters,
    "sorting_ties": sorting_ties,
    "cpu_time": cpu_time,
    "memory": memory,
}


def default_scenarios() -> list[Scenario]:
    """Every edge case of the stage, in report order (at least 18, in the six categories)."""
    return [s for category in CATEGORIES for s in _CATEGORY_MODULES[category].scenarios()]


def error_text(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _execute(scenario: Scenario, ctx: EdgeContext) -> Observed:
    """In the scenario's child: run it; an exception is returned as the observation."""
    try:
        return {"observed": scenario.run(ctx)}
    except Exception as exc:  # noqa: BLE001 - a failing scenario is a result, not a crash
        import traceback

        return {"error": error_text(exc), "traceback": traceback.format_exc()[-4000:]}


def run_scenario(scenario: Scenario, ctx: EdgeContext, time_limit: float) -> ScenarioResult:
    """Run one scenario in its own child, stopped at ``time_limit``; never raises for its failures."""
    start = time.monotonic()
    observed: Observed = {}
    error = ""
    if time_limit < 1.0:
        error = "not run: the stage's time budget was used up by the scenarios before it"
    else:
        try:
            value = run_with_budget(
                f"edge_cases:{scenario.id}", time_limit, _execute, scenario, ctx
            ).value
            observed = value.get("observed", {})
            if "error" in value:
                error = value["error"]
                observed = {"traceback": value.get("traceback", "")}
        except StageTimeout:
            error = (
                f"stopped at its time limit of {time_limit:.3g} s "
                "(edge_cases.scenario_time_limit_seconds, or what was left of the stage budget)"
            )
        except Exception as exc:  # noqa: BLE001 - the child died (e.g. killed for memory): a failure
            error = error_text(exc)
    seconds = time.monotonic() - start
    if error:
        unmet = [f"the scenario did not finish: {error}"]
    else:
        try:
            unmet = list(scenario.check(observed))
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check
            unmet = [f"the check raised {error_text(exc)}"]
    return ScenarioResult(
        id=scenario.id,
        category=scenario.category,
        title=scenario.title,
        what_is_run=scenario.what_is_run,
        expected=scenario.expected,
        observed=observed,
        unmet=unmet,
        error=error,
        passed=not unmet,
        seconds=seconds,
        inputs=scenario.inputs,
    )


def run_scenarios(
    scenarios: Sequence[Scenario],
    ctx: EdgeContext,
    time_limit: float,
    progress: Callable[[float, str], None] | None = None,
    deadline: float | None = None,
) -> list[ScenarioResult]:
    """Every scenario, one after the other, each in its own child with its own time limit.

    ``deadline`` (``time.monotonic()`` value): no scenario runs past it - a hanging scenario then
    fails at the deadline and the ones after it fail unrun, but the stage still reports them all.
    """
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"scenario ids must be unique: {sorted(i for i in ids if ids.count(i) > 1)}"
        )
    results = []
    for n, scenario in enumerate(scenarios):  # scenarios are independent; one child each
        if progress is not None:
            progress(n / max(len(scenarios), 1), f"{scenario.id}")
        limit = time_limit if deadline is None else min(time_limit, deadline - time.monotonic())
        results.append(run_scenario(scenario, ctx, limit))
    return results


def pass_rates(results: Sequence[ScenarioResult]) -> tuple[float, dict[str, float]]:
    """Overall pass rate and the pass rate per category (categories with scenarios only)."""
    overall = sum(r.passed for r in results) / len(results) if results else 0.0
    per: dict[str, float] = {}
    for cat in CATEGORIES:
        mine = [r for r in results if r.category == cat]
        if mine:
            per[cat] = round(sum(r.passed for r in mine) / len(mine), 4)
    return round(overall, 4), per
