"""Where the client keeps its files: ``$HOSPES_DATA_DIR``, else ``$XDG_DATA_HOME/hospes``."""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import default_data_dir

__all__ = ["DATA_DIR_VARIABLE", "client_data_dir", "identities_dir", "known_hosts_path"]

DATA_DIR_VARIABLE = "HOSPES_DATA_DIR"


def client_data_dir(explicit: Path | None = None) -> Path:
    """The data directory: ``explicit`` (a flag), then ``$HOSPES_DATA_DIR``, then XDG."""
    if explicit is not None:
        return explicit.expanduser()
    variable = os.environ.get(DATA_DIR_VARIABLE)
    return Path(variable).expanduser() if variable else default_data_dir()


def known_hosts_path(data_dir: Path) -> Path:
    """The TOFU store in ``data_dir``."""
    return data_dir / "known_hosts.sqlite3"


def identities_dir(data_dir: Path) -> Path:
    """The identities directory in ``data_dir``."""
    return data_dir / "identities"
