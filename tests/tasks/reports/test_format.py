"""Tests for tasks/reports/_format.py: numbers are formatted one way."""

from __future__ import annotations

import numpy as np

from tasks.reports import format_any, format_diff, format_estimate, format_p


def test_formatting_is_one_style():
    assert format_estimate(0.07123, 0.06501, 0.07809, 4321) == "0.0712 [0.0650, 0.0781], n=4,321"
    assert format_diff(-0.00504, -0.009, 0.0011) == "-0.0050 [-0.0090, +0.0011]"
    assert format_p(0.5) == "0.5000" and format_p(3e-7) == "3.00e-07"
    assert format_any(np.int64(7)) == "7" and format_any(np.bool_(False)) == "no"
