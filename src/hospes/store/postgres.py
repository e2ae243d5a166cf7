"""The identity store in PostgreSQL, shared by every node of a capsule.

:class:`PostgresStore` implements :class:`~hospes.store.base.Store` with
psycopg 3's asyncio API and a connection pool, on the event loop that first
uses it (the server's), so a query never blocks the loop.  Install it with
``pip install 'hospes[postgres]'`` and select it with
``--database postgresql://…`` or ``database = "postgresql://…"``.

What makes several nodes correct:

* **Uniqueness in the schema.**  A name, a key or a certificate belongs to one
  account by unique indexes, so of two nodes racing to register one name, one
  wins and the other answers :class:`~hospes.store.base.NameTaken`.  A link
  code is consumed by ``DELETE … RETURNING``: one redemption wins, on any node.
* **Reads from memory, told of changes.**  The request path's reads
  (``recognise``, ``active_ban``, ``is_allowed``) are answered by a
  :class:`~hospes.store.cache.ReadCache`, as SQLite's are.  Its version is
  :class:`ChangeWatch`: a connection of its own that ``LISTEN`` s for the
  notification every change sends at commit (triggers, so a change made by
  hand in ``psql`` counts too) and reads the change counter every
  :data:`CHECK_INTERVAL` in case a notification was lost.  A change made on
  another node or by the admin CLI reaches this node's answers within the
  notification's trip (milliseconds; measured in ``tests/test_store_postgres.py``),
  and at worst within :data:`PROPAGATION` (the interval plus the check's
  timeout).  While the watch is not connected, nothing is cached: every read
  goes to the database.  This store's own writes apply to its next read.
* **Shared rate limits.**  :meth:`PostgresStore.take_token` keeps the account
  pages' token buckets in the database, so a limit holds across nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeAlias, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

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
from .cache import CachedStore, ReadCache
from .database_url import redact
from .migrations import SchemaError
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
from .postgres_migrations import CHANNEL, migrate
from .rows import RowReader, confirmation_key

__all__ = [
    "CHECK_INTERVAL",
    "CHECK_TIMEOUT",
    "POOL_RECONNECT",
    "POOL_SIZE",
    "POOL_TIMEOUT",
    "PROPAGATION",
    "ChangeWatch",
    "PostgresStore",
]

log = logging.getLogger("hospes.store")

P = ParamSpec("P")
R = TypeVar("R")

POOL_SIZE = 8
"""Connections per node at most; the request path needs one only on a cache miss or a write."""
POOL_TIMEOUT = 5.0
"""Seconds a query waits for a free connection (or for the database to come back)."""
POOL_RECONNECT = 5.0
"""Seconds the pool keeps trying to replace a lost connection before it gives up on it.

The next query that finds no connection then starts a new attempt at once.
psycopg_pool's default (300 s) doubles the pause between attempts (1, 2, 4 …
128 s): a node that lost the database for a few minutes went on answering
``40`` for as long again after it was back.  With 5 s, attempts are at most
about 2 s apart, as :class:`ChangeWatch`'s are at most :data:`_RETRY_LONGEST`.
"""
CONNECT_TIMEOUT = 5
"""Seconds to open a connection (libpq's ``connect_timeout``)."""
CHECK_INTERVAL = 1.0
"""Seconds between two reads of the change counter by :class:`ChangeWatch`."""
CHECK_TIMEOUT = 2.0
"""Seconds that read may take before the watch's connection is deemed dead."""
PROPAGATION = dt.timedelta(seconds=CHECK_INTERVAL + CHECK_TIMEOUT)
"""The longest a change made elsewhere takes to reach a node's answers (usually: milliseconds)."""
_RETRY_FIRST = 0.1
_RETRY_LONGEST = 5.0
POOL_LOG_INTERVAL = 60.0
"""Seconds between two warnings of the pool (psycopg_pool's logger) that reach the log."""
_SWEEP_EVERY = 256
"""Rate-limit takes between two deletions of full (forgettable) buckets."""

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]

