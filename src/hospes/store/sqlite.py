"""The embedded identity store: one SQLite file in the state directory.

All database work runs on one dedicated thread that owns the connection, so
the event loop never waits for the disk, and operations of this process are
serialised without locks of our own.  Other processes (``hospes ban`` while
the server runs) open the same file: WAL lets them read while the server
writes, ``BEGIN IMMEDIATE`` takes the write lock up front so two writers
queue (``busy_timeout``) instead of deadlocking, and nothing is cached in
memory, so a change made by the CLI applies to the server's next request.

``synchronous=NORMAL`` with WAL: a commit is in the WAL (in the operating
system's cache) before it returns, so a killed process loses nothing; only a
power cut or kernel crash can lose the last commits before a checkpoint, and
even then the database stays consistent.  FULL would add an fsync per commit
for that rare case.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..gemini.fingerprint import parse_fingerprint
from ..gemini.identity import ClientIdentity
from .base import (
    AlreadyRegistered,
    LastCertificate,
    NameTaken,
    Store,
    StoreError,
    UnknownAccount,
    check_name,
)
from .migrations import SchemaError, migrate
from .models import Account, Ban, BanKind, CertificateRecord

__all__ = ["LAST_SEEN_INTERVAL", "SQLiteStore"]

T = TypeVar("T")

LAST_SEEN_INTERVAL = dt.timedelta(hours=1)
"""``last_seen`` is written at most this often per certificate: reads stay reads."""
BUSY_TIMEOUT_MS = 5000

_ACCOUNT = "SELECT id, name, created, status FROM accounts"
_CERTIFICATE = (
    "SELECT fingerprint, key_fingerprint, account_id, common_name, not_before, not_after, "
    "first_seen, last_seen FROM certificates"
)
_BAN = "SELECT id, kind, value, reason, created, until FROM bans"
# The hot path: one indexed lookup by key finds the account, and whether this
# very certificate is known (and when it was last seen) comes with it.
_RECOGNISE = (
    "SELECT a.id, a.name, a.created, a.status, c.last_seen "
    "FROM account_keys AS k JOIN accounts AS a ON a.id = k.account_id "
    "LEFT JOIN certificates AS c ON c.fingerprint = ? AND c.account_id = k.account_id "
    "WHERE k.key_fingerprint = ?"
)
_ACTIVE_BAN = (
    _BAN + " WHERE ((value = ? AND kind = 'certificate') OR (value = ? AND kind = 'key') "
    "OR (value = ? AND kind = 'account')) AND (until IS NULL OR until > ?) "
    "ORDER BY created DESC, id DESC LIMIT 1"
)


def _text(moment: dt.datetime) -> str:
    """A time as stored: fixed-width ISO 8601 in UTC, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("the store only takes timezone-aware datetimes")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _account(row: Sequence[Any]) -> Account:
    return Account(id=row[0], name=row[1], created=_time(row[2]), status=row[3])


def _certificate(row: Sequence[Any]) -> CertificateRecord:
    return CertificateRecord(
        fingerprint=row[0],
        key_fingerprint=row[1],
        account_id=row[2],
        common_name=row[3],
        not_before=_time(row[4]),
        not_after=_time(row[5]),
        first_seen=_time(row[6]),
        last_seen=_time(row[7]),
    )


def _ban(row: Sequence[Any]) -> Ban:
    return Ban(
        id=row[0],
        kind=BanKind(row[1]),
        value=row[2],
        reason=row[3],
        created=_time(row[4]),
        until=None if row[5] is None else _time(row[5]),
    )


def _canonical(fingerprint: str) -> str:
    try:
        return parse_fingerprint(fingerprint)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


_Entry = tuple[T, dt.datetime | None]


