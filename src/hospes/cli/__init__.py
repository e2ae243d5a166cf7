"""The ``hospes`` command: one module per command group, and what they share.

Command groups: ``serve``, ``accounts``, ``ban`` (``ban``, ``unban``,
``bans``), ``allow``, ``fingerprint``, ``get``, ``put``, ``id``
(:mod:`.identities`) and ``known-hosts``.  Shared: :mod:`.errors` (exit statuses, the error
printer), :mod:`.output` (lines, tables, JSON), :mod:`.store` (the server's
store for the admin commands), :mod:`.data_dir` (the client commands'
``--data-dir``).

Exit status: 0 success, 1 failure at run time, 2 a usage or configuration
mistake (bad flag, unknown name, malformed fingerprint), 130 interrupted.
``hospes get`` has its own statuses for what the server answered, listed in
its help.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import __version__
from . import accounts, allow, ban, fingerprint, get, identities, known_hosts, put, serve
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, Usage, fail

__all__ = ["main"]

COMMANDS = [serve, accounts, ban, allow, fingerprint, get, put, identities, known_hosts]


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
        return int(args.run(args))
    except Usage as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
