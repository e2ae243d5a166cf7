"""The SQLite identity database: every SQL statement of the embedded store, synchronous.

:class:`SQLiteDatabase` owns one connection and answers the questions of the
:class:`~hospes.store.base.Store` interface as plain method calls: no event
loop, no threads of its own (the async :class:`~hospes.store.sqlite.SQLiteStore`
runs it on a dedicated thread).  The connection may only be used by the
thread that opened the database.

Several processes may open the same file (``hospes ban`` while the server
runs): WAL lets them read while another writes, every write transaction starts
with ``BEGIN IMMEDIATE`` so that two writers queue on the write lock (waiting up
to the busy timeout) instead of deadlocking when both try to upgrade a read.

``synchronous=NORMAL`` with WAL: a commit is in the WAL (in the operating
system's cache) before it returns, so a killed process loses nothing; only a
power cut or kernel crash can lose the last commits before a checkpoint, and
even then the database stays consistent.  FULL would add an fsync per commit
for that rare case.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ParamSpec, TypeAlias, TypeVar

from ..gemini.identity import ClientIdentity
from .base import (
    LAST_SEEN_INTERVAL,
    MAX_CONFIRMATIONS,
    AlreadyRegistered,
    LastCertificate,
    NameTaken,
    StoreError,
    UnknownAccount,
    canonical_fingerprint,
    check_audit,
    check_name,
)
from .migrations import SchemaError, migrate
from .models import (
    Account,
    AuditEntry,
    Ban,
    BanKind,
    CertificateRecord,
    Confirmation,
    StoreCounts,
)
from .names import name_key
from .rows import RowReader, confirmation_key

__all__ = ["BUSY_TIMEOUT", "ChangeCounter", "Recognised", "SQLiteDatabase"]

P = ParamSpec("P")
R = TypeVar("R")

BUSY_TIMEOUT = dt.timedelta(seconds=5)
"""How long a write waits for another process's write transaction to finish."""

_PREFIX = re.compile(r"\ASHA256:[0-9a-f]{0,64}\Z")
_ACCOUNT = "SELECT id, name, created, status FROM accounts"
_CERTIFICATE = (
    "SELECT fingerprint, key_fingerprint, account_id, common_name, not_before, not_after, "
    "first_seen, last_seen FROM certificates"
)
_BAN = "SELECT id, kind, value, reason, created, until FROM bans"
_AUDIT = "SELECT id, time, admin, action, target, reason FROM audit_log"
# The hot path: one indexed lookup by key finds the account, and whether this
# very certificate is known (and when it was last seen) comes with it.
_RECOGNISE = (
    "SELECT a.id, a.name, a.created, a.status, c.last_seen "
    "FROM account_keys AS k JOIN accounts AS a ON a.id = k.account_id "
    "LEFT JOIN certificates AS c ON c.fingerprint = ? AND c.account_id = k.account_id "
    "WHERE k.key_fingerprint = ?"
)
_AWAITED = "SELECT 1 FROM awaited_fingerprints WHERE fingerprint IN (?, ?) LIMIT 1"
_ACTIVE_BAN = (
    _BAN + " WHERE ((value = ? AND kind = 'certificate') OR (value = ? AND kind = 'key') "
    "OR (value = ? AND kind = 'account')) AND (until IS NULL OR until > ?) "
    "ORDER BY created DESC, id DESC LIMIT 1"
)


_CONFIRMATION_VALID = (
    "SELECT 1 FROM confirmations WHERE nonce_hash = ? AND fingerprint = ? AND action = ? "
    "AND target = ? AND expires > ?"
)
_TAKE_CONFIRMATION = (
    "DELETE FROM confirmations WHERE nonce_hash = ? AND fingerprint = ? AND action = ? "
    "AND target = ? AND expires > ? RETURNING expires"
)


def _matching(confirmation: Confirmation, now: dt.datetime) -> tuple[bytes, str, str, str, str]:
    """The parameters of :data:`_CONFIRMATION_VALID` and :data:`_TAKE_CONFIRMATION`."""
    return (*confirmation_key(confirmation), _text(now))


