"""Errors a user can act on. The CLI prints their message (no traceback) and exits 2.

Messages name the file, the column or expectation, the problem and the fix.
"""

from __future__ import annotations

__all__ = ["InputDataError", "UsageError"]


class InputDataError(ValueError):
    """Bad input data: a file that is missing, unreadable, or breaks an expectation."""


class UsageError(ValueError):
    """Bad usage: an unknown user, a missing folder, an unwritable artifacts directory, ..."""
