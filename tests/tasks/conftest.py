"""Fixtures of the stage tests. The real run they share, ``ml_ranking_run``, is in tests/conftest.py
(the flow tests use it too)."""

from __future__ import annotations
