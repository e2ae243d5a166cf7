"""The ``hospes`` command: one sub-command per module of this package.

Exit status: 0 success, 1 failure at run time, 2 a usage or configuration
mistake (bad flag, unknown name, malformed fingerprint).  Sub-commands with
their own codes (``hospes get``) document them in their help.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import accounts, allow, ban, fingerprint, get, identities, known_hosts, serve

__all__ = ["main"]

COMMANDS = [serve, accounts, ban, allow, fingerprint, get, identities, known_hosts]


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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
