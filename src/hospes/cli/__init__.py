"""The ``hospes`` command: one module per command group, and what they share.

Command groups: ``serve``, ``accounts``, ``ban`` (``ban``, ``unban``,
``bans``), ``allow``, ``audit``, ``backup``, ``fingerprint``, ``get``, ``put``, ``id``
(:mod:`.identities`) and ``known-hosts``.  Shared: :mod:`.errors` (exit statuses, the error
printer), :mod:`.output` (lines, tables, JSON), :mod:`.store` (the server's
store for the admin commands), :mod:`.data_dir` (the client commands'
``--data-dir``).

Exit status: 0 success, 1 failure at run time, 2 a usage or configuration
mistake (bad flag, unknown name, malformed fingerprint), 130 interrupted, 141
(as if killed by SIGPIPE, like other Unix tools) when the reader of stdout
went away (``hospes bans | head -1``): silently, never a traceback.
``hospes get`` has its own statuses for what the server answered, listed in
its help.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import (
    accounts,
    allow,
    audit,
    backup,
    ban,
    fingerprint,
    get,
    identities,
    known_hosts,
    put,
    serve,
)
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, Usage, fail

__all__ = ["EXIT_BROKEN_PIPE", "main"]

EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a command whose reader closed the pipe."""

COMMANDS = [
    serve,
    accounts,
    ban,
    allow,
    audit,
    backup,
    fingerprint,
    get,
    put,
    identities,
    known_hosts,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="hospes",
        description="Gemini server and client with TOFU client-certificate identity.",
    )
    parser.add_argument("--version", action="version", version=f"hospes {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hospes`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.run(args))
        if sys.stdout is not None:  # None when started with stdout closed
            sys.stdout.flush()  # here, where a closed pipe is caught, not at the exit
    except Usage as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away: stop quietly, and keep Python from failing again when it
        # flushes stdout on exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return status
