"""The embedded identity store: one SQLite file in the state directory, behind the async interface.

:class:`SQLiteStore` is a thin facade over two parts:

* :class:`~hospes.store.sqlite_db.SQLiteDatabase` (every SQL statement, the
  connection, migrations, transactions) runs on one dedicated thread, so the
  event loop never waits for the disk and this process's operations are
  serialised without locks of our own;
* a :class:`~hospes.store.cache.ReadCache` answers the request path's reads
  (``recognise``, ``active_ban``, ``is_allowed``) from memory on the event
  loop's thread, until ``PRAGMA data_version`` says the file changed (any
  commit by this store, the admin CLI or another worker process), so a change
  made by the CLI applies to the server's next request.  A hit costs a few
  microseconds instead of a round trip through the thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, TypeVarTuple

from ..gemini.identity import ClientIdentity
from .base import StoreError
from .cache import CachedStore, ReadCache
from .models import (
    Account,
    AuditEntry,
    Ban,
    BanKind,
    CertificateRecord,
    Confirmation,
    StoreCounts,
)
from .sqlite_db import ChangeCounter, SQLiteDatabase

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class SQLiteStore(CachedStore):
    """The :class:`~hospes.store.base.Store` in one SQLite file (created with mode 0600).

    Opening applies pending schema migrations; :class:`StoreError` says what is
    wrong with a file that cannot be used.  ``create=False`` refuses to create
    a missing database (the admin CLI's read-only commands: a mistyped state
    directory should be an error, not an empty list).
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hospes-store")
        self._closed = False
        self._lock = threading.Lock()
        try:
            # Opened on the thread that will use it: the connection is bound to it.
            self._db = self._executor.submit(SQLiteDatabase, path, create=create).result()
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        try:
            self._changes = ChangeCounter(path)
        except BaseException:
            self._executor.submit(self._db.close).result()
            self._executor.shutdown(wait=True)
            raise
        self._cache = ReadCache(self._changes.read)

    async def _run(self, function: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``function`` on the database's thread, after the work queued before it."""
        with self._lock:
            if self._closed:
                raise StoreError("the identity store is closed")
            future = self._executor.submit(function, *args)
        return await asyncio.wrap_future(future)

    # -- recognition: the database's answers (CachedStore asks its cache first) ----------

    async def _recognise(
        self, identity: ClientIdentity, now: dt.datetime
    ) -> tuple[Account | None, dt.datetime | None]:
        return await self._run(self._db.recognise, identity, now)

    async def _active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        return await self._run(self._db.active_ban, identity, account, now)

    async def _is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        return await self._run(self._db.is_allowed, lists, identity)

    # -- accounts -----------------------------------------------------------------------

    async def register(self, name: str, identity: ClientIdentity, now: dt.datetime) -> Account:
        """Create an account with its first certificate, in one transaction."""
        return await self._run(self._db.register, name, identity, now)

    async def create_account(self, name: str, fingerprint: str, now: dt.datetime) -> Account:
        """Create an account awaiting the first certificate with this (or its key's) fingerprint."""
        return await self._run(self._db.create_account, name, fingerprint, now)

    async def awaited_fingerprints(self, account_id: int) -> list[str]:
        """The fingerprints an account created by the admin still waits for."""
        return await self._run(self._db.awaited_fingerprints, account_id)

    async def fingerprints_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Every known fingerprint starting with ``prefix``, sorted, at most ``limit``."""
        return await self._run(self._db.fingerprints_with_prefix, prefix, limit)

    async def search_accounts(self, text: str, limit: int = 50) -> list[Account]:
        """Accounts whose name contains ``text``, or with a fingerprint starting with it."""
        return await self._run(self._db.search_accounts, text, limit)

    async def account(self, name: str) -> Account | None:
        """The account called ``name``, whatever its case."""
        return await self._run(self._db.account, name)

    async def account_by_id(self, account_id: int) -> Account | None:
        """The account with that id."""
        return await self._run(self._db.account_by_id, account_id)

    async def accounts(self) -> list[Account]:
        """Every account, by name."""
        return await self._run(self._db.accounts)

    async def rename(self, name: str, new_name: str) -> Account:
        """Give an account another name (a change of case only is allowed)."""
        return await self._run(self._db.rename, name, new_name)

    async def delete(self, name: str) -> None:
        """Delete an account; its keys, certificates and codes go with it."""
        await self._run(self._db.delete, name)

    async def certificates(self, account_id: int) -> list[CertificateRecord]:
        """An account's certificates, oldest first."""
        return await self._run(self._db.certificates, account_id)

    async def add_certificate(
        self, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> CertificateRecord:
        """Add a certificate (and its key) to an account."""
        return await self._run(self._db.add_certificate, account_id, identity, now)

    async def remove_certificate(self, account_id: int, fingerprint: str) -> None:
        """Remove a certificate; never the account's last one."""
        await self._run(self._db.remove_certificate, account_id, fingerprint)

    # -- linking a device ---------------------------------------------------------------

    async def create_link_code(
        self, account_id: int, code_hash: bytes, expires: dt.datetime
    ) -> None:
        """Store a code's hash, replacing the account's earlier codes."""
        await self._run(self._db.create_link_code, account_id, code_hash, expires)

    async def redeem_link_code(
        self, code_hash: bytes, identity: ClientIdentity, now: dt.datetime
    ) -> Account | None:
        """Spend a live code on adding ``identity`` to its account, all or nothing."""
        return await self._run(self._db.redeem_link_code, code_hash, identity, now)

    # -- confirmations ------------------------------------------------------------------

    async def create_confirmation(
        self, confirmation: Confirmation, expires: dt.datetime, now: dt.datetime
    ) -> None:
        """Keep a nonce's hash; drop expired ones and the certificate's oldest beyond the cap."""
        await self._run(self._db.create_confirmation, confirmation, expires, now)

    async def confirmation_valid(self, confirmation: Confirmation, now: dt.datetime) -> bool:
        """Whether the nonce is live for exactly this certificate, action and target."""
        return await self._run(self._db.confirmation_valid, confirmation, now)

    async def take_confirmation(
        self, confirmation: Confirmation, now: dt.datetime
    ) -> dt.datetime | None:
        """Consume a valid nonce, returning its expiry; None if it is not valid."""
        return await self._run(self._db.take_confirmation, confirmation, now)

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
        return await self._run(self._db.ban, kind, value, reason, now, until)

    async def unban(self, kind: BanKind, value: str) -> int:
        """Lift the bans on one certificate, key or account."""
        return await self._run(self._db.unban, kind, value)

    async def bans(self) -> list[Ban]:
        """Every ban, newest first."""
        return await self._run(self._db.bans)

    # -- allow-lists --------------------------------------------------------------------

    async def allow(self, list_name: str, fingerprint: str) -> bool:
        """Put a fingerprint on a list."""
        return await self._run(self._db.allow, list_name, fingerprint)

    async def disallow(self, list_name: str, fingerprint: str) -> bool:
        """Take a fingerprint off a list."""
        return await self._run(self._db.disallow, list_name, fingerprint)

    async def allow_list(self, list_name: str) -> list[str]:
        """A list's fingerprints, sorted."""
        return await self._run(self._db.allow_list, list_name)

    async def allow_lists(self) -> dict[str, int]:
        """Each list's name and size."""
        return await self._run(self._db.allow_lists)

    # -- the admin capsule ----------------------------------------------------------------

    async def add_audit_entry(
        self, time: dt.datetime, admin: str, action: str, target: str, reason: str = ""
    ) -> AuditEntry:
        """Append an entry to the audit log."""
        return await self._run(self._db.add_audit_entry, time, admin, action, target, reason)

    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The last ``limit`` entries of the audit log, newest first."""
        return await self._run(self._db.audit_log, limit)

    async def counts(self, now: dt.datetime) -> StoreCounts:
        """What the store holds, and the database file's size."""
        return await self._run(self._db.counts, now)

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        """Finish queued work, close the connections (checkpointing the WAL), stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            future = self._executor.submit(self._db.close)
        await asyncio.wrap_future(future)
        self._executor.shutdown(wait=True)
        self._changes.close()
