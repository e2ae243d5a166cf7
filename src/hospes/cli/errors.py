"""Exit statuses, and the one way a command reports an error.

Every command exits with :data:`EXIT_OK` on success, :data:`EXIT_FAILURE` on a
failure at run time, :data:`EXIT_USAGE` on a mistake in what was typed (bad
flag, unknown name, malformed fingerprint, invalid configuration) and
:data:`EXIT_INTERRUPTED` on Ctrl-C.  ``hospes get`` adds its own statuses for
what the server answered (see :mod:`hospes.cli.get`).  Errors go to stderr,
one format for all: ``hospes: MESSAGE``.
"""

from __future__ import annotations

import sys

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Usage", "fail"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class Usage(Exception):
    """A mistake in what was typed: :func:`hospes.cli.main` reports it, exit status 2.

    A command may raise it anywhere; the commands check what they were given
    before they change anything, so that a mistake writes nothing.
    """


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``hospes: message`` on stderr and return ``status`` for the caller to exit with.

    A message of several lines (a configuration file with several mistakes) gets the
    prefix on each line, so every problem reads as its own error.
    """
    for line in message.splitlines() or [""]:
        print(f"hospes: {line}", file=sys.stderr)
    return status