class _HotCache:
    """Answers of the request path's reads, kept until the database changes.

    ``PRAGMA data_version`` on a connection of its own changes whenever any
    other connection (this store's worker, the admin CLI, another worker
    process) commits; reading it costs a few microseconds and no I/O (it
    reads the WAL index in shared memory), so a request with a known
    certificate costs that instead of a round trip to the worker thread.
    Entries may also expire by time (a ban's end, the next ``last_seen``
    update).  Used only on the event loop's thread.
    """

    def __init__(self, path: Path, size: int = 8192) -> None:
        self._watch = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._watch.execute("PRAGMA query_only = ON")
        self._version: int | None = None
        self._size = size
        self.recognised: dict[str, _Entry[Account | None]] = {}
        self.bans: dict[tuple[str, str, int | None], _Entry[Ban | None]] = {}
        self.allowed: dict[tuple[tuple[str, ...], str, str], _Entry[bool]] = {}

    def refresh(self) -> None:
        """Forget every answer if the database changed since the last call."""
        try:
            version = self._watch.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"identity store: {exc}") from None
        if version != self._version:
            self._version = version
            self.recognised.clear()
            self.bans.clear()
            self.allowed.clear()

    def get(self, table: dict[Any, _Entry[T]], key: Any, now: dt.datetime) -> _Entry[T] | None:
        """The entry for ``key`` if it has not expired."""
        entry = table.get(key)
        if entry is None or (entry[1] is not None and now >= entry[1]):
            return None
        return entry

    def put(self, table: dict[Any, _Entry[T]], key: Any, entry: _Entry[T]) -> None:
        """Remember an answer (a full table starts over: simpler than LRU, and rare)."""
        if len(table) >= self._size:
            table.clear()
        table[key] = entry

    def close(self) -> None:
        """Close the watching connection."""
        self._watch.close()


