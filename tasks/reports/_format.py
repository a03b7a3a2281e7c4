"""How the reports write numbers and tables (part of :mod:`tasks.reports`): a mean with its
interval as ``0.0712 [0.0650, 0.0781]``, a difference with signs (``+0.0120 [+0.0047, +0.0200]``),
p-values with four decimals (scientific below 0.0001), markdown tables, and *missing* for what an
input lacks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.charts import model_label

__all__ = ["MISSING", "format_any", "format_diff", "format_estimate", "format_metric", "format_p"]


MISSING = "*missing*"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_metric(value: Any) -> str:
    """A metric value with four decimals (``NaN`` stays visible as ``NaN``).

    >>> format_metric(0.07123), format_metric(float("nan"))
    ('0.0712', 'NaN')
    """
    return "NaN" if _is_missing(value) else f"{float(value):.4f}"


def format_estimate(value: Any, low: Any = None, high: Any = None, n: Any = None) -> str:
    """``value [low, high], n=N``; the interval is left out when it is missing or zero-width
    (catalog coverage is a count, not a mean, and has none), ``n`` when not given.

    >>> format_estimate(0.07123, 0.065, 0.0781, 4321)
    '0.0712 [0.0650, 0.0781], n=4,321'
    >>> format_estimate(0.4, 0.4, 0.4)
    '0.4000'
    """
    text = format_metric(value)
    if not (_is_missing(low) or _is_missing(high)) and float(low) != float(high):
        text += f" [{format_metric(low)}, {format_metric(high)}]"
    if not _is_missing(n):
        text += f", n={int(n):,}"
    return text


def format_diff(value: Any, low: Any = None, high: Any = None) -> str:
    """A difference with signs: ``+0.0120 [+0.0047, +0.0200]`` (interval left out when missing).

    >>> format_diff(0.012032, 0.0046748, 0.02), format_diff(-0.005)
    ('+0.0120 [+0.0047, +0.0200]', '-0.0050')
    """
    if _is_missing(value):
        return MISSING
    text = f"{float(value):+.4f}"
    if not (_is_missing(low) or _is_missing(high)):
        text += f" [{float(low):+.4f}, {float(high):+.4f}]"
    return text


def format_p(p: Any) -> str:
    """A p-value: four decimals, scientific below 0.0001.

    >>> format_p(0.04567), format_p(0.00002), format_p(None)
    ('0.0457', '2.00e-05', 'n/a')
    """
    if _is_missing(p):
        return "n/a"
    p = float(p)
    return f"{p:.4f}" if p >= 1e-4 or p == 0.0 else f"{p:.2e}"


def format_any(value: Any) -> str:
    """A value of a dict or a small table: ints with thousands separators, floats up to four
    decimals (whole floats as ints), booleans as yes/no, dicts as ``key=value`` pairs.

    >>> format_any(12345), format_any(0.05), format_any(True), format_any({"a": 1.5}), format_any(3000.0)
    ('12,345', '0.05', 'yes', 'a=1.5', '3,000')
    """
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"
    ):
        return f"{int(value):,}"
    if isinstance(value, float) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"
    ):
        x = float(value)
        if not math.isfinite(x):
            return str(x)
        if x != 0 and abs(x) < 1e-4:
            return f"{x:.3e}"
        if abs(x) >= 1000:
            return f"{x:,.1f}".removesuffix(".0")
        return f"{x:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={format_any(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(format_any(v) for v in value)
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return dict(value.model_dump())
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"expected a dict (or a pydantic model), got {type(value).__name__}")


def _pct(value: Any) -> str:
    return MISSING if _is_missing(value) else f"{100.0 * float(value):g}%"


def _label(model: str) -> str:
    return model_label(model)
