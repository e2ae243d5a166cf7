"""What the store admin commands share: the server's store, tables, JSON, and exit codes.

``hospes accounts``, ``ban``, ``unban``, ``bans`` and ``allow`` open the
store of the same configuration and state directory as ``hospes serve``
(``--config``, ``--state``), safely while the server runs.  Read-only
commands refuse to create a store that does not exist (a mistyped state
directory is an error, not an empty list).  Unknown names, invalid names and
malformed fingerprints exit with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, load_config
from ..gemini.escape import printable
from ..runner import store_path
from ..store import Account, Ban, InvalidName, Store, StoreError, UnknownAccount
from ..store.sqlite import SQLiteStore
from .common import EXIT_FAILURE, EXIT_USAGE, fail

__all__ = [
    "Usage",
    "add_store_arguments",
    "ban_json",
    "emit_json",
    "failure",
    "find_account",
    "moment",
    "run_with_store",
    "say",
    "table",
    "usage",
]


class Usage(Exception):
    """A mistake in what the admin typed: reported, exit status 2, nothing written."""


def add_store_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """``--config``/``--state`` (as for ``hospes serve``) and ``--json``."""
    parser.add_argument("--config", type=Path, help="the server's TOML configuration file")
    parser.add_argument(
        "--state", type=Path, help="the server's state directory (default $XDG_STATE_HOME/hospes)"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if args.state is not None:
        overrides["state"] = str(args.state.expanduser().absolute())
    if args.config is not None:
        return load_config(args.config, overrides)
    config = Config()
    if args.state is not None:
        config.state = Path(overrides["state"])
    return config


def run_with_store(
    args: argparse.Namespace,
    action: Callable[[Store], Awaitable[int]],
    *,
    create: bool = False,
) -> int:
    """Open the store of ``args``, run ``action`` on it, close it; errors become exit codes."""
    try:
        path = store_path(_config(args))
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)

    async def main() -> int:
        store = SQLiteStore(path, create=create)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (Usage, UnknownAccount, InvalidName) as exc:
        return fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        missing = not create and not path.exists()
        return fail(str(exc), EXIT_USAGE if missing else EXIT_FAILURE)


def moment(value: dt.datetime | None, empty: str = "-") -> str:
    """A time for tables: minutes, UTC."""
    return empty if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; every cell made printable (names and CNs come from clients)."""
    cells = [[printable(str(cell), 80) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def emit_json(value: object) -> None:
    """Print ``value`` as JSON (datetimes in ISO 8601)."""
    json.dump(value, sys.stdout, indent=2, default=_json_default, ensure_ascii=False)
    sys.stdout.write("\n")


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def say(message: str) -> int:
    """Print a one-line result for people; returns 0."""
    print(message)
    return 0


def failure(message: str) -> int:
    """A run-time failure (exit status 1) that is not a usage mistake."""
    return fail(message, EXIT_FAILURE)


def usage(message: str) -> int:
    """A usage mistake found before the store is opened (exit status 2)."""
    return fail(message, EXIT_USAGE)


async def find_account(store: Store, name: str) -> Account:
    """The account called ``name``; :class:`Usage` (exit status 2) if there is none."""
    account = await store.account(name)
    if account is None:
        raise Usage(f"no account named {printable(name, 40)!r} (see 'hospes accounts list')")
    return account


def ban_json(ban: Ban) -> dict[str, object]:
    """A ban as ``--json`` prints it."""
    return {
        "id": ban.id,
        "kind": ban.kind.value,
        "value": ban.value,
        "reason": ban.reason,
        "created": ban.created,
        "until": ban.until,
    }
