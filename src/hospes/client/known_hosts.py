"""The TOFU store: which public key each ``host:port`` showed first, in one SQLite file.

The pin is the SHA-256 of the server's SubjectPublicKeyInfo, not of its
certificate, so a renewed certificate with the same key is accepted (and
recorded) while a new key is refused.  SQLite in WAL mode with a busy timeout
lets any number of ``hospes get`` processes read and update the file at once;
every update re-reads the pin inside an immediate (write-locked) transaction,
so two processes meeting a host for the first time cannot both "win" with
different keys.

The file is private (0600): it is a list of every capsule the user visited.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .certificate import ServerCertificate
from .errors import ClientFileError, KeyChanged

__all__ = ["KnownHost", "KnownHosts", "Verdict", "format_address", "judge"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS known_hosts (
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    key_fingerprint TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    not_after TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    times_seen INTEGER NOT NULL,
    PRIMARY KEY (host, port)
)
"""
_COLUMNS = (
    "host, port, key_fingerprint, cert_fingerprint, not_after, first_seen, last_seen, times_seen"
)
_BUSY_TIMEOUT = 15.0


class Verdict(StrEnum):
    """What the TOFU check concluded about one connection."""

    FIRST_USE = "first-use"
    """No pin for this host and port: the key was trusted and recorded."""
    KNOWN = "known"
    """The pinned key, in the certificate seen before."""
    RENEWED = "renewed"
    """The pinned key in a new certificate: accepted, the certificate recorded."""
    KEY_ACCEPTED = "key-accepted"
    """A new key the user accepted explicitly: the pin was replaced."""
    CA_VERIFIED = "ca-verified"
    """Validated against certificate authorities; the TOFU store was not consulted."""


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class KnownHost:
    """A pin: the key a host and port showed, and when it was seen."""

    host: str
    port: int
    key_fingerprint: str
    cert_fingerprint: str
    not_after: dt.datetime
    first_seen: dt.datetime
    last_seen: dt.datetime
    times_seen: int

    @property
    def address(self) -> str:
        """``host:port`` as typed on the command line."""
        return format_address(self.host, self.port)


def judge(
    host: str,
    port: int,
    pinned: KnownHost | None,
    presented: ServerCertificate,
    accept_key: str | None = None,
) -> Verdict:
    """The TOFU verdict for ``presented`` against ``pinned``; raises :class:`KeyChanged`.

    ``accept_key`` is a key fingerprint the user accepted for this connection:
    a changed key is accepted only when it is exactly that one.
    """
    if pinned is None:
        return Verdict.FIRST_USE
    if pinned.key_fingerprint == presented.key_fingerprint:
        if pinned.cert_fingerprint == presented.fingerprint:
            return Verdict.KNOWN
        return Verdict.RENEWED
    if accept_key is not None and accept_key == presented.key_fingerprint:
        return Verdict.KEY_ACCEPTED
    raise KeyChanged(host, port, pinned, presented)


