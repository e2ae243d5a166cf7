"""The server's identity store, as the admin commands find and open it.

``hospes accounts``, ``ban``, ``unban``, ``bans``, ``allow``, ``audit`` and ``backup`` open
the store the server uses, found the way ``hospes serve`` finds its
configuration (:func:`find_config`): ``--config FILE``, else
``$HOSPES_CONFIG``, else ``/etc/hospes/hospes.toml`` when it exists, else no
file (the default state directory); ``--state`` overrides the file's state
directory and ``--database`` its PostgreSQL store (shared by several nodes).
Each command says on stderr which store it opened and why
(:func:`locate_store`), so an operator never changes one store while the
server reads another.  It is safe while the server runs.  Read-only commands
refuse to create a store that does not exist (a mistyped state directory is
an error, not an empty list).  Unknown names, invalid names and malformed
fingerprints exit with status 2 before anything is written.

Every change they make is written to the store's audit log, beside the admin
capsule's (:func:`record_change`), by ``cli:USER``: the effective Unix user,
and who ran ``sudo`` or ``doas`` when that is how it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import pwd
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, load_config, parse_config
from ..gemini.escape import printable
from ..gemini.fingerprint import MIN_PREFIX, PREFIX, parse_fingerprint_prefix
from ..runner import open_store, store_path
from ..store import Account, InvalidName, Store, StoreError, UnknownAccount
from ..store.bans import MAX_REASON, check_reason
from ..store.database_url import redact
from .errors import EXIT_FAILURE, EXIT_USAGE, Usage, fail

__all__ = [
    "ACTOR_PREFIX",
    "CONFIG_VARIABLE",
    "MIN_PREFIX",
    "SYSTEM_CONFIG",
    "ConfigSource",
    "StoreLocation",
    "actor",
    "add_reason_argument",
    "add_store_arguments",
    "audit_reason",
    "find_account",
    "find_config",
    "fingerprint_or_prefix",
    "locate_store",
    "record_change",
    "resolve_fingerprint",
    "run_with_store",
]

CONFIG_VARIABLE = "HOSPES_CONFIG"
"""The environment variable naming the configuration file when ``--config`` is not given."""
SYSTEM_CONFIG = Path("/etc/hospes/hospes.toml")
"""The configuration file used when neither ``--config`` nor ``$HOSPES_CONFIG`` names one."""
ACTOR_PREFIX = "cli:"
"""How the audit log's ``admin`` of a change made with the ``hospes`` command begins (the admin
capsule writes a fingerprint there)."""


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """The configuration file a command reads (None: none), and how it was chosen."""

    path: Path | None
    origin: str
    """``--config``, ``$HOSPES_CONFIG``, ``/etc/hospes/hospes.toml``, or none's explanation."""

    def describe(self) -> str:
        """The file and why it was read (or that none was), as ``hospes serve`` announces it.

        An operator whose server ignores their file sees it at once: started
        under another user or service manager, ``$HOSPES_CONFIG`` is gone.
        """
        if self.path is None:
            return (
                f"no configuration file (no --config, ${CONFIG_VARIABLE} or {SYSTEM_CONFIG}): "
                "built-in defaults and flags only"
            )
        if self.origin == "--config":
            why = "--config"
        elif self.origin == f"${CONFIG_VARIABLE}":
            why = f"from ${CONFIG_VARIABLE}"
        else:
            why = f"found in {self.path.parent}"
        return f"configuration {self.path.absolute()} ({why})"