_PREFIX = re.compile(r"\ASHA256:[0-9a-f]{0,64}\Z")
_ACCOUNT = "SELECT id, name, created, status FROM accounts"
_CERTIFICATE = (
    "SELECT fingerprint, key_fingerprint, account_id, common_name, not_before, not_after, "
    "first_seen, last_seen FROM certificates"
)
_BAN = "SELECT id, kind, value, reason, created, until FROM bans"
_AUDIT = "SELECT id, time, admin, action, target, reason FROM audit_log"
_RECOGNISE = (
    "SELECT a.id, a.name, a.created, a.status, c.last_seen "
    "FROM account_keys AS k JOIN accounts AS a ON a.id = k.account_id "
    "LEFT JOIN certificates AS c ON c.fingerprint = %s AND c.account_id = k.account_id "
    "WHERE k.key_fingerprint = %s"
)
_AWAITED = "SELECT 1 FROM awaited_fingerprints WHERE fingerprint IN (%s, %s) LIMIT 1"
_ACTIVE_BAN = (
    _BAN + " WHERE ((value = %s AND kind = 'certificate') OR (value = %s AND kind = 'key') "
    "OR (value = %s AND kind = 'account')) AND (until IS NULL OR until > %s) "
    "ORDER BY created DESC, id DESC LIMIT 1"
)
_INSERT_CERTIFICATE = (
    "INSERT INTO certificates (fingerprint, key_fingerprint, account_id, common_name, "
    "not_before, not_after, first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# One statement: the bucket's row lock makes concurrent takes (on any node) queue, and in
# the SET list ``b`` is the bucket as it was.  _LEVEL is its level now, refilled.
_LEVEL = (
    "least(%(burst)s, b.tokens + %(rate)s "
    "* greatest(0, extract(epoch FROM %(now)s - b.updated)::float8))"
)
_TAKE = f"""
    INSERT INTO rate_buckets AS b (name, key, tokens, updated, full_at, granted)
    VALUES (%(name)s, %(key)s, %(burst)s - 1, %(now)s,
            %(now)s + make_interval(secs => 1 / %(rate)s), true)
    ON CONFLICT (name, key) DO UPDATE SET
        tokens = CASE WHEN {_LEVEL} >= 1 THEN {_LEVEL} - 1 ELSE {_LEVEL} END,
        granted = {_LEVEL} >= 1,
        updated = greatest(b.updated, %(now)s),
        full_at = greatest(b.updated, %(now)s) + make_interval(
            secs => (%(burst)s - CASE WHEN {_LEVEL} >= 1 THEN {_LEVEL} - 1 ELSE {_LEVEL} END)
                    / %(rate)s)
    RETURNING tokens, granted
"""  # noqa: S608 - only our own constant is formatted in


class _OnceAMinute(logging.Filter):
    """Let each kind of psycopg_pool's warnings through once per :data:`POOL_LOG_INTERVAL`.

    The pool warns at every failed connection attempt, and while the database
    is down the attempts follow each other a second or two apart
    (:data:`POOL_RECONNECT`): an outage would fill the log.  hospes says it
    itself, once a minute (the dispatcher's "identity store unavailable"), and
    the pool's first warning of each kind tells why (``error connecting …:
    the reason``); the next one passed says how many were left out meanwhile.
    """

    def __init__(self) -> None:
        super().__init__()
        self._passed: dict[object, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind, now = record.msg, time.monotonic()  # the format string: a kind of warning
        passed, dropped = self._passed.get(kind, (-math.inf, 0))
        if now - passed < POOL_LOG_INTERVAL:
            self._passed[kind] = (passed, dropped + 1)
            return False
        self._passed[kind] = (now, 0)
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like it left out)"
            record.args = ()
        return True


logging.getLogger("psycopg.pool").addFilter(_OnceAMinute())


def _reason(exc: BaseException) -> str:
    """A driver error as one line (libpq's messages run over several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


_ROWS = RowReader(_utc)


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("the store only takes timezone-aware datetimes")
    return moment


def _translated(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Report the driver's and the pool's errors (down, timed out, refused) as StoreError."""

    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except psycopg.Error as exc:
            raise StoreError(f"identity store: {_reason(exc)}") from exc

    return translated


def _open_database(url: str, *, create: bool) -> str:
    """Connect once, synchronously, and apply the missing migrations; the schema's name.

    This is the check at start-up: a wrong URL, a database that is down or a
    schema that is too new fails here, before the server listens.
    """
    shown = redact(url)
    try:
        with psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="hospes"
        ) as connection:
            row = connection.execute("SELECT current_schema()").fetchone()
            schema = None if row is None else row[0]
            if schema is None:
                raise StoreError(
                    "the search_path names no schema that exists (create it first: CREATE SCHEMA …)"
                )
            old, _ = migrate(connection, create=create)
    except (SchemaError, StoreError) as exc:
        raise StoreError(f"{shown}: {exc}") from None
    except psycopg.Error as exc:
        raise StoreError(f"cannot use the database {shown}: {_reason(exc)}") from None
    except ValueError as exc:  # what the driver says of a malformed URL
        raise StoreError(f"not a usable database URL {shown}: {exc}") from None
    if old == 0 and create:
        log.info("created the identity store's tables in %s (schema %s)", shown, schema)
    return str(schema)


