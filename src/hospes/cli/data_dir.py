"""The ``--data-dir`` flag of the client commands (``get``, ``id``, ``known-hosts``)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["data_dir_option"]


def data_dir_option() -> argparse.ArgumentParser:
    """A parent parser with ``--data-dir``: where the known hosts and identities are."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="known hosts and identities (default $HOSPES_DATA_DIR, else $XDG_DATA_HOME/hospes)",
    )
    return parser
