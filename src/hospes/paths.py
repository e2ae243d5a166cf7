"""Where hospes keeps its files by default: XDG base directories.

The server's state (its certificates and the identity store) lives under
``$XDG_STATE_HOME/hospes``; the client's files (known hosts, identities) under
``$XDG_DATA_HOME/hospes``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_data_dir", "default_state_dir"]


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/hospes``, by default ``~/.local/state/hospes``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hospes"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/hospes``, by default ``~/.local/share/hospes`` (the client's files)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hospes"
