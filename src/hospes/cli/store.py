"""The server's identity store, as the admin commands find and open it.

``hospes accounts``, ``ban``, ``unban``, ``bans`` and ``allow`` open the
store of the same configuration and state directory as ``hospes serve``
(``--config``, ``--state``, or ``--database`` for a PostgreSQL store shared
by several nodes), safely while the server runs.  Read-only
commands refuse to create a store that does not exist (a mistyped state
directory is an error, not an empty list).  Unknown names, invalid names and
malformed fingerprints exit with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, load_config, parse_config
from ..gemini.escape import printable
from ..runner import open_store, store_path
from ..store import Account, InvalidName, Store, StoreError, UnknownAccount
from .errors import EXIT_FAILURE, EXIT_USAGE, Usage, fail

__all__ = ["add_store_arguments", "find_account", "run_with_store"]


def add_store_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """``--config``/``--state`` (as for ``hospes serve``) and ``--json``."""
    parser.add_argument("--config", type=Path, help="the server's TOML configuration file")
    parser.add_argument(
        "--state", type=Path, help="the server's state directory (default $XDG_STATE_HOME/hospes)"
    )
    parser.add_argument(
        "--database", metavar="URL", help="the PostgreSQL URL of a store shared by several nodes"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _config(args: argparse.Namespace) -> Config:
    """The server's configuration: the ``--config`` file if given, ``--state`` over it."""
    overrides: dict[str, Any] = {}
    if args.state is not None:
        overrides["state"] = str(args.state.expanduser().absolute())
    if args.database is not None:
        overrides["database"] = args.database
    if args.config is not None:
        return load_config(args.config, overrides)
    return parse_config(overrides)


def run_with_store(
    args: argparse.Namespace,
    action: Callable[[Store], Awaitable[int]],
    *,
    create: bool = False,
) -> int:
    """Open the store of ``args``, run ``action`` on it, close it; errors become exit statuses.

    An unknown account or an invalid name is a usage mistake (status 2), as
    is a store that is missing when ``create`` is false; a :class:`Usage`
    raised by ``action`` goes up to :func:`hospes.cli.main`.
    """
    try:
        config = _config(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    path = store_path(config)

    async def main() -> int:
        store = open_store(config, create=create)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (UnknownAccount, InvalidName) as exc:
        return fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        missing = not create and config.database is None and not path.exists()
        return fail(str(exc), EXIT_USAGE if missing else EXIT_FAILURE)


async def find_account(store: Store, name: str) -> Account:
    """The account called ``name``; :class:`Usage` (exit status 2) if there is none."""
    account = await store.account(name)
    if account is None:
        raise Usage(f"no account named {printable(name, 40)!r} (see 'hospes accounts list')")
    return account