def _text(moment: dt.datetime) -> str:
    """A time as stored: fixed-width ISO 8601 in UTC, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("the store only takes timezone-aware datetimes")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


_ROWS = RowReader(_time)


def _sqlite_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Report SQLite's own errors (locked, disk full, corrupt) as :class:`StoreError`."""

    @functools.wraps(method)
    def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"identity store: {exc}") from exc

    return translated


Recognised: TypeAlias = tuple[Account | None, dt.datetime | None]
"""What :meth:`SQLiteDatabase.recognise` answers: the account (None: a stranger), and until
when that answer holds without a write (the next ``last_seen`` update; None: until the
database changes).  A plain tuple: it is made on every cache miss of the request path."""


class SQLiteDatabase:
    """The identity store's data in one SQLite file (created with mode 0600), synchronously.

    Opening applies pending schema migrations; :class:`StoreError` says what is
    wrong with a file that cannot be used.  ``create=False`` refuses to create
    a missing database (the admin CLI's read-only commands: a mistyped state
    directory should be an error, not an empty list).  The methods mirror
    :class:`~hospes.store.base.Store`, validate their arguments the same way and
    raise the same errors; every write is one transaction.
    """

    def __init__(
        self, path: Path, *, create: bool = True, busy_timeout: dt.timedelta = BUSY_TIMEOUT
    ) -> None:
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
            # PRAGMA takes no parameters; the value is our own integer.
            milliseconds = int(busy_timeout / dt.timedelta(milliseconds=1))
            connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot use write-ahead logging (journal mode {mode})")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            migrate(connection)
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"{path} is not a usable hospes database: {exc}") from None
        except (SchemaError, StoreError) as exc:
            connection.close()
            raise StoreError(f"{path}: {exc}") from None
        self._connection: sqlite3.Connection | None = connection

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError("the identity store is closed")
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

    # -- recognition --------------------------------------------------------------------

    @_sqlite_errors
    def recognise(self, identity: ClientIdentity, now: dt.datetime) -> Recognised:
        """The account of the certificate or of its key (a renewal, recorded on the way)."""
        connection = self._db()
        row = connection.execute(
            _RECOGNISE, (identity.fingerprint, identity.key_fingerprint)
        ).fetchone()
        if row is None:
            return self._claim_awaited(identity, now), None
        account = _ROWS.account(row)
        last_seen = row[4]
        if last_seen is None:
            with self._write():
                owner = connection.execute(
                    "SELECT account_id FROM account_keys WHERE key_fingerprint = ?",
                    (identity.key_fingerprint,),
                ).fetchone()
                if owner is None or owner[0] != account.id:
                    return None, None  # the key was removed between the statements
                self._insert_certificate(connection, account.id, identity, now, ignore=True)
        elif last_seen < _text(now - LAST_SEEN_INTERVAL):
            # A full disk (or a lock held too long) must not turn a member away (a 61,
            # "register"): last_seen is bookkeeping.  Written on a later visit, once the
            # answer given here expires or the database changes.
            with contextlib.suppress(sqlite3.OperationalError), self._write():
                connection.execute(
                    "UPDATE certificates SET last_seen = ? WHERE fingerprint = ? AND last_seen < ?",
                    (_text(now), identity.fingerprint, _text(now)),
                )
        else:
            return account, _time(last_seen) + LAST_SEEN_INTERVAL
        return account, now + LAST_SEEN_INTERVAL

    def _claim_awaited(self, identity: ClientIdentity, now: dt.datetime) -> Account | None:
        """The account awaiting this certificate or key (``accounts create``), which gets it now."""
        connection = self._db()
        awaited = (identity.fingerprint, identity.key_fingerprint)
        if connection.execute(_AWAITED, awaited).fetchone() is None:
            return None  # a stranger: the usual answer, one indexed read
        with self._write():
            row = connection.execute(
                f"{_ACCOUNT} WHERE id = (SELECT account_id FROM awaited_fingerprints "  # noqa: S608
                "WHERE fingerprint IN (?, ?) LIMIT 1)",
                awaited,
            ).fetchone()
            if row is None:
                return None  # claimed (or the account deleted) between the statements
            account = _ROWS.account(row)
            owner = connection.execute(
                "SELECT account_id FROM account_keys WHERE key_fingerprint = ?",
                (identity.key_fingerprint,),
            ).fetchone()
            if owner is not None and owner[0] != account.id:
                return None  # the key joined another account meanwhile: that one wins
            self._insert_certificate(connection, account.id, identity, now, ignore=True)
            connection.execute(
                "DELETE FROM awaited_fingerprints WHERE fingerprint IN (?, ?)", awaited
            )
        return account

    @_sqlite_errors
    def active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        """The newest ban in force on the certificate, its key or the account."""
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
        return None if row is None else _ROWS.ban(row)

    @_sqlite_errors
    def is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        """Whether the certificate or its key is on one of ``lists``."""
        if not lists:
            return False
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

    @_sqlite_errors
    def register(self, name: str, identity: ClientIdentity, now: dt.datetime) -> Account:
        """Create an account with its first certificate, in one transaction."""
        check_name(name)
        with self._write() as connection:
            row = connection.execute(
                "SELECT a.name FROM account_keys AS k JOIN accounts AS a ON a.id = k.account_id "
                "WHERE k.key_fingerprint = ?",
                (identity.key_fingerprint,),
            ).fetchone()
            if row is not None:
                raise AlreadyRegistered(f"this certificate already belongs to account {row[0]!r}")
            account_id = self._insert_account(connection, name, now)
            self._insert_certificate(connection, account_id, identity, now)
        return Account(id=account_id, name=name, created=_time(_text(now)))

    def _insert_account(self, connection: sqlite3.Connection, name: str, now: dt.datetime) -> int:
        """Insert the account row and return its id; :class:`NameTaken` if the name is taken."""
        key = name_key(name)
        try:
            cursor = connection.execute(
                "INSERT INTO accounts (name, created, name_key) VALUES (?, ?, ?)",
                (name, _text(now), key),
            )
        except sqlite3.IntegrityError:
            raise self._taken(connection, name, key) from None
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def _taken(connection: sqlite3.Connection, name: str, key: str) -> NameTaken:
        """The error for ``name`` when the unique indexes refused it: which account has it."""
        row = connection.execute(
            "SELECT name FROM accounts WHERE name = ? OR name_key = ? ORDER BY name = ? DESC, id",
            (name, key, name),
        ).fetchone()
        if row is None or row[0].lower() == name.lower():
            return NameTaken(f"the name {name!r} is taken")
        return NameTaken(f"the name {name!r} looks like the existing account {row[0]!r}", row[0])

    @_sqlite_errors
    def create_account(self, name: str, fingerprint: str, now: dt.datetime) -> Account:
        """Create an account awaiting the first certificate with this (or its key's) fingerprint."""
        check_name(name)
        fingerprint = canonical_fingerprint(fingerprint)
        with self._write() as connection:
            row = connection.execute(
                "SELECT a.name FROM accounts AS a WHERE a.id IN ("
                "SELECT account_id FROM account_keys WHERE key_fingerprint = ? "
                "UNION SELECT account_id FROM certificates WHERE fingerprint = ? "
                "UNION SELECT account_id FROM awaited_fingerprints WHERE fingerprint = ?)",
                (fingerprint, fingerprint, fingerprint),
            ).fetchone()
            if row is not None:
                raise AlreadyRegistered(f"{fingerprint} already belongs to account {row[0]!r}")
            account_id = self._insert_account(connection, name, now)
            connection.execute(
                "INSERT INTO awaited_fingerprints (fingerprint, account_id, created) "
                "VALUES (?, ?, ?)",
                (fingerprint, account_id, _text(now)),
            )
        return Account(id=account_id, name=name, created=_time(_text(now)))

    @_sqlite_errors
    def awaited_fingerprints(self, account_id: int) -> list[str]:
        """The fingerprints an account created by the admin still waits for."""
        rows = (
            self._db()
            .execute(
                "SELECT fingerprint FROM awaited_fingerprints WHERE account_id = ? "
                "ORDER BY fingerprint",
                (account_id,),
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    @_sqlite_errors
    def fingerprints_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Every known fingerprint starting with ``prefix``, sorted, at most ``limit``."""
        if not _PREFIX.match(prefix):
            raise StoreError(f"not a fingerprint prefix: {prefix!r}")
        # Fingerprints are canonical (lowercase hex): a range scan on each index, no LIKE.
        low, high = prefix, prefix + "g"
        rows = (
            self._db()
            .execute(
                "SELECT fingerprint FROM certificates WHERE fingerprint >= ?1 AND fingerprint < ?2 "
                "UNION SELECT key_fingerprint FROM account_keys "
                "WHERE key_fingerprint >= ?1 AND key_fingerprint < ?2 "
                "UNION SELECT fingerprint FROM awaited_fingerprints "
                "WHERE fingerprint >= ?1 AND fingerprint < ?2 "
                "UNION SELECT fingerprint FROM allow_entries "
                "WHERE fingerprint >= ?1 AND fingerprint < ?2 "
                "UNION SELECT value FROM bans WHERE kind IN ('certificate', 'key') "
                "AND value >= ?1 AND value < ?2 "
                "ORDER BY 1 LIMIT ?3",
                (low, high, limit),
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    @_sqlite_errors
    def search_accounts(self, text: str, limit: int = 50) -> list[Account]:
        """Accounts whose name contains ``text``, or with a fingerprint starting with it."""
        if _PREFIX.match(text):
            low, high = text, text + "g"
            query = (
                f"{_ACCOUNT} WHERE id IN ("  # noqa: S608 - only our own constant
                "SELECT account_id FROM certificates WHERE fingerprint >= ?1 AND fingerprint < ?2 "
                "UNION SELECT account_id FROM account_keys "
                "WHERE key_fingerprint >= ?1 AND key_fingerprint < ?2 "
                "UNION SELECT account_id FROM awaited_fingerprints "
                "WHERE fingerprint >= ?1 AND fingerprint < ?2) "
                "ORDER BY name COLLATE NOCASE, id LIMIT ?3"
            )
            rows = self._db().execute(query, (low, high, limit)).fetchall()
        else:
            rows = (
                self._db()
                .execute(
                    f"{_ACCOUNT} WHERE instr(lower(name), lower(?)) > 0 "
                    "ORDER BY name COLLATE NOCASE, id LIMIT ?",
                    (text, limit),
                )
                .fetchall()
            )
        return [_ROWS.account(row) for row in rows]

    @_sqlite_errors
    def account(self, name: str) -> Account | None:
        """The account called ``name``, whatever its case."""
        row = self._db().execute(f"{_ACCOUNT} WHERE name = ?", (name,)).fetchone()
        return None if row is None else _ROWS.account(row)

    @_sqlite_errors
    def account_by_id(self, account_id: int) -> Account | None:
        """The account with that id."""
        row = self._db().execute(f"{_ACCOUNT} WHERE id = ?", (account_id,)).fetchone()
        return None if row is None else _ROWS.account(row)

    @_sqlite_errors
    def accounts(self) -> list[Account]:
        """Every account, by name."""
        rows = self._db().execute(f"{_ACCOUNT} ORDER BY name COLLATE NOCASE, id").fetchall()
        return [_ROWS.account(row) for row in rows]

    @_sqlite_errors
    def rename(self, name: str, new_name: str) -> Account:
        """Give an account another name (a change of case only is allowed)."""
        check_name(new_name)
        with self._write() as connection:
            row = connection.execute(f"{_ACCOUNT} WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownAccount(f"no account named {name!r}")
            key = name_key(new_name)
            try:
                connection.execute(
                    "UPDATE accounts SET name = ?, name_key = ? WHERE id = ?",
                    (new_name, key, row[0]),
                )
            except sqlite3.IntegrityError:
                raise self._taken(connection, new_name, key) from None
        return Account(id=row[0], name=new_name, created=_time(row[2]), status=row[3])

    @_sqlite_errors
    def delete(self, name: str) -> None:
        """Delete an account; its keys, certificates and codes go with it (cascade)."""
        with self._write() as connection:
            row = connection.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownAccount(f"no account named {name!r}")
            connection.execute(
                "DELETE FROM bans WHERE kind = 'account' AND value = ?", (str(row[0]),)
            )
            connection.execute("DELETE FROM accounts WHERE id = ?", (row[0],))

    @_sqlite_errors
    def certificates(self, account_id: int) -> list[CertificateRecord]:
        """An account's certificates, oldest first."""
        rows = (
            self._db()
            .execute(
                f"{_CERTIFICATE} WHERE account_id = ? ORDER BY first_seen, fingerprint",
                (account_id,),
            )
            .fetchall()
        )
        return [_ROWS.certificate(row) for row in rows]

    @_sqlite_errors
    def add_certificate(
        self, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> CertificateRecord:
        """Add a certificate (and its key) to an account."""
        with self._write() as connection:
            if connection.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
                self._claim(connection, account_id, identity, now)
            else:
                raise UnknownAccount(f"no account with id {account_id}")
            row = connection.execute(
                f"{_CERTIFICATE} WHERE fingerprint = ?", (identity.fingerprint,)
            ).fetchone()
        return _ROWS.certificate(row)

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

    @_sqlite_errors
    def remove_certificate(self, account_id: int, fingerprint: str) -> None:
        """Remove a certificate (typed in any notation); never the account's last one."""
        fingerprint = canonical_fingerprint(fingerprint)
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

    @_sqlite_errors
    def create_link_code(self, account_id: int, code_hash: bytes, expires: dt.datetime) -> None:
        """Store a code's hash, replacing the account's earlier codes."""
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

    @_sqlite_errors
    def redeem_link_code(
        self, code_hash: bytes, identity: ClientIdentity, now: dt.datetime
    ) -> Account | None:
        """Spend a live code on adding ``identity`` to its account, all or nothing."""
        with self._write() as connection:
            connection.execute("DELETE FROM link_codes WHERE expires <= ?", (_text(now),))
            row = connection.execute(
                f"{_ACCOUNT} WHERE id = (SELECT account_id FROM link_codes WHERE code_hash = ?)",  # noqa: S608
                (code_hash,),
            ).fetchone()
            if row is None:
                return None
            account = _ROWS.account(row)
            self._claim(connection, account.id, identity, now)
            connection.execute("DELETE FROM link_codes WHERE code_hash = ?", (code_hash,))
        return account

    # -- confirmations ------------------------------------------------------------------

    @_sqlite_errors
    def create_confirmation(
        self, confirmation: Confirmation, expires: dt.datetime, now: dt.datetime
    ) -> None:
        """Keep a nonce's hash; drop expired ones and the certificate's oldest beyond the cap."""
        with self._write() as connection:
            connection.execute("DELETE FROM confirmations WHERE expires <= ?", (_text(now),))
            connection.execute(
                "INSERT OR REPLACE INTO confirmations "
                "(nonce_hash, fingerprint, action, target, expires) VALUES (?, ?, ?, ?, ?)",
                (*confirmation_key(confirmation), _text(expires)),
            )
            connection.execute(
                "DELETE FROM confirmations WHERE nonce_hash IN (SELECT nonce_hash "
                "FROM confirmations WHERE fingerprint = ? ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (confirmation.fingerprint, MAX_CONFIRMATIONS),
            )

    @_sqlite_errors
    def confirmation_valid(self, confirmation: Confirmation, now: dt.datetime) -> bool:
        """Whether the nonce is live for exactly this certificate, action and target."""
        row = self._db().execute(_CONFIRMATION_VALID, _matching(confirmation, now)).fetchone()
        return row is not None

    @_sqlite_errors
    def take_confirmation(self, confirmation: Confirmation, now: dt.datetime) -> dt.datetime | None:
        """Consume a valid nonce, returning its expiry; None if it is not valid."""
        with self._write() as connection:
            row = connection.execute(_TAKE_CONFIRMATION, _matching(confirmation, now)).fetchone()
        return None if row is None else _time(row[0])

    # -- bans ---------------------------------------------------------------------------

    @_sqlite_errors
    def ban(
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
            value = canonical_fingerprint(value)
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
        return _ROWS.ban(row)

    @_sqlite_errors
    def unban(self, kind: BanKind, value: str) -> int:
        """Lift the bans on one certificate, key or account; returns how many."""
        kind = BanKind(kind)
        if kind is not BanKind.ACCOUNT:
            value = canonical_fingerprint(value)
        with self._write() as connection:
            cursor = connection.execute(
                "DELETE FROM bans WHERE kind = ? AND value = ?", (kind.value, value)
            )
        return cursor.rowcount

    @_sqlite_errors
    def bans(self) -> list[Ban]:
        """Every ban, newest first."""
        rows = self._db().execute(f"{_BAN} ORDER BY created DESC, id DESC").fetchall()
        return [_ROWS.ban(row) for row in rows]

    # -- allow-lists --------------------------------------------------------------------

    @_sqlite_errors
    def allow(self, list_name: str, fingerprint: str) -> bool:
        """Put a fingerprint on a list; False if it was already there."""
        if not list_name:
            raise StoreError("an allow-list needs a name")
        fingerprint = canonical_fingerprint(fingerprint)
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO allow_entries (list, fingerprint, added) VALUES (?, ?, ?)",
                (list_name, fingerprint, _text(dt.datetime.now(dt.UTC))),
            )
        return cursor.rowcount == 1

    @_sqlite_errors
    def disallow(self, list_name: str, fingerprint: str) -> bool:
        """Take a fingerprint off a list; False if it was not there."""
        fingerprint = canonical_fingerprint(fingerprint)
        with self._write() as connection:
            cursor = connection.execute(
                "DELETE FROM allow_entries WHERE list = ? AND fingerprint = ?",
                (list_name, fingerprint),
            )
        return cursor.rowcount == 1

    @_sqlite_errors
    def allow_list(self, list_name: str) -> list[str]:
        """A list's fingerprints, sorted."""
        rows = (
            self._db()
            .execute(
                "SELECT fingerprint FROM allow_entries WHERE list = ? ORDER BY fingerprint",
                (list_name,),
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    @_sqlite_errors
    def allow_lists(self) -> dict[str, int]:
        """Each list's name and size."""
        rows = (
            self._db()
            .execute("SELECT list, count(*) FROM allow_entries GROUP BY list ORDER BY list")
            .fetchall()
        )
        return {row[0]: row[1] for row in rows}

    # -- the admin capsule ----------------------------------------------------------------

    @_sqlite_errors
    def add_audit_entry(
        self, time: dt.datetime, admin: str, action: str, target: str, reason: str = ""
    ) -> AuditEntry:
        """Append an entry to the audit log."""
        check_audit(admin, action, target)
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO audit_log (time, admin, action, target, reason) "
                "VALUES (?, ?, ?, ?, ?)",
                (_text(time), admin, action, target, reason),
            )
        assert cursor.lastrowid is not None
        return AuditEntry(cursor.lastrowid, _time(_text(time)), admin, action, target, reason)

    @_sqlite_errors
    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The last ``limit`` entries, newest first."""
        rows = (
            self._db().execute(f"{_AUDIT} ORDER BY time DESC, id DESC LIMIT ?", (limit,)).fetchall()
        )
        return [_ROWS.audit_entry(row) for row in rows]

    @_sqlite_errors
    def counts(self, now: dt.datetime) -> StoreCounts:
        """What the store holds, and the file's size (pages in use, the WAL not counted)."""
        connection = self._db()
        row = connection.execute(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM certificates), "
            "(SELECT count(*) FROM bans WHERE until IS NULL OR until > ?), "
            "(SELECT count(*) FROM allow_entries), (SELECT count(*) FROM audit_log)",
            (_text(now),),
        ).fetchone()
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        accounts, certificates, bans, allowed, audited = (int(n) for n in row)
        return StoreCounts(
            accounts, certificates, bans, allowed, audited, size=int(pages) * int(page_size)
        )

    # -- lifecycle ----------------------------------------------------------------------

    @_sqlite_errors
    def close(self) -> None:
        """Close the connection (checkpointing the WAL); closing twice is harmless."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class ChangeCounter:
    """The database's change counter, read on a connection of its own (``PRAGMA data_version``).

    The value changes whenever any other connection commits: the store's own
    connection, the admin CLI, another worker process.  Reading it costs a few
    microseconds and no I/O (it reads the WAL index in shared memory), so it
    can be asked on every request.  Unlike :class:`SQLiteDatabase`, it may be
    used from a thread other than the one that opened it (one at a time).
    """

    def __init__(self, path: Path) -> None:
        try:
            watch = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from None
        try:
            watch.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            watch.close()
            raise StoreError(f"cannot open {path}: {exc}") from None
        self._watch = watch

    def read(self) -> int:
        """The current value; compare it with an earlier one to know whether anything changed."""
        try:
            version: int = self._watch.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"identity store: {exc}") from None
        return version

    def close(self) -> None:
        """Close the watching connection."""
        self._watch.close()
