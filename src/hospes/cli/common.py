"""What the sub-commands share: error reporting and exit codes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "data_dir_option", "fail"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``hospes: message`` on stderr and return ``status`` for the caller to exit with."""
    print(f"hospes: {message}", file=sys.stderr)
    return status


def data_dir_option() -> argparse.ArgumentParser:
    """A parent parser with ``--data-dir`` (the client's files), for the client commands."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="known hosts and identities (default $HOSPES_DATA_DIR, else $XDG_DATA_HOME/hospes)",
    )
    return parser