def find_config(
    explicit: Path | None,
    environ: Mapping[str, str] = os.environ,
    system: Path | None = None,
) -> ConfigSource:
    """The configuration file of the server: ``explicit``, ``$HOSPES_CONFIG``, the system file.

    ``hospes serve`` and the admin commands both ask here, so they agree on
    the state directory without being told twice.  An empty ``$HOSPES_CONFIG``
    counts as unset; the system file (:data:`SYSTEM_CONFIG`) only when it exists.
    """
    if explicit is not None:
        return ConfigSource(explicit, "--config")
    named = environ.get(CONFIG_VARIABLE, "")
    if named:
        return ConfigSource(Path(named).expanduser().absolute(), f"${CONFIG_VARIABLE}")
    system = SYSTEM_CONFIG if system is None else system
    if system.exists():
        return ConfigSource(system, str(system))
    return ConfigSource(None, "no configuration file")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Which identity store an admin command opens, the configuration it came from, and why.

    A SQLite file in the state directory, or the PostgreSQL database of
    ``database`` (``--database URL``) that several nodes share.
    """

    config: Config
    source: ConfigSource
    state_flag: bool
    """Whether ``--state`` chose the state directory."""
    database_flag: bool = False
    """Whether ``--database`` chose the (PostgreSQL) store."""

    @property
    def path(self) -> Path:
        """The SQLite file (unused when the store is a PostgreSQL database)."""
        return store_path(self.config)

    def describe(self) -> str:
        """One line for stderr: the store, and what chose it (a URL's password hidden)."""
        database = self.config.database
        if database is not None:
            if self.database_flag:
                why = "--database"
            else:
                why = f"the database of {self.source.path}"
                if self.source.origin != str(self.source.path):
                    why += f" ({self.source.origin})"
            return f"identity store {redact(database)} ({why})"
        if self.state_flag:
            why = "--state"
        elif self.source.path is None:
            why = f"the default state directory: no --config, ${CONFIG_VARIABLE} or {SYSTEM_CONFIG}"
        else:
            why = f"the state directory of {self.source.path}"
            if self.source.origin != str(self.source.path):
                why += f" ({self.source.origin})"
        return f"identity store {self.path} ({why})"

    def open(self, *, create: bool) -> Store:
        """The store itself; :class:`StoreError` if it cannot be opened."""
        return open_store(self.config, create=create)


def add_store_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """``--config``/``--state`` (as for ``hospes serve``) and ``--json``."""
    parser.add_argument(
        "--config",
        type=Path,
        help=f"the server's TOML configuration file (default ${CONFIG_VARIABLE}, "
        f"else {SYSTEM_CONFIG} if it exists)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="the server's state directory (default: the configuration's, "
        "else $XDG_STATE_HOME/hospes)",
    )
    parser.add_argument(
        "--database", metavar="URL", help="the PostgreSQL URL of a store shared by several nodes"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def locate_store(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> StoreLocation:
    """The store ``args`` designate; :class:`~hospes.config.ConfigError` for a bad file."""
    source = find_config(args.config, environ)
    overrides: dict[str, Any] = {}
    if args.state is not None:
        overrides["state"] = str(args.state.expanduser().absolute())
    if args.database is not None:
        overrides["database"] = args.database
    if source.path is not None:
        config = load_config(source.path, overrides)
    else:
        config = parse_config(overrides)
    return StoreLocation(config, source, args.state is not None, args.database is not None)


def run_with_store(
    args: argparse.Namespace,
    action: Callable[[Store], Awaitable[int]],
    *,
    create: bool = False,
    location: StoreLocation | None = None,
) -> int:
    """Open the store of ``args``, run ``action`` on it, close it; errors become exit statuses.

    The store opened is named on stderr first.  An unknown account or an
    invalid name is a usage mistake (status 2), as is a store that is missing
    when ``create`` is false; a :class:`Usage` raised by ``action`` goes up to
    :func:`hospes.cli.main`.
    """
    if location is None:
        try:
            location = locate_store(args)
        except ConfigError as exc:
            return fail(str(exc), EXIT_USAGE)
    print(f"hospes: {location.describe()}", file=sys.stderr)
    path = location.path

    async def main() -> int:
        store = location.open(create=create)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (UnknownAccount, InvalidName) as exc:
        return fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        missing = not create and location.config.database is None and not path.exists()
        return fail(str(exc), EXIT_USAGE if missing else EXIT_FAILURE)


async def find_account(store: Store, name: str) -> Account:
    """The account called ``name``; :class:`Usage` (exit status 2) if there is none."""
    account = await store.account(name)
    if account is None:
        raise Usage(f"no account named {printable(name, 40)!r} (see 'hospes accounts list')")
    return account


def fingerprint_or_prefix(text: str) -> str:
    """A typed fingerprint made canonical, or a prefix: ``SHA256:`` and 12 to 63 hex digits.

    A prefix is written in any notation a whole fingerprint may be (upper case,
    colons, ``sha256$``).  Raises :class:`Usage` for anything else, before the
    store is opened.
    """
    try:
        return parse_fingerprint_prefix(text, MIN_PREFIX)
    except ValueError:
        pass
    raise Usage(
        f"not a SHA-256 fingerprint: {printable(text, 80)!r} (expected SHA256: and 64 hex "
        f"digits, or the first {MIN_PREFIX} or more of a certificate or key the store knows)"
    )


async def resolve_fingerprint(store: Store, typed: str) -> str:
    """The whole fingerprint of ``typed``: itself, or the one known fingerprint it begins.

    ``typed`` comes from :func:`fingerprint_or_prefix`.  A prefix must match
    exactly one certificate or key the store knows (of an account, on an
    allow-list, or banned); the match is said on stderr.  :class:`Usage` when
    it matches none or several (they are listed).
    """
    if len(typed) == len(PREFIX) + 64:
        return typed
    found = await store.fingerprints_with_prefix(typed, limit=6)
    if not found:
        raise Usage(
            f"no certificate or key the store knows starts with {typed} "
            '(give the whole fingerprint: access_log_fingerprint = "full" logs them)'
        )
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise Usage(f"{typed} is ambiguous: it starts {shown}; type more digits")
    print(f"hospes: {typed} is {found[0]}", file=sys.stderr)
    return found[0]


# -- the audit log of the admin commands' changes ----------------------------------------


def actor(environ: Mapping[str, str] = os.environ) -> str:
    """Who the audit log says made a change with the ``hospes`` command: ``cli:USER``.

    ``USER`` is the effective user's name (its uid when it has none), as the
    system says it, not as ``$USER`` claims it.  Run through ``sudo`` or
    ``doas`` as another user, the person who ran it is added as those tools
    report them (``cli:hospes (sudo from alice)``): it says who typed the
    command on a shared account, not more than the environment is worth.
    """
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    who = f"{ACTOR_PREFIX}{user}"
    for variable, tool in (("SUDO_USER", "sudo"), ("DOAS_USER", "doas")):
        invoker = environ.get(variable, "")
        if invoker:
            if invoker != user:
                who += f" ({tool} from {invoker})"
            break
    return printable(who, 100)


def add_reason_argument(parser: argparse.ArgumentParser) -> None:
    """``--reason``: why a change is made, kept in the audit log (optional)."""
    parser.add_argument("--reason", help="why, for the audit log ('hospes audit')")


def audit_reason(args: argparse.Namespace) -> str:
    """The ``--reason`` of ``args`` checked (empty without one); :class:`Usage` if it cannot be."""
    if args.reason is None or not args.reason.strip():
        return ""
    try:
        return check_reason(args.reason)
    except ValueError:
        raise Usage(f"--reason: at most {MAX_REASON} printable characters") from None


async def record_change(store: Store, action: str, target: str, reason: str = "") -> None:
    """Write a change an admin command made to the store's audit log, as the admin capsule does.

    ``action`` and ``target`` are worded as the capsule words its own
    (``ban``, ``account alice (id 3)``).  The change is made already: if the
    entry cannot be written, a warning says so on stderr and the command
    still succeeds, as the capsule's page does.
    """
    try:
        await store.add_audit_entry(dt.datetime.now(dt.UTC), actor(), action, target, reason)
    except StoreError as exc:
        print(
            f"hospes: warning: done, but the audit log could not record it "
            f"({action} {printable(target, 200)}): {exc}",
            file=sys.stderr,
        )
