"""What the sub-commands share: error reporting and exit codes."""

from __future__ import annotations

import sys

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "fail"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``hospes: message`` on stderr and return ``status`` for the caller to exit with."""
    print(f"hospes: {message}", file=sys.stderr)
    return status