class SQLiteStore(Store):
    """The :class:`~hospes.store.base.Store` in one SQLite file (created with mode 0600).

    Opening applies pending schema migrations; :class:`StoreError` says what is
    wrong with a file that cannot be used.  ``create=False`` refuses to create
    a missing database (the admin CLI's read-only commands: a mistyped state
    directory should be an error, not an empty list).
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hospes-store")
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()
        try:
            self._executor.submit(self._open, create).result()
            self._hot = _HotCache(path)
        except sqlite3.Error as exc:
            self._executor.submit(self._close).result()
            self._executor.shutdown(wait=True)
            raise StoreError(f"cannot open {path}: {exc}") from None
        except BaseException:
            self._executor.shutdown(wait=True)
            raise

    # -- the worker thread --------------------------------------------------------------

    def _open(self, create: bool) -> None:
        path = self.path
        if not path.exists():
            if not create:
                raise StoreError(f"no identity store at {path} (wrong state directory?)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise StoreError(f"cannot create {path}: {exc.strerror}") from None
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot use write-ahead logging (journal mode {mode})")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            migrate(connection)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreError(f"{path} is not a usable hospes database: {exc}") from None
        except (SchemaError, StoreError) as exc:
            connection.close()
            raise StoreError(f"{path}: {exc}") from None
        self._connection = connection

    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None
        return self._connection

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken at BEGIN, so a race waits its turn."""
        connection = self._db()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._closed:
                raise StoreError("the identity store is closed")
            future = self._executor.submit(self._guarded, function, *args)
        return await asyncio.wrap_future(future)

    @staticmethod
    def _guarded(function: Callable[..., T], *args: Any) -> T:
        try:
            return function(*args)
        except sqlite3.Error as exc:
            raise StoreError(f"identity store: {exc}") from exc

    # -- recognition --------------------------------------------------------------------

    async def recognise(self, identity: ClientIdentity, now: dt.datetime) -> Account | None:
        """The account of the certificate or of its key (a renewal, recorded on the way)."""
        self._hot.refresh()
        cached = self._hot.get(self._hot.recognised, identity.fingerprint, now)
        if cached is not None:
            return cached[0]
        entry = await self._run(self._recognise, identity, now)
        self._hot.put(self._hot.recognised, identity.fingerprint, entry)
        return entry[0]

    def _recognise(self, identity: ClientIdentity, now: dt.datetime) -> _Entry[Account | None]:
        """The account, and until when that answer needs no write (the next last_seen update)."""
        connection = self._db()
        row = connection.execute(
            _RECOGNISE, (identity.fingerprint, identity.key_fingerprint)
        ).fetchone()
        if row is None:
            return None, None
        account = _account(row)
        last_seen = row[4]
        if last_seen is None:
            with self._write():
                owner = connection.execute(
                    "SELECT account_id FROM account_keys WHERE key_fingerprint = ?",
                    (identity.key_fingerprint,),
                ).fetchone()
                if owner is None or owner[0] != account.id:
                    return None, None  # the key was removed between the two statements
                self._insert_certificate(connection, account.id, identity, now, ignore=True)
        elif last_seen < _text(now - LAST_SEEN_INTERVAL):
            with self._write():
                connection.execute(
                    "UPDATE certificates SET last_seen = ? WHERE fingerprint = ? AND last_seen < ?",
                    (_text(now), identity.fingerprint, _text(now)),
                )
        else:
            return account, _time(last_seen) + LAST_SEEN_INTERVAL
        return account, now + LAST_SEEN_INTERVAL

    async def active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        """The newest ban in force on the certificate, its key or the account."""
        self._hot.refresh()
        key = (
            identity.fingerprint,
            identity.key_fingerprint,
            None if account is None else account.id,
        )
        cached = self._hot.get(self._hot.bans, key, now)
        if cached is not None:
            return cached[0]
        ban = await self._run(self._active_ban, identity, account, now)
        self._hot.put(self._hot.bans, key, (ban, None if ban is None else ban.until))
        return ban

    def _active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        row = (
            self._db()
            .execute(
                _ACTIVE_BAN,
                (
                    identity.fingerprint,
                    identity.key_fingerprint,
                    None if account is None else str(account.id),
                    _text(now),
                ),
            )
            .fetchone()
        )
        return None if row is None else _ban(row)

    async def is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        """Whether the certificate or its key is on one of ``lists``."""
        if not lists:
            return False
        self._hot.refresh()
        key = (tuple(lists), identity.fingerprint, identity.key_fingerprint)
        cached = self._hot.get(self._hot.allowed, key, dt.datetime.now(dt.UTC))
        if cached is not None:
            return cached[0]
        allowed = await self._run(self._is_allowed, key[0], identity)
        self._hot.put(self._hot.allowed, key, (allowed, None))
        return allowed

    def _is_allowed(self, lists: tuple[str, ...], identity: ClientIdentity) -> bool:
        marks = ", ".join("?" * len(lists))
        row = (
            self._db()
            .execute(
                f"SELECT 1 FROM allow_entries WHERE list IN ({marks}) "  # noqa: S608 - only ?s
                "AND fingerprint IN (?, ?) LIMIT 1",
                (*lists, identity.fingerprint, identity.key_fingerprint),
            )
            .fetchone()
        )
        return row is not None

    # -- accounts -----------------------------------------------------------------------

    @staticmethod
    def _insert_certificate(
        connection: sqlite3.Connection,
        account_id: int,
        identity: ClientIdentity,
        now: dt.datetime,
        *,
        ignore: bool = False,
    ) -> None:
        connection.execute(
            "INSERT OR IGNORE INTO account_keys (key_fingerprint, account_id) VALUES (?, ?)",
            (identity.key_fingerprint, account_id),
        )
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        connection.execute(
            f"{verb} INTO certificates (fingerprint, key_fingerprint, account_id, common_name, "
            "not_before, not_after, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                identity.fingerprint,
                identity.key_fingerprint,
                account_id,
                identity.common_name,
                _text(identity.not_before),
                _text(identity.not_after),
                _text(now),
                _text(now),
            ),
        )

    @staticmethod
    def _owner(connection: sqlite3.Connection, identity: ClientIdentity) -> str | None:
        """The name of the account the certificate's key belongs to, if any."""
        row = connection.execute(
            "SELECT a.name FROM account_keys AS k JOIN accounts AS a ON a.id = k.account_id "
            "WHERE k.key_fingerprint = ?",
            (identity.key_fingerprint,),
        ).fetchone()
        return None if row is None else str(row[0])

    async def register(self, name: str, identity: ClientIdentity, now: dt.datetime) -> Account:
        """Create an account with its first certificate, in one transaction."""
        check_name(name)
        return await self._run(self._register, name, identity, now)

    def _register(self, name: str, identity: ClientIdentity, now: dt.datetime) -> Account:
        with self._write() as connection:
            owner = self._owner(connection, identity)
            if owner is not None:
                raise AlreadyRegistered(f"this certificate already belongs to account {owner!r}")
            try:
                cursor = connection.execute(
                    "INSERT INTO accounts (name, created) VALUES (?, ?)", (name, _text(now))
                )
            except sqlite3.IntegrityError:
                raise NameTaken(f"the name {name!r} is taken") from None
            account_id = cursor.lastrowid
            assert account_id is not None
            self._insert_certificate(connection, account_id, identity, now)
        return Account(id=account_id, name=name, created=_time(_text(now)))

    async def account(self, name: str) -> Account | None:
        """The account called ``name``, whatever its case."""
        return await self._run(self._account_by, "name = ?", name)

    async def account_by_id(self, account_id: int) -> Account | None:
        """The account with that id."""
        return await self._run(self._account_by, "id = ?", account_id)

    def _account_by(self, where: str, value: object) -> Account | None:
        row = self._db().execute(f"{_ACCOUNT} WHERE {where}", (value,)).fetchone()
        return None if row is None else _account(row)

    async def accounts(self) -> list[Account]:
        """Every account, by name."""
        return await self._run(self._accounts)

    def _accounts(self) -> list[Account]:
        rows = self._db().execute(f"{_ACCOUNT} ORDER BY name COLLATE NOCASE, id").fetchall()
        return [_account(row) for row in rows]

    async def rename(self, name: str, new_name: str) -> Account:
        """Give an account another name (a change of case only is allowed)."""
        check_name(new_name)
        return await self._run(self._rename, name, new_name)

    def _rename(self, name: str, new_name: str) -> Account:
        with self._write() as connection:
            row = connection.execute(f"{_ACCOUNT} WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownAccount(f"no account named {name!r}")
            try:
                connection.execute("UPDATE accounts SET name = ? WHERE id = ?", (new_name, row[0]))
            except sqlite3.IntegrityError:
                raise NameTaken(f"the name {new_name!r} is taken") from None
        return Account(id=row[0], name=new_name, created=_time(row[2]), status=row[3])

    async def delete(self, name: str) -> None:
        """Delete an account; its keys, certificates and codes go with it (cascade)."""
        await self._run(self._delete, name)

    def _delete(self, name: str) -> None:
        with self._write() as connection:
            row = connection.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownAccount(f"no account named {name!r}")
            connection.execute(
                "DELETE FROM bans WHERE kind = 'account' AND value = ?", (str(row[0]),)
            )
            connection.execute("DELETE FROM accounts WHERE id = ?", (row[0],))

    async def certificates(self, account_id: int) -> list[CertificateRecord]:
        """An account's certificates, oldest first."""
        return await self._run(self._certificates, account_id)

    def _certificates(self, account_id: int) -> list[CertificateRecord]:
        rows = (
            self._db()
            .execute(
                f"{_CERTIFICATE} WHERE account_id = ? ORDER BY first_seen, fingerprint",
                (account_id,),
            )
            .fetchall()
        )
        return [_certificate(row) for row in rows]

    async def add_certificate(
        self, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> CertificateRecord:
        """Add a certificate (and its key) to an account."""
        return await self._run(self._add_certificate, account_id, identity, now)

    def _add_certificate(
        self, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> CertificateRecord:
        with self._write() as connection:
            if connection.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
                self._claim(connection, account_id, identity, now)
            else:
                raise UnknownAccount(f"no account with id {account_id}")
            row = connection.execute(
                f"{_CERTIFICATE} WHERE fingerprint = ?", (identity.fingerprint,)
            ).fetchone()
        return _certificate(row)

    def _claim(
        self,
        connection: sqlite3.Connection,
        account_id: int,
        identity: ClientIdentity,
        now: dt.datetime,
    ) -> None:
        """Add a certificate no account has (its key included) to ``account_id``."""
        row = connection.execute(
            "SELECT k.account_id, a.name FROM account_keys AS k "
            "JOIN accounts AS a ON a.id = k.account_id WHERE k.key_fingerprint = ?",
            (identity.key_fingerprint,),
        ).fetchone()
        if row is not None:
            whose = "this account" if row[0] == account_id else f"account {row[1]!r}"
            raise AlreadyRegistered(f"this certificate (or its key) already belongs to {whose}")
        self._insert_certificate(connection, account_id, identity, now)

    async def remove_certificate(self, account_id: int, fingerprint: str) -> None:
        """Remove a certificate; never the account's last one."""
        await self._run(self._remove_certificate, account_id, _canonical(fingerprint))

    def _remove_certificate(self, account_id: int, fingerprint: str) -> None:
        with self._write() as connection:
            row = connection.execute(
                "SELECT key_fingerprint FROM certificates WHERE fingerprint = ? AND account_id = ?",
                (fingerprint, account_id),
            ).fetchone()
            if row is None:
                raise StoreError(f"{fingerprint} is not a certificate of this account")
            (count,) = connection.execute(
                "SELECT count(*) FROM certificates WHERE account_id = ?", (account_id,)
            ).fetchone()
            if count <= 1:
                raise LastCertificate(
                    "that is the account's last certificate; link another one first"
                )
            connection.execute("DELETE FROM certificates WHERE fingerprint = ?", (fingerprint,))
            connection.execute(
                "DELETE FROM account_keys WHERE key_fingerprint = ? AND NOT EXISTS "
                "(SELECT 1 FROM certificates WHERE key_fingerprint = ?)",
                (row[0], row[0]),
            )

    # -- linking a device ---------------------------------------------------------------

    async def create_link_code(
        self, account_id: int, code_hash: bytes, expires: dt.datetime
    ) -> None:
        """Store a code's hash, replacing the account's earlier codes."""
        await self._run(self._create_link_code, account_id, code_hash, expires)

    def _create_link_code(self, account_id: int, code_hash: bytes, expires: dt.datetime) -> None:
        with self._write() as connection:
            if not connection.execute(
                "SELECT 1 FROM accounts WHERE id = ?", (account_id,)
            ).fetchone():
                raise UnknownAccount(f"no account with id {account_id}")
            connection.execute("DELETE FROM link_codes WHERE account_id = ?", (account_id,))
            connection.execute(
                "INSERT OR REPLACE INTO link_codes (code_hash, account_id, expires) "
                "VALUES (?, ?, ?)",
                (code_hash, account_id, _text(expires)),
            )

    async def redeem_link_code(
        self, code_hash: bytes, identity: ClientIdentity, now: dt.datetime
    ) -> Account | None:
        """Spend a live code on adding ``identity`` to its account, all or nothing."""
        return await self._run(self._redeem_link_code, code_hash, identity, now)

    def _redeem_link_code(
        self, code_hash: bytes, identity: ClientIdentity, now: dt.datetime
    ) -> Account | None:
        with self._write() as connection:
            connection.execute("DELETE FROM link_codes WHERE expires <= ?", (_text(now),))
            row = connection.execute(
                f"{_ACCOUNT} WHERE id = (SELECT account_id FROM link_codes WHERE code_hash = ?)",  # noqa: S608
                (code_hash,),
            ).fetchone()
            if row is None:
                return None
            account = _account(row)
            self._claim(connection, account.id, identity, now)
            connection.execute("DELETE FROM link_codes WHERE code_hash = ?", (code_hash,))
        return account

    # -- bans ---------------------------------------------------------------------------

    async def ban(
        self,
        kind: BanKind,
        value: str,
        reason: str,
        now: dt.datetime,
        until: dt.datetime | None = None,
    ) -> Ban:
        """Record a ban; fingerprints are stored canonical, account ids must exist."""
        kind = BanKind(kind)
        if kind is not BanKind.ACCOUNT:
            value = _canonical(value)
        return await self._run(self._ban, kind, value, reason, now, until)

    def _ban(
        self, kind: BanKind, value: str, reason: str, now: dt.datetime, until: dt.datetime | None
    ) -> Ban:
        with self._write() as connection:
            if kind is BanKind.ACCOUNT and not (
                value.isdecimal()
                and connection.execute(
                    "SELECT 1 FROM accounts WHERE id = ?", (int(value),)
                ).fetchone()
            ):
                raise UnknownAccount(f"no account with id {value!r}")
            cursor = connection.execute(
                "INSERT INTO bans (kind, value, reason, created, until) VALUES (?, ?, ?, ?, ?)",
                (kind.value, value, reason, _text(now), None if until is None else _text(until)),
            )
            row = connection.execute(f"{_BAN} WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _ban(row)

    async def unban(self, kind: BanKind, value: str) -> int:
        """Lift the bans on one certificate, key or account."""
        kind = BanKind(kind)
        if kind is not BanKind.ACCOUNT:
            value = _canonical(value)
        return await self._run(self._unban, kind, value)

    def _unban(self, kind: BanKind, value: str) -> int:
        with self._write() as connection:
            cursor = connection.execute(
                "DELETE FROM bans WHERE kind = ? AND value = ?", (kind.value, value)
            )
        return cursor.rowcount

    async def bans(self) -> list[Ban]:
        """Every ban, newest first."""
        return await self._run(self._bans)

    def _bans(self) -> list[Ban]:
        rows = self._db().execute(f"{_BAN} ORDER BY created DESC, id DESC").fetchall()
        return [_ban(row) for row in rows]

    # -- allow-lists --------------------------------------------------------------------

    async def allow(self, list_name: str, fingerprint: str) -> bool:
        """Put a fingerprint on a list."""
        if not list_name:
            raise StoreError("an allow-list needs a name")
        fingerprint = _canonical(fingerprint)
        now = dt.datetime.now(dt.UTC)
        return await self._run(self._allow, list_name, fingerprint, now)

    def _allow(self, list_name: str, fingerprint: str, now: dt.datetime) -> bool:
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO allow_entries (list, fingerprint, added) VALUES (?, ?, ?)",
                (list_name, fingerprint, _text(now)),
            )
        return cursor.rowcount == 1

    async def disallow(self, list_name: str, fingerprint: str) -> bool:
        """Take a fingerprint off a list."""
        fingerprint = _canonical(fingerprint)
        return await self._run(self._disallow, list_name, fingerprint)

    def _disallow(self, list_name: str, fingerprint: str) -> bool:
        with self._write() as connection:
            cursor = connection.execute(
                "DELETE FROM allow_entries WHERE list = ? AND fingerprint = ?",
                (list_name, fingerprint),
            )
        return cursor.rowcount == 1

    async def allow_list(self, list_name: str) -> list[str]:
        """A list's fingerprints, sorted."""
        return await self._run(self._allow_list, list_name)

    def _allow_list(self, list_name: str) -> list[str]:
        rows = (
            self._db()
            .execute(
                "SELECT fingerprint FROM allow_entries WHERE list = ? ORDER BY fingerprint",
                (list_name,),
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    async def allow_lists(self) -> dict[str, int]:
        """Each list's name and size."""
        return await self._run(self._allow_lists)

    def _allow_lists(self) -> dict[str, int]:
        rows = (
            self._db()
            .execute("SELECT list, count(*) FROM allow_entries GROUP BY list ORDER BY list")
            .fetchall()
        )
        return {row[0]: row[1] for row in rows}

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Finish queued work, close the connection (checkpointing the WAL), stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            future = self._executor.submit(self._close)
        await asyncio.wrap_future(future)
        self._executor.shutdown(wait=True)
        self._hot.close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
