"""``hospes backup DEST``: a consistent copy of the server's state, safe while it runs.

What a server cannot do without, and what it could not re-create: the identity
store (accounts, allow-lists, bans) and the server's private keys (a new key
sets off every visitor's key-change alarm).  DEST is laid out as a state
directory, so restoring is copying it back (``docs/operations.md``)::

    DEST/hospes.sqlite3          the identity store, copied with SQLite's backup API
    DEST/certs/NAME.crt, .key    the certificates and keys the server created
    DEST/configured/NAME.crt, .key   those the configuration names (cert = / key =)
    DEST/configured/hospes.toml  the configuration file, if there is one
    DEST/backup.json             what was copied from where, with the fingerprints

The store is read in one transaction (a snapshot, whatever the server writes
meanwhile) and the copy is checked (``PRAGMA integrity_check``).  DEST is
created with mode 0700 and must not exist or be empty; files keep their modes
(keys 0600), the store copy is 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config, ConfigError
from ..runner import STORE_FILE
from ..selfsigned import load_certificate
from ..server.tls import TLSError, load_server_context
from ..store.database_url import redact
from .errors import EXIT_FAILURE, EXIT_USAGE, Usage, fail
from .output import emit_json
from .store import add_store_arguments, locate_store

__all__ = ["BackupError", "back_up", "register"]

MANIFEST = "backup.json"


class BackupError(Exception):
    """The backup cannot be made; the message says why (nothing half-made is left as a backup)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "backup",
        help="copy the identity store and the server's keys (safe while it runs)",
        description="Copy the identity store (SQLite's online backup: a consistent snapshot "
        "while the server runs) and the server's certificates and keys into DEST, laid out "
        "as a state directory. DEST must not exist or be empty; it is created 0700.",
    )
    parser.add_argument("dest", metavar="DEST", type=Path, help="the directory to create")
    add_store_arguments(parser)
    parser.set_defaults(run=run_backup)


def run_backup(args: argparse.Namespace) -> int:
    try:
        location = locate_store(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(f"hospes: backing up the {location.describe()}", file=sys.stderr)
    try:
        manifest = back_up(location.config, args.dest.expanduser().absolute())
    except BackupError as exc:
        return fail(str(exc), EXIT_FAILURE)
    if args.json:
        emit_json(manifest)
        return 0
    print(f"backed up to {args.dest}:")
    store = manifest["store"]
    if "accounts" in store:
        counted = f"{store['accounts']} accounts, {store['certificates']} certificates"
        print(f"  identity store   {counted}")
    else:
        print(f"  identity store   not copied: {store['database']} (use pg_dump)")
    for host in manifest["hosts"]:
        print(f"  {host['name']:<16} certificate {host['fingerprint']}")
        print(f"  {'':<16} key         {host['key_fingerprint']}")
    if manifest["config"] is not None:
        print(f"  configuration    {manifest['config']['source']}")
    return 0


def _new_directory(path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            raise Usage(f"{path} exists and is not a directory")
        if any(path.iterdir()):
            raise Usage(f"{path} is not empty: give a new directory for each backup")
        path.chmod(0o700)
        return
    try:
        path.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror}") from None


def _copy_file(source: Path, target: Path) -> None:
    """Copy with the source's mode (a key stays 0600), never wider than the source."""
    try:
        mode = source.stat().st_mode & 0o777
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
        with source.open("rb") as reader, os.fdopen(fd, "wb") as writer:
            shutil.copyfileobj(reader, writer)
            writer.flush()
            os.fsync(writer.fileno())
        os.chmod(target, mode)
    except OSError as exc:
        raise BackupError(f"cannot copy {source} to {target}: {exc.strerror}") from None


def _copy_store(source: Path, target: Path) -> dict[str, Any]:
    """SQLite's online backup of ``source`` into a new file ``target`` (0600), checked."""
    if not source.exists():
        raise BackupError(f"no identity store at {source} (wrong state directory?)")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        reader = sqlite3.connect(source, isolation_level=None)
        try:
            reader.execute("PRAGMA busy_timeout = 5000")
            writer = sqlite3.connect(target, isolation_level=None)
            try:
                # One step (pages=-1): one read transaction, so one consistent snapshot.
                reader.backup(writer, pages=-1)
                (check,) = writer.execute("PRAGMA integrity_check").fetchone()
                if check != "ok":
                    raise BackupError(f"the copy of {source} does not check out: {check}")
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                counts = {
                    table: int(writer.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
                    for table in ("accounts", "certificates", "allow_entries", "bans")
                }
            finally:
                writer.close()
        finally:
            reader.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    for leftover in (
        target.with_name(target.name + "-wal"),
        target.with_name(target.name + "-shm"),
    ):
        leftover.unlink(missing_ok=True)
    return counts


def back_up(config: Config, dest: Path) -> dict[str, Any]:
    """Copy the state of ``config``'s server into ``dest``; returns the manifest it writes.

    Raises :class:`BackupError`, or :class:`~hospes.cli.errors.Usage` for a
    ``dest`` that is not a new directory.
    """
    fresh = not dest.exists()
    _new_directory(dest)
    try:
        return _back_up(config, dest)
    except BaseException:
        # Nothing half-made may pass for a backup.
        if fresh:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for entry in dest.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise


def _back_up(config: Config, dest: Path) -> dict[str, Any]:
    counts: dict[str, Any]
    if config.database is not None:
        # Shared by several nodes, and PostgreSQL's own tools back it up consistently.
        counts = {"database": redact(config.database), "copied": False}
        print(
            f"hospes: the identity store is the PostgreSQL database {redact(config.database)}: "
            "back it up with pg_dump (docs/operations.md); copying the keys and configuration",
            file=sys.stderr,
        )
    else:
        counts = _copy_store(config.state / STORE_FILE, dest / STORE_FILE)
    hosts: list[dict[str, Any]] = []
    for host in config.hosts:
        if host.cert is not None and host.key is not None:
            folder, cert, key = "configured", host.cert, host.key
        else:
            folder = "certs"
            cert = config.state / "certs" / f"{host.name}.crt"
            key = config.state / "certs" / f"{host.name}.key"
        if not cert.exists() and not key.exists() and folder == "certs":
            continue  # not created yet: the server has not run with this hostname
        try:
            presented = load_server_context(cert, key)
        except TLSError as exc:
            raise BackupError(f"{host.name}: {exc}") from None
        (dest / folder).mkdir(mode=0o700, exist_ok=True)
        copies = dest / folder / f"{host.name}.crt", dest / folder / f"{host.name}.key"
        _copy_file(cert, copies[0])
        _copy_file(key, copies[1])
        hosts.append(
            {
                "name": host.name,
                "certificate": str(cert),
                "key": str(key),
                "copied_to": f"{folder}/{host.name}.crt",
                "fingerprint": presented.fingerprint,
                "key_fingerprint": presented.key_fingerprint,
                "not_after": load_certificate(copies[0]).not_valid_after_utc,
            }
        )
    config_copy: dict[str, str] | None = None
    if config.source is not None:
        (dest / "configured").mkdir(mode=0o700, exist_ok=True)
        _copy_file(config.source, dest / "configured" / config.source.name)
        config_copy = {
            "source": str(config.source),
            "copied_to": f"configured/{config.source.name}",
        }
    manifest: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hospes": __version__,
        "state": str(config.state),
        "store": counts,
        "hosts": hosts,
        "config": config_copy,
    }
    fd = os.open(dest / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, default=_json_default)
        handle.write("\n")
    return json.loads(json.dumps(manifest, default=_json_default))  # type: ignore[no-any-return]


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
