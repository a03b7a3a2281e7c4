"""Temporary folders that do not outlive a killed run.

A stage killed by its budget or by SIGKILL never runs its ``finally`` blocks, so a folder from
:func:`tempfile.mkdtemp` stays behind (the implicit worker's job folder holds the model inputs,
about 8 bytes per rating). :func:`owned_temp_dir` names each folder after the process that owns
it (``<prefix><pid>-<random>``) and, before making a new one, removes the folders of the same
prefix whose owner is no longer alive - so the next run cleans up after a killed one. A pid reused
by an unrelated live process only delays that clean-up to a later run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["owned_temp_dir", "remove_orphans"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_orphans(prefix: str, parent: Path | str | None = None) -> list[Path]:
    """Remove the ``<prefix><pid>-*`` folders in ``parent`` (default: the system temp dir) whose
    process is gone; returns the folders removed."""
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for path in entries:
        found = pattern.match(path.name)
        if found and path.is_dir() and not path.is_symlink() and not _alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def owned_temp_dir(prefix: str, parent: Path | str | None = None) -> Path:
    """A new temporary folder ``<parent>/<prefix><this pid>-<random>``, after removing the folders
    of the same prefix left behind by dead processes."""
    remove_orphans(prefix, parent)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
