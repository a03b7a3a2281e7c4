"""The sign-off decision rule: APPROVE / NEEDS WORK / REJECT as a pure function of recorded gates.

Shared by the ``handoff`` stage (:mod:`tasks.signoff` measures the gates and decides) and the
``inventory`` (:mod:`tasks.inventory` re-checks a recorded ``signoff/signoff.json`` through the
``signoff`` suite, which recomputes the decision from the recorded gates). Neither of those two
modules imports the other; both import this one.

A gate is a dict ``{"name", "label", "measured", "threshold", "comparison", "passed", "effect",
"unit", "source", "note"}``; ``passed`` is ``measured <comparison> threshold`` (:func:`passes`), and a
value that was not measured (None) never passes. ``effect`` is ``"reject"`` or ``"approve"``.

Rule (:func:`decide`): **REJECT** when a gate with effect "reject" fails; **APPROVE** when every
gate passes; **NEEDS WORK** otherwise. The reasons name every failed gate with its measured value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "DECISIONS",
    "COMPARISONS",
    "UNITS",
    "decide",
    "format_threshold",
    "format_value",
    "passes",
    "reason",
    "signoff_check_frame",
]

DECISIONS = ("APPROVE", "NEEDS WORK", "REJECT")
COMPARISONS = (">=", ">", "<=")
#: How a gate's numbers are shown: a share (``percent``), a relative change (``relative``), a count,
#: a yes/no flag (1.0 = yes) or a plain number.
UNITS = ("number", "percent", "relative", "count", "flag")


def passes(measured: float | None, threshold: float, comparison: str) -> bool:
    """``measured <comparison> threshold``; a value that was not measured (None/NaN) never passes.

    >>> passes(0.31, 0.30, ">="), passes(None, 0.30, ">="), passes(0.0, 0.0, ">"), passes(0, 0, "<=")
    (True, False, False, True)
    """
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return False
    ops = {">=": measured >= threshold, ">": measured > threshold, "<=": measured <= threshold}
    if comparison not in ops:
        raise ValueError(f"unknown comparison {comparison!r}; use one of {sorted(ops)}")
    return bool(ops[comparison])


def format_value(value: float | None, unit: str = "number") -> str:
    """A gate's measured value for people.

    >>> format_value(0.1603, "relative"), format_value(0.95, "percent"), format_value(2.0, "count")
    ('+16.03%', '95.00%', '2')
    >>> format_value(1.0, "flag"), format_value(None, "percent"), format_value(0.0871)
    ('yes', 'not measured', '0.0871')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    if unit == "percent":
        return f"{100 * value:.2f}%"
    if unit == "relative":
        return "inf" if math.isinf(value) else f"{100 * value:+.2f}%"
    if unit == "count":
        return f"{int(value)}"
    if unit == "flag":
        return "yes" if value >= 1.0 else "no"
    return "inf" if math.isinf(value) else f"{value:.4f}"


def format_threshold(g: Mapping[str, Any]) -> str:
    """``<comparison> <threshold>`` in the gate's unit (a flag gate reads "yes")."""
    unit = g.get("unit", "number")
    if unit == "flag":
        return "yes"
    return f"{g['comparison']} {format_value(float(g['threshold']), unit)}"


def reason(g: Mapping[str, Any]) -> str:
    """One failed gate as a sentence: ``name: label = measured, needs threshold (note)``."""
    text = (
        f"{g['name']}: {g['label']} = {format_value(g['measured'], g.get('unit', 'number'))}, "
        f"needs {format_threshold(g)}"
    )
    if g.get("note"):
        text += f" ({g['note']})"
    return text


def decide(gates: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The recommendation and its reasons from the gates (module docstring: the rule).

    >>> g = lambda name, ok, effect="approve": {"name": name, "label": name, "measured": 1.0,
    ...     "threshold": 0.0, "comparison": ">=", "passed": ok, "effect": effect, "note": ""}
    >>> decide([g("a", True), g("b", True)])[0]
    'APPROVE'
    >>> decide([g("a", True), g("b", False)])[0]
    'NEEDS WORK'
    >>> decide([g("a", False, "reject"), g("b", False)])[0]
    'REJECT'
    """
    if not gates:
        return "NEEDS WORK", ["no gate could be evaluated"]
    failed = [g for g in gates if not g["passed"]]
    rejecting = [g for g in failed if g.get("effect") == "reject"]
    if rejecting:
        reasons = [f"REJECT because {reason(g)}" for g in rejecting]
        reasons += [reason(g) for g in failed if g.get("effect") != "reject"]
        return "REJECT", reasons
    if failed:
        return "NEEDS WORK", [reason(g) for g in failed]
    return "APPROVE", [f"every gate passed ({len(gates)} gates)"]


def signoff_check_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """signoff.json as the ``signoff`` suite's facts table: one row per gate; ``pass_consistent``
    (the recorded flag equals measured vs threshold) and ``decision_matches_gates`` (the recorded
    decision equals :func:`decide` on the recorded gates)."""
    gates = list(data.get("gates", []))
    recomputed = decide(gates)[0] if gates else None
    rows = []
    for g in gates:
        measured = g.get("measured")
        rows.append(
            {
                "name": str(g.get("name")),
                "measured": float("nan") if measured is None else float(measured),
                "threshold": float(g.get("threshold", float("nan"))),
                "passed": bool(g.get("passed")),
                "pass_consistent": bool(g.get("passed"))
                == passes(measured, float(g.get("threshold", 0.0)), str(g.get("comparison", ">="))),
                "decision": str(data.get("decision")),
                "decision_matches_gates": recomputed == data.get("decision"),
            }
        )
    columns = ["name", "measured", "threshold", "passed", "pass_consistent", "decision"]
    return pd.DataFrame(rows, columns=[*columns, "decision_matches_gates"])