class KnownHosts:
    """The known-hosts file (SQLite).  Every method opens, uses and closes a connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        if not write and not self.path.exists():
            connection = sqlite3.connect(":memory:")
            connection.execute(_SCHEMA)
        else:
            connection = self._open_file()
        try:
            if write:
                connection.execute("BEGIN IMMEDIATE")
            yield connection
            if write:
                connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()

    def _open_file(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Created 0600 before SQLite opens it; O_EXCL loses gracefully to a racing process.
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ClientFileError(f"cannot open the known-hosts file {self.path}: {exc}") from None
        try:
            _initialise(connection)
        except sqlite3.Error as exc:
            connection.close()
            raise self._error(exc) from None
        return connection

    def _error(self, exc: sqlite3.Error) -> ClientFileError:
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            return ClientFileError(
                f"{self.path} is not a known-hosts file (not SQLite); "
                "move it away to start a new one (every pin in it would be lost)"
            )
        return ClientFileError(f"known-hosts file {self.path}: {exc}")

    def get(self, host: str, port: int) -> KnownHost | None:
        """The pin of ``host:port``, or None on first contact."""
        with self._connect(write=False) as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM known_hosts WHERE host = ? AND port = ?",  # noqa: S608
                (host, port),
            ).fetchone()
        return None if row is None else _known_host(row)

    def all(self) -> list[KnownHost]:
        """Every pin, sorted by host and port."""
        with self._connect(write=False) as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM known_hosts ORDER BY host, port"  # noqa: S608
            ).fetchall()
        return [_known_host(row) for row in rows]

    def record(
        self,
        host: str,
        port: int,
        presented: ServerCertificate,
        *,
        accept_key: str | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[Verdict, KnownHost | None]:
        """Judge and record one connection atomically; returns the verdict and the old pin.

        Raises :class:`KeyChanged` (and records nothing) when the key differs
        from the pin, even if another process pinned it a moment ago.
        """
        now = now or dt.datetime.now(dt.UTC)
        with self._connect(write=True) as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM known_hosts WHERE host = ? AND port = ?",  # noqa: S608
                (host, port),
            ).fetchone()
            pinned = None if row is None else _known_host(row)
            verdict = judge(host, port, pinned, presented, accept_key)
            if pinned is None or verdict is Verdict.KEY_ACCEPTED:
                _replace(connection, host, port, presented, now)
            else:
                connection.execute(
                    "UPDATE known_hosts SET cert_fingerprint = ?, not_after = ?, last_seen = ?,"
                    " times_seen = times_seen + 1 WHERE host = ? AND port = ?",
                    (presented.fingerprint, _text(presented.not_after), _text(now), host, port),
                )
        return verdict, pinned

    def trust(
        self, host: str, port: int, presented: ServerCertificate, *, now: dt.datetime | None = None
    ) -> KnownHost | None:
        """Pin ``presented``'s key for ``host:port`` whatever was pinned; returns the old pin."""
        now = now or dt.datetime.now(dt.UTC)
        with self._connect(write=True) as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM known_hosts WHERE host = ? AND port = ?",  # noqa: S608
                (host, port),
            ).fetchone()
            _replace(connection, host, port, presented, now)
        return None if row is None else _known_host(row)

    def remove(self, host: str, port: int) -> bool:
        """Forget the pin of ``host:port``; False if there was none."""
        if not self.path.exists():
            return False
        with self._connect(write=True) as connection:
            cursor = connection.execute(
                "DELETE FROM known_hosts WHERE host = ? AND port = ?", (host, port)
            )
            return cursor.rowcount > 0


def _initialise(connection: sqlite3.Connection) -> None:
    """Switch to WAL and create the table, retrying while another process does the same.

    SQLite does not call the busy handler for every lock these steps take on a
    new file (switching to WAL needs an exclusive lock), so processes that
    open a fresh store at the same moment would otherwise see "database is locked".
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _replace(
    connection: sqlite3.Connection,
    host: str,
    port: int,
    presented: ServerCertificate,
    now: dt.datetime,
) -> None:
    connection.execute(
        f"INSERT OR REPLACE INTO known_hosts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",  # noqa: S608
        (
            host,
            port,
            presented.key_fingerprint,
            presented.fingerprint,
            _text(presented.not_after),
            _text(now),
            _text(now),
        ),
    )


def _text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _known_host(row: tuple[object, ...]) -> KnownHost:
    host, port, key, cert, not_after, first, last, times = row
    try:
        return KnownHost(
            host=str(host),
            port=int(str(port)),
            key_fingerprint=str(key),
            cert_fingerprint=str(cert),
            not_after=_moment(str(not_after)),
            first_seen=_moment(str(first)),
            last_seen=_moment(str(last)),
            times_seen=int(str(times)),
        )
    except ValueError as exc:
        raise ClientFileError(f"damaged known-hosts entry for {host}:{port}: {exc}") from None