class ChangeWatch:
    """This node's change counter: bumped by the database's notifications and its own writes.

    ``version()`` is the :class:`~hospes.store.cache.ReadCache`'s version
    function: an integer that moves on every change while the watch is
    connected and listening, and a new object at every call when it is not
    (so nothing is cached while a change could go unnoticed).  ``run()``
    keeps the watch connected: ``LISTEN``, then notifications as they come
    and the change counter every :data:`CHECK_INTERVAL`; a failure closes
    the connection, and it is opened again after a short, growing pause.
    """

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self.count = 0
        """Moves on every change this node learnt of."""
        self.live = False
        """Whether the watch listens right now (and so, whether answers may be cached)."""
        self.connected = asyncio.Event()
        """Set while the watch listens (for tests and the start-up log)."""
        self.backend_pid: int | None = None
        """The database process of the watch's connection (tests terminate it)."""

    def version(self) -> Hashable:
        """The cache's version: the count while listening, else something equal to nothing."""
        return self.count if self.live else object()

    def bump(self) -> None:
        """Something changed: every answer cached before now is out of date."""
        self.count += 1

    async def run(self) -> None:
        """Listen until cancelled; after a failure, connect again after a growing pause."""
        pause = _RETRY_FIRST
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if self.live or pause == _RETRY_FIRST:
                    log.warning(
                        "identity store: not told of changes (%s); reading the database on "
                        "every request until the connection is back",
                        _reason(exc),
                    )
            finally:
                if self.live:
                    pause = _RETRY_FIRST  # it worked until now: try again at once
                self.live = False
                self.connected.clear()
                self.backend_pid = None
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_LONGEST)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="hospes"
        )
        async with connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            seen = await self._counter(connection)
            self.backend_pid = connection.info.backend_pid
            self.live = True
            self.bump()
            self.connected.set()
            log.debug("identity store: listening for changes of schema %s", self.schema)
            while True:
                async for notify in connection.notifies(timeout=CHECK_INTERVAL):
                    if notify.payload == self.schema:
                        self.bump()
                counter = await asyncio.wait_for(self._counter(connection), CHECK_TIMEOUT)
                if counter != seen:
                    seen = counter
                    self.bump()

    @staticmethod
    async def _counter(connection: Conn) -> int:
        cursor = await connection.execute("SELECT n FROM changes")
        row = await cursor.fetchone()
        if row is None:
            raise psycopg.DataError("the change counter's row is missing")
        return int(row[0])


class PostgresStore(CachedStore):
    """The :class:`~hospes.store.base.Store` in a PostgreSQL database, for one or many nodes.

    ``url`` is a libpq URL (``postgresql://user:password@host:port/database``,
    with ``?options=-csearch_path%3Dschema`` to use a schema other than
    ``public``).  Opening connects once to apply pending migrations (so a
    wrong URL or a database that is down is a :class:`StoreError` here);
    ``create=False`` refuses a database without hospes' tables (the admin
    CLI's read-only commands).  The pool is opened on the event loop of the
    first call, and the store must be used on that loop only.
    """

    propagation = PROPAGATION

    def __init__(self, url: str, *, create: bool = True, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.shown = redact(url)
        """The URL without its password."""
        self.schema = _open_database(url, create=create)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.watch = ChangeWatch(url, self.schema)
        self._watching: asyncio.Task[None] | None = None
        self._cache = ReadCache(self.watch.version)
        self._takes = 0

    # -- the pool, on the loop of the first call ----------------------------------------

    async def _opened(self) -> AsyncConnectionPool[Conn]:
        pool = self._pool
        if pool is None or self._loop is not asyncio.get_running_loop():
            pool = self._open_pool()
        assert self._ready is not None
        await self._ready
        return pool

    def _open_pool(self) -> AsyncConnectionPool[Conn]:
        if self._closed:
            raise StoreError("the identity store is closed")
        loop = asyncio.get_running_loop()
        if self._pool is not None:
            raise StoreError("the PostgreSQL store is used on another event loop than its own")
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=POOL_TIMEOUT,
            reconnect_timeout=POOL_RECONNECT,
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
                "application_name": "hospes",
            },
            name="hospes",
        )
        self._pool, self._loop = pool, loop
        self._ready = loop.create_task(pool.open())
        self._watching = loop.create_task(self.watch.run(), name="hospes-store-watch")
        return pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A connection of the pool, for one statement or one transaction."""
        pool = await self._opened()
        async with pool.connection() as connection:
            yield connection

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        """One write transaction; this node's cache forgets its answers once it ends."""
        try:
            async with self._connection() as connection, connection.transaction():
                yield connection
        finally:
            self.watch.bump()

    async def _one(self, query: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        async with self._connection() as connection:
            cursor = await connection.execute(query, params)
            return await cursor.fetchone()

    async def _all(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._connection() as connection:
            cursor = await connection.execute(query, params)
            return await cursor.fetchall()

    # -- recognition: the database's answers (CachedStore asks its cache first) ------------

    @_translated
    async def _recognise(
        self, identity: ClientIdentity, now: dt.datetime
    ) -> tuple[Account | None, dt.datetime | None]:
        now = _aware(now)
        row = await self._one(_RECOGNISE, (identity.fingerprint, identity.key_fingerprint))
        if row is None:
            return await self._claim_awaited(identity, now), None
        account = _ROWS.account(row)
        last_seen: dt.datetime | None = row[4]
        if last_seen is None:
            async with self._transaction() as connection:
                cursor = await connection.execute(
                    "SELECT account_id FROM account_keys WHERE key_fingerprint = %s FOR SHARE",
                    (identity.key_fingerprint,),
                )
                owner = await cursor.fetchone()
                if owner is None or owner[0] != account.id:
                    return None, None  # the key was removed meanwhile
                await connection.execute(
                    _INSERT_CERTIFICATE + " ON CONFLICT (fingerprint) DO NOTHING",
                    _certificate_values(account.id, identity, now),
                )
        elif last_seen < now - LAST_SEEN_INTERVAL:
            # Not a change any cache holds: no trigger fires, no node forgets anything.
            async with self._connection() as connection:
                await connection.execute(
                    "UPDATE certificates SET last_seen = %s "
                    "WHERE fingerprint = %s AND last_seen < %s",
                    (now, identity.fingerprint, now),
                )
        else:
            return account, last_seen + LAST_SEEN_INTERVAL
        return account, now + LAST_SEEN_INTERVAL

    async def _claim_awaited(self, identity: ClientIdentity, now: dt.datetime) -> Account | None:
        """The account awaiting this certificate or key (``accounts create``), which gets it now."""
        awaited = (identity.fingerprint, identity.key_fingerprint)
        if await self._one(_AWAITED, awaited) is None:
            return None  # a stranger: the usual answer, one indexed read
        try:
            async with self._transaction() as connection:
                cursor = await connection.execute(
                    "DELETE FROM awaited_fingerprints WHERE fingerprint IN (%s, %s) "
                    "RETURNING account_id",
                    awaited,
                )
                claimed = await cursor.fetchone()
                if claimed is None:
                    return None  # claimed by another node, or the account deleted, meanwhile
                cursor = await connection.execute(
                    f"{_ACCOUNT} WHERE id = %s FOR SHARE", (claimed[0],)
                )
                row = await cursor.fetchone()
                if row is None:
                    return None
                await self._insert_certificate(connection, int(row[0]), identity, now)
        except pg_errors.UniqueViolation:
            return None  # the key joined another account meanwhile: that one wins
        return _ROWS.account(row)

    @_translated
    async def _active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        row = await self._one(
            _ACTIVE_BAN,
            (
                identity.fingerprint,
                identity.key_fingerprint,
                None if account is None else str(account.id),
                _aware(now),
            ),
        )
        return None if row is None else _ROWS.ban(row)

    @_translated
    async def _is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        row = await self._one(
            "SELECT 1 FROM allow_entries WHERE list = ANY(%s) AND fingerprint IN (%s, %s) LIMIT 1",
            (list(lists), identity.fingerprint, identity.key_fingerprint),
        )
        return row is not None

    # -- accounts -----------------------------------------------------------------------

    @_translated
    async def register(self, name: str, identity: ClientIdentity, now: dt.datetime) -> Account:
        """Create an account with its first certificate, in one transaction."""
        check_name(name)
        now = _aware(now)
        try:
            async with self._transaction() as connection:
                cursor = await connection.execute(
                    "SELECT a.name FROM account_keys AS k "
                    "JOIN accounts AS a ON a.id = k.account_id WHERE k.key_fingerprint = %s",
                    (identity.key_fingerprint,),
                )
                row = await cursor.fetchone()
                if row is not None:
                    raise AlreadyRegistered(
                        f"this certificate already belongs to account {row[0]!r}"
                    )
                cursor = await connection.execute(
                    "INSERT INTO accounts (name, created, name_key) VALUES (%s, %s, %s) "
                    "RETURNING id",
                    (name, now, name_key(name)),
                )
                created = await cursor.fetchone()
                assert created is not None
                account_id = int(created[0])
                await self._insert_certificate(connection, account_id, identity, now)
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name in ("accounts_name", "accounts_name_key"):
                raise await self._taken(name) from None
            raise AlreadyRegistered(
                "this certificate (or its key) already belongs to an account"
            ) from None
        return Account(id=account_id, name=name, created=_utc(now))

    @_translated
    async def create_account(self, name: str, fingerprint: str, now: dt.datetime) -> Account:
        """Create an account awaiting the first certificate with this (or its key's) fingerprint."""
        check_name(name)
        fingerprint = canonical_fingerprint(fingerprint)
        now = _aware(now)
        try:
            async with self._transaction() as connection:
                cursor = await connection.execute(
                    "SELECT a.name FROM accounts AS a WHERE a.id IN ("
                    "SELECT account_id FROM account_keys WHERE key_fingerprint = %s "
                    "UNION SELECT account_id FROM certificates WHERE fingerprint = %s "
                    "UNION SELECT account_id FROM awaited_fingerprints WHERE fingerprint = %s)",
                    (fingerprint, fingerprint, fingerprint),
                )
                row = await cursor.fetchone()
                if row is not None:
                    raise AlreadyRegistered(f"{fingerprint} already belongs to account {row[0]!r}")
                cursor = await connection.execute(
                    "INSERT INTO accounts (name, created, name_key) VALUES (%s, %s, %s) "
                    "RETURNING id",
                    (name, now, name_key(name)),
                )
                created = await cursor.fetchone()
                assert created is not None
                account_id = int(created[0])
                await connection.execute(
                    "INSERT INTO awaited_fingerprints (fingerprint, account_id, created) "
                    "VALUES (%s, %s, %s)",
                    (fingerprint, account_id, now),
                )
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name in ("accounts_name", "accounts_name_key"):
                raise await self._taken(name) from None
            raise AlreadyRegistered(f"{fingerprint} already belongs to an account") from None
        return Account(id=account_id, name=name, created=_utc(now))

    @_translated
    async def awaited_fingerprints(self, account_id: int) -> list[str]:
        """The fingerprints an account created by the admin still waits for."""
        rows = await self._all(
            "SELECT fingerprint FROM awaited_fingerprints WHERE account_id = %s "
            'ORDER BY fingerprint COLLATE "C"',
            (account_id,),
        )
        return [row[0] for row in rows]

    @_translated
    async def fingerprints_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Every known fingerprint starting with ``prefix``, sorted, at most ``limit``."""
        if not _PREFIX.match(prefix):
            raise StoreError(f"not a fingerprint prefix: {prefix!r}")
        # Canonical fingerprints are lowercase hex: a range on each column's index, no LIKE.
        columns = [
            ("fingerprint", "certificates", ""),
            ("key_fingerprint", "account_keys", ""),
            ("fingerprint", "awaited_fingerprints", ""),
            ("fingerprint", "allow_entries", ""),
            ("value", "bans", "kind IN ('certificate', 'key') AND "),
        ]
        query = " UNION ".join(
            f"SELECT {column} FROM {table} WHERE {extra}"  # noqa: S608 - our own names only
            f'{column} COLLATE "C" >= %s AND {column} COLLATE "C" < %s'
            for column, table, extra in columns
        )
        params = [bound for _ in columns for bound in (prefix, prefix + "g")]
        rows = await self._all(
            f'SELECT f FROM ({query}) AS known (f) ORDER BY f COLLATE "C" LIMIT %s',  # noqa: S608
            [*params, limit],
        )
        return [row[0] for row in rows]

    async def _taken(self, name: str) -> NameTaken:
        """The error for ``name`` when the unique indexes refused it: which account has it."""
        row = await self._one(
            "SELECT name FROM accounts WHERE lower(name) = lower(%s) OR name_key = %s "
            "ORDER BY lower(name) = lower(%s) DESC, id LIMIT 1",
            (name, name_key(name), name),
        )
        if row is None or row[0].lower() == name.lower():
            return NameTaken(f"the name {name!r} is taken")
        return NameTaken(f"the name {name!r} looks like the existing account {row[0]!r}", row[0])

    @staticmethod
    async def _insert_certificate(
        connection: Conn, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> None:
        await connection.execute(
            "INSERT INTO account_keys (key_fingerprint, account_id) VALUES (%s, %s)",
            (identity.key_fingerprint, account_id),
        )
        await connection.execute(
            _INSERT_CERTIFICATE, _certificate_values(account_id, identity, now)
        )

    @_translated
    async def search_accounts(self, text: str, limit: int = 50) -> list[Account]:
        """Accounts whose name contains ``text``, or with a fingerprint starting with it."""
        order = 'ORDER BY lower(name) COLLATE "C", id LIMIT %s'
        if _PREFIX.match(text):
            ranges = " UNION ".join(
                f"SELECT account_id FROM {table} "  # noqa: S608 - our own names only
                f'WHERE {column} COLLATE "C" >= %s AND {column} COLLATE "C" < %s'
                for column, table in (
                    ("fingerprint", "certificates"),
                    ("key_fingerprint", "account_keys"),
                    ("fingerprint", "awaited_fingerprints"),
                )
            )
            rows = await self._all(
                f"{_ACCOUNT} WHERE id IN ({ranges}) {order}",
                [*(text, text + "g") * 3, limit],
            )
        else:
            rows = await self._all(
                f"{_ACCOUNT} WHERE strpos(lower(name), lower(%s)) > 0 {order}",
                (text, limit),
            )
        return [_ROWS.account(row) for row in rows]

    @_translated
    async def account(self, name: str) -> Account | None:
        """The account called ``name``, whatever its case."""
        row = await self._one(f"{_ACCOUNT} WHERE lower(name) = lower(%s)", (name,))
        return None if row is None else _ROWS.account(row)

    @_translated
    async def account_by_id(self, account_id: int) -> Account | None:
        """The account with that id."""
        row = await self._one(f"{_ACCOUNT} WHERE id = %s", (account_id,))
        return None if row is None else _ROWS.account(row)

    @_translated
    async def accounts(self) -> list[Account]:
        """Every account, by name (ASCII order regardless of case, as SQLite's ``NOCASE``)."""
        rows = await self._all(f'{_ACCOUNT} ORDER BY lower(name) COLLATE "C", id')
        return [_ROWS.account(row) for row in rows]

    @_translated
    async def rename(self, name: str, new_name: str) -> Account:
        """Give an account another name (a change of case only is allowed)."""
        check_name(new_name)
        try:
            async with self._transaction() as connection:
                cursor = await connection.execute(
                    f"{_ACCOUNT} WHERE lower(name) = lower(%s) FOR UPDATE", (name,)
                )
                row = await cursor.fetchone()
                if row is None:
                    raise UnknownAccount(f"no account named {name!r}")
                await connection.execute(
                    "UPDATE accounts SET name = %s, name_key = %s WHERE id = %s",
                    (new_name, name_key(new_name), row[0]),
                )
        except pg_errors.UniqueViolation:
            raise await self._taken(new_name) from None
        return Account(id=row[0], name=new_name, created=_utc(row[2]), status=row[3])

    @_translated
    async def delete(self, name: str) -> None:
        """Delete an account; its keys, certificates and codes go with it (cascade)."""
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "DELETE FROM accounts WHERE lower(name) = lower(%s) RETURNING id", (name,)
            )
            row = await cursor.fetchone()
            if row is None:
                raise UnknownAccount(f"no account named {name!r}")
            await connection.execute(
                "DELETE FROM bans WHERE kind = 'account' AND value = %s", (str(row[0]),)
            )

    @_translated
    async def certificates(self, account_id: int) -> list[CertificateRecord]:
        """An account's certificates, oldest first."""
        rows = await self._all(
            f'{_CERTIFICATE} WHERE account_id = %s ORDER BY first_seen, fingerprint COLLATE "C"',
            (account_id,),
        )
        return [_ROWS.certificate(row) for row in rows]

    @_translated
    async def add_certificate(
        self, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> CertificateRecord:
        """Add a certificate (and its key) to an account."""
        now = _aware(now)
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "SELECT 1 FROM accounts WHERE id = %s FOR SHARE", (account_id,)
            )
            if await cursor.fetchone() is None:
                raise UnknownAccount(f"no account with id {account_id}")
            await self._claim(connection, account_id, identity, now)
            cursor = await connection.execute(
                f"{_CERTIFICATE} WHERE fingerprint = %s", (identity.fingerprint,)
            )
            row = await cursor.fetchone()
        assert row is not None
        return _ROWS.certificate(row)

    async def _claim(
        self, connection: Conn, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> None:
        """Add a certificate no account has (its key included) to ``account_id``."""
        cursor = await connection.execute(
            "SELECT k.account_id, a.name FROM account_keys AS k "
            "JOIN accounts AS a ON a.id = k.account_id WHERE k.key_fingerprint = %s",
            (identity.key_fingerprint,),
        )
        row = await cursor.fetchone()
        if row is not None:
            whose = "this account" if row[0] == account_id else f"account {row[1]!r}"
            raise AlreadyRegistered(f"this certificate (or its key) already belongs to {whose}")
        try:
            async with connection.transaction():  # a savepoint: a lost race is our error
                await self._insert_certificate(connection, account_id, identity, now)
        except pg_errors.UniqueViolation:
            raise AlreadyRegistered(
                "this certificate (or its key) already belongs to an account"
            ) from None

    @_translated
    async def remove_certificate(self, account_id: int, fingerprint: str) -> None:
        """Remove a certificate (typed in any notation); never the account's last one."""
        fingerprint = canonical_fingerprint(fingerprint)
        async with self._transaction() as connection:
            # Locking the account serialises removals: two cannot leave it with none.
            await connection.execute(
                "SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,)
            )
            cursor = await connection.execute(
                "SELECT key_fingerprint FROM certificates "
                "WHERE fingerprint = %s AND account_id = %s",
                (fingerprint, account_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise StoreError(f"{fingerprint} is not a certificate of this account")
            cursor = await connection.execute(
                "SELECT count(*) FROM certificates WHERE account_id = %s", (account_id,)
            )
            counted = await cursor.fetchone()
            assert counted is not None
            if counted[0] <= 1:
                raise LastCertificate(
                    "that is the account's last certificate; link another one first"
                )
            await connection.execute(
                "DELETE FROM certificates WHERE fingerprint = %s", (fingerprint,)
            )
            await connection.execute(
                "DELETE FROM account_keys WHERE key_fingerprint = %s AND NOT EXISTS "
                "(SELECT 1 FROM certificates WHERE key_fingerprint = %s)",
                (row[0], row[0]),
            )

    # -- linking a device ---------------------------------------------------------------

    @_translated
    async def create_link_code(
        self, account_id: int, code_hash: bytes, expires: dt.datetime
    ) -> None:
        """Store a code's hash, replacing the account's earlier codes."""
        expires = _aware(expires)
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(
                "SELECT 1 FROM accounts WHERE id = %s FOR SHARE", (account_id,)
            )
            if await cursor.fetchone() is None:
                raise UnknownAccount(f"no account with id {account_id}")
            await connection.execute("DELETE FROM link_codes WHERE account_id = %s", (account_id,))
            await connection.execute(
                "INSERT INTO link_codes (code_hash, account_id, expires) VALUES (%s, %s, %s) "
                "ON CONFLICT (code_hash) DO UPDATE SET account_id = excluded.account_id, "
                "expires = excluded.expires",
                (code_hash, account_id, expires),
            )

    @_translated
    async def redeem_link_code(
        self, code_hash: bytes, identity: ClientIdentity, now: dt.datetime
    ) -> Account | None:
        """Spend a live code on adding ``identity`` to its account, all or nothing.

        ``DELETE … RETURNING`` takes the code: of two nodes redeeming it at once,
        the second waits for the first's transaction and finds it gone (or, if
        the first rolled back, takes it then).
        """
        now = _aware(now)
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "DELETE FROM link_codes WHERE code_hash = %s AND expires > %s RETURNING account_id",
                (code_hash, now),
            )
            taken = await cursor.fetchone()
            if taken is None:
                return None
            cursor = await connection.execute(f"{_ACCOUNT} WHERE id = %s", (taken[0],))
            row = await cursor.fetchone()
            if row is None:
                return None
            account = _ROWS.account(row)
            await self._claim(connection, account.id, identity, now)
        return account

    # -- confirmations (not cached: every node asks the database) -------------------------

    @_translated
    async def create_confirmation(
        self, confirmation: Confirmation, expires: dt.datetime, now: dt.datetime
    ) -> None:
        """Keep a nonce's hash; drop expired ones and the certificate's oldest beyond the cap."""
        async with self._connection() as connection, connection.transaction():
            await connection.execute(
                "DELETE FROM confirmations WHERE expires <= %s", (_aware(now),)
            )
            await connection.execute(
                "INSERT INTO confirmations (nonce_hash, fingerprint, action, target, expires) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (nonce_hash) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, action = excluded.action, "
                "target = excluded.target, expires = excluded.expires",
                (*confirmation_key(confirmation), _aware(expires)),
            )
            await connection.execute(
                "DELETE FROM confirmations WHERE nonce_hash IN (SELECT nonce_hash "
                "FROM confirmations WHERE fingerprint = %s ORDER BY expires DESC OFFSET %s)",
                (confirmation.fingerprint, MAX_CONFIRMATIONS),
            )

    @_translated
    async def confirmation_valid(self, confirmation: Confirmation, now: dt.datetime) -> bool:
        """Whether the nonce is live for exactly this certificate, action and target."""
        row = await self._one(
            "SELECT 1 FROM confirmations WHERE nonce_hash = %s AND fingerprint = %s "
            "AND action = %s AND target = %s AND expires > %s",
            (*confirmation_key(confirmation), _aware(now)),
        )
        return row is not None

    @_translated
    async def take_confirmation(
        self, confirmation: Confirmation, now: dt.datetime
    ) -> dt.datetime | None:
        """Consume a valid nonce, returning its expiry; one of two nodes taking it gets it."""
        row = await self._one(
            "DELETE FROM confirmations WHERE nonce_hash = %s AND fingerprint = %s "
            "AND action = %s AND target = %s AND expires > %s RETURNING expires",
            (*confirmation_key(confirmation), _aware(now)),
        )
        return None if row is None else _utc(row[0])

    # -- bans ---------------------------------------------------------------------------

    @_translated
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
            value = canonical_fingerprint(value)
        now = _aware(now)
        async with self._transaction() as connection:
            if kind is BanKind.ACCOUNT:
                cursor = await connection.execute(
                    "SELECT 1 FROM accounts WHERE id = %s FOR SHARE",
                    (int(value) if value.isdecimal() and len(value) < 19 else -1,),
                )
                if await cursor.fetchone() is None:
                    raise UnknownAccount(f"no account with id {value!r}")
            cursor = await connection.execute(
                "INSERT INTO bans (kind, value, reason, created, until) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id, kind, value, reason, created, until",
                (kind.value, value, reason, now, None if until is None else _aware(until)),
            )
            row = await cursor.fetchone()
        assert row is not None
        return _ROWS.ban(row)

    @_translated
    async def unban(self, kind: BanKind, value: str) -> int:
        """Lift the bans on one certificate, key or account; returns how many."""
        kind = BanKind(kind)
        if kind is not BanKind.ACCOUNT:
            value = canonical_fingerprint(value)
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "DELETE FROM bans WHERE kind = %s AND value = %s", (kind.value, value)
            )
            return cursor.rowcount

    @_translated
    async def bans(self) -> list[Ban]:
        """Every ban, newest first."""
        return [_ROWS.ban(row) for row in await self._all(f"{_BAN} ORDER BY created DESC, id DESC")]

    # -- allow-lists --------------------------------------------------------------------

    @_translated
    async def allow(self, list_name: str, fingerprint: str) -> bool:
        """Put a fingerprint on a list; False if it was already there."""
        if not list_name:
            raise StoreError("an allow-list needs a name")
        fingerprint = canonical_fingerprint(fingerprint)
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "INSERT INTO allow_entries (list, fingerprint, added) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (list_name, fingerprint, dt.datetime.now(dt.UTC)),
            )
            return cursor.rowcount == 1

    @_translated
    async def disallow(self, list_name: str, fingerprint: str) -> bool:
        """Take a fingerprint off a list; False if it was not there."""
        fingerprint = canonical_fingerprint(fingerprint)
        async with self._transaction() as connection:
            cursor = await connection.execute(
                "DELETE FROM allow_entries WHERE list = %s AND fingerprint = %s",
                (list_name, fingerprint),
            )
            return cursor.rowcount == 1

    @_translated
    async def allow_list(self, list_name: str) -> list[str]:
        """A list's fingerprints, sorted."""
        rows = await self._all(
            "SELECT fingerprint FROM allow_entries WHERE list = %s "
            'ORDER BY fingerprint COLLATE "C"',
            (list_name,),
        )
        return [row[0] for row in rows]

    @_translated
    async def allow_lists(self) -> dict[str, int]:
        """Each list's name and size."""
        rows = await self._all(
            'SELECT list, count(*) FROM allow_entries GROUP BY list ORDER BY list COLLATE "C"'
        )
        return {row[0]: row[1] for row in rows}

    # -- the admin capsule ----------------------------------------------------------------

    @_translated
    async def add_audit_entry(
        self, time: dt.datetime, admin: str, action: str, target: str, reason: str = ""
    ) -> AuditEntry:
        """Append an entry to the audit log."""
        check_audit(admin, action, target)
        row = await self._one(
            "INSERT INTO audit_log (time, admin, action, target, reason) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id, time, admin, action, target, reason",
            (_aware(time), admin, action, target, reason),
        )
        assert row is not None
        return _ROWS.audit_entry(row)

    @_translated
    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The last ``limit`` entries, newest first."""
        rows = await self._all(f"{_AUDIT} ORDER BY time DESC, id DESC LIMIT %s", (limit,))
        return [_ROWS.audit_entry(row) for row in rows]

    @_translated
    async def counts(self, now: dt.datetime) -> StoreCounts:
        """What the store holds, and the size of its tables (indexes included) in this schema."""
        row = await self._one(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM certificates), "
            "(SELECT count(*) FROM bans WHERE until IS NULL OR until > %s), "
            "(SELECT count(*) FROM allow_entries), (SELECT count(*) FROM audit_log), "
            "(SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r')",
            (_aware(now),),
        )
        assert row is not None
        accounts, certificates, bans, allowed, audited, size = row
        return StoreCounts(
            int(accounts),
            int(certificates),
            int(bans),
            int(allowed),
            int(audited),
            size=None if size is None else int(size),
        )

    # -- rate limits, shared by every node ------------------------------------------------

    @_translated
    async def take_token(
        self, bucket: str, key: str, rate: float, burst: float, now: dt.datetime
    ) -> float:
        """Spend a token of a bucket kept in the database: the limit holds across nodes."""
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        now = _aware(now)
        async with self._connection() as connection:
            cursor = await connection.execute(
                _TAKE,
                {
                    "name": bucket,
                    "key": key,
                    "rate": float(rate),
                    "burst": float(burst),
                    "now": now,
                },
            )
            row = await cursor.fetchone()
            self._takes += 1
            if self._takes % _SWEEP_EVERY == 0:
                # Full buckets are as good as none: forget them, so a flood of new
                # addresses does not grow the table for ever.
                await connection.execute("DELETE FROM rate_buckets WHERE full_at <= %s", (now,))
        assert row is not None
        tokens, granted = float(row[0]), bool(row[1])
        return 0.0 if granted else (1.0 - tokens) / rate

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop watching for changes and close the pool's connections; twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        if self._pool is not None:
            if self._ready is not None:
                with contextlib.suppress(Exception):
                    await self._ready
            await self._pool.close()


def _certificate_values(
    account_id: int, identity: ClientIdentity, now: dt.datetime
) -> tuple[Any, ...]:
    return (
        identity.fingerprint,
        identity.key_fingerprint,
        account_id,
        identity.common_name,
        identity.not_before,
        identity.not_after,
        now,
        now,
    )
