"""The interface of the identity store, and the rules every implementation enforces.

The server, the access rules, the account flows and the admin CLI use only
this interface; it has two implementations, the embedded SQLite store
(:class:`~hospes.store.sqlite.SQLiteStore`) and the one several nodes share
(:class:`~hospes.store.postgres.PostgresStore`).  The contract test-suite
(``tests/test_store.py``) is parametrised over both.
Methods are coroutines so that a store that waits for a disk or a network
never blocks the event loop; every write is one transaction.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from collections.abc import Sequence

from ..gemini.fingerprint import parse_fingerprint
from ..gemini.identity import ClientIdentity
from .buckets import LocalBuckets
from .models import Account, AuditEntry, Ban, BanKind, CertificateRecord, Confirmation, StoreCounts

__all__ = [
    "LAST_SEEN_INTERVAL",
    "MAX_CONFIRMATIONS",
    "NAME_RULE",
    "REFUSALS",
    "AlreadyRegistered",
    "InvalidName",
    "LastCertificate",
    "NameTaken",
    "Store",
    "StoreError",
    "UnknownAccount",
    "canonical_fingerprint",
    "check_audit",
    "check_name",
]

MAX_CONFIRMATIONS = 16
"""Live confirmation nonces kept per certificate (the oldest are dropped)."""

LAST_SEEN_INTERVAL = dt.timedelta(hours=1)
"""A certificate's ``last_seen`` is written at most this often: recognising stays a read."""

NAME_RULE = "1 to 32 letters, digits, '-', '_' or '.', starting with a letter or digit"
"""Account names, as said to people (prompts, errors, docs)."""
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")


class StoreError(Exception):
    """A store operation that cannot be done; the message is meant for a person."""


class NameTaken(StoreError):
    """The account name is already used by another account, or looks like its name.

    ``existing`` is that account's name when it differs from the one asked
    for other than by case (``alice`` for ``aIice``), else None.
    """

    def __init__(self, message: str, existing: str | None = None) -> None:
        super().__init__(message)
        self.existing = existing


class InvalidName(StoreError):
    """The account name breaks :data:`NAME_RULE`."""


class UnknownAccount(StoreError):
    """No account has that name or id."""


class AlreadyRegistered(StoreError):
    """The certificate (or its key) already belongs to an account."""


class LastCertificate(StoreError):
    """Removing that certificate would leave the account without any way to sign in."""


REFUSALS: tuple[type[StoreError], ...] = (
    NameTaken,
    InvalidName,
    UnknownAccount,
    AlreadyRegistered,
    LastCertificate,
)
"""Errors that refuse one operation (a page answers them); any other :class:`StoreError`
says the store itself cannot be used now (down, full, closed)."""


def check_name(name: str) -> str:
    """Return ``name`` if it follows :data:`NAME_RULE`, else raise :class:`InvalidName`.

    Every store enforces this, so names are safe in gemtext, terminals and
    command lines (no spaces, no leading ``-``) whoever created them.  Names
    are unique regardless of case: ``Alice`` and ``alice`` are one name.
    """
    if not _NAME.match(name):
        raise InvalidName(f"not a valid account name ({NAME_RULE})")
    return name


def canonical_fingerprint(text: str) -> str:
    """The canonical form of a typed fingerprint (any notation); :class:`StoreError` if it is none.

    Stores keep fingerprints canonical, so a ban or an allow-list entry typed
    in any notation matches the fingerprint of a presented certificate.
    """
    try:
        return parse_fingerprint(text)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def check_audit(admin: str, action: str, target: str) -> None:
    """Raise :class:`StoreError` unless an audit entry says who did what to what."""
    for name, value in (("admin", admin), ("action", action), ("target", target)):
        if not value:
            raise StoreError(f"an audit entry needs its {name}")


class Store(abc.ABC):
    """Accounts, their certificates, allow-lists and bans."""

    propagation: dt.timedelta = dt.timedelta(0)
    """The longest a change made through another store on the same data (the admin CLI,
    another worker or node) takes to reach this store's answers; 0: its next call sees it."""

    _buckets: LocalBuckets | None = None

    # -- recognition: on the request path, must be fast -------------------------------

    @abc.abstractmethod
    async def recognise(self, identity: ClientIdentity, now: dt.datetime) -> Account | None:
        """The account ``identity`` belongs to, or None.

        A certificate whose fingerprint is unknown but whose public key belongs
        to an account (a renewal) is recorded as a new certificate of that
        account and recognised, as is one awaited by :meth:`create_account`.
        Updates the certificate's ``last_seen``, at most once every
        :data:`LAST_SEEN_INTERVAL`.
        """

    @abc.abstractmethod
    async def active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        """A ban in force at ``now`` on the certificate, its key, or the account."""

    @abc.abstractmethod
    async def is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        """Whether the certificate or key fingerprint is on any of the named allow-lists."""

    # -- accounts ---------------------------------------------------------------------

    @abc.abstractmethod
    async def register(self, name: str, identity: ClientIdentity, now: dt.datetime) -> Account:
        """Create account ``name`` with ``identity`` as its first certificate.

        Raises :class:`InvalidName`, :class:`NameTaken` or
        :class:`AlreadyRegistered`.  A name is taken when an account has it
        regardless of case, or has a name that looks alike (the same
        :func:`~hospes.store.names.name_key`: ``aIice`` beside ``alice``); the
        :class:`NameTaken` message names that account.  Exactly one of two
        concurrent registrations of a name, or of two names that look alike,
        succeeds.
        """

    @abc.abstractmethod
    async def create_account(self, name: str, fingerprint: str, now: dt.datetime) -> Account:
        """Create account ``name`` for a certificate or key fingerprint not seen yet (the admin's).

        The first certificate presented whose fingerprint, or whose key's
        fingerprint, is ``fingerprint`` becomes the account's (in
        :meth:`recognise`); until then :meth:`awaited_fingerprints` lists it.
        Raises :class:`InvalidName`, :class:`NameTaken`, :class:`StoreError`
        for a malformed fingerprint, or :class:`AlreadyRegistered` when the
        fingerprint is an account's certificate or key, or awaited by one.
        """

    @abc.abstractmethod
    async def awaited_fingerprints(self, account_id: int) -> list[str]:
        """The fingerprints :meth:`create_account` gave an account that no visit has claimed yet."""

    @abc.abstractmethod
    async def fingerprints_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Known fingerprints starting with ``prefix`` (``SHA256:`` and hex digits), sorted.

        Known: an account's certificates and keys, awaited fingerprints,
        allow-list entries and certificate or key bans.  At most ``limit``.
        """

    @abc.abstractmethod
    async def search_accounts(self, text: str, limit: int = 50) -> list[Account]:
        """Accounts by name whose name contains ``text`` (ignoring case), at most ``limit``.

        A ``text`` that is a fingerprint prefix (``SHA256:`` and lowercase hex
        digits, as :meth:`fingerprints_with_prefix` takes) finds instead the
        accounts with a certificate, key or awaited fingerprint starting with
        it.  An empty ``text`` finds every account.
        """

    @abc.abstractmethod
    async def account(self, name: str) -> Account | None:
        """The account called ``name`` (case-insensitive), or None."""

    @abc.abstractmethod
    async def account_by_id(self, account_id: int) -> Account | None:
        """The account with ``account_id``, or None."""

    @abc.abstractmethod
    async def accounts(self) -> list[Account]:
        """Every account, by name."""

    @abc.abstractmethod
    async def rename(self, name: str, new_name: str) -> Account:
        """Rename an account.

        Raises :class:`UnknownAccount`, :class:`InvalidName` or :class:`NameTaken`
        (as :meth:`register`: another account's name, ignoring case, or one that looks alike).
        """

    @abc.abstractmethod
    async def delete(self, name: str) -> None:
        """Delete an account with its certificates, link codes and account bans.

        Raises :class:`UnknownAccount`.
        """

    @abc.abstractmethod
    async def certificates(self, account_id: int) -> list[CertificateRecord]:
        """The certificates of an account, oldest first."""

    @abc.abstractmethod
    async def add_certificate(
        self, account_id: int, identity: ClientIdentity, now: dt.datetime
    ) -> CertificateRecord:
        """Add a certificate to an account; raises :class:`AlreadyRegistered`."""

    @abc.abstractmethod
    async def remove_certificate(self, account_id: int, fingerprint: str) -> None:
        """Remove one of an account's certificates.

        Raises :class:`LastCertificate` rather than leave the account without
        certificates, and :class:`StoreError` if it is not the account's.  The
        certificate's key stops being recognised (as a renewal) unless another
        certificate of the account has the same key.
        """

    # -- linking a device ---------------------------------------------------------------

    @abc.abstractmethod
    async def create_link_code(
        self, account_id: int, code_hash: bytes, expires: dt.datetime
    ) -> None:
        """Store the hash of a one-time link code for an account.

        Replaces the account's earlier codes, so at most one is live per account.
        Raises :class:`UnknownAccount`.
        """

    @abc.abstractmethod
    async def redeem_link_code(
        self, code_hash: bytes, identity: ClientIdentity, now: dt.datetime
    ) -> Account | None:
        """Consume an unexpired code and add ``identity`` to its account, atomically.

        Returns None (and consumes nothing) when the code is unknown, used or
        expired; raises :class:`AlreadyRegistered` if the certificate already
        belongs to an account.
        """

    # -- confirmations (hospes.app.confirm) ---------------------------------------------

    @abc.abstractmethod
    async def create_confirmation(
        self, confirmation: Confirmation, expires: dt.datetime, now: dt.datetime
    ) -> None:
        """Keep a confirmation nonce (its hash) until ``expires``.

        Expired nonces go at the same time, and a certificate keeps at most
        :data:`MAX_CONFIRMATIONS` live ones (the oldest go first), so a client
        asking for nonces in a loop cannot fill the store.
        """

    @abc.abstractmethod
    async def confirmation_valid(self, confirmation: Confirmation, now: dt.datetime) -> bool:
        """Whether that nonce is live, issued for exactly this certificate, action and target."""

    @abc.abstractmethod
    async def take_confirmation(
        self, confirmation: Confirmation, now: dt.datetime
    ) -> dt.datetime | None:
        """Consume the nonce if it is valid (see :meth:`confirmation_valid`); its expiry, else None.

        Atomic: of two requests taking the same nonce, one gets it.  The
        expiry lets a caller whose action then fails without changing anything
        give the nonce back (:meth:`create_confirmation` again).
        """

    # -- bans ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def ban(
        self,
        kind: BanKind,
        value: str,
        reason: str,
        now: dt.datetime,
        until: dt.datetime | None = None,
    ) -> Ban:
        """Ban a certificate fingerprint, a key fingerprint or an account (id as text)."""

    @abc.abstractmethod
    async def unban(self, kind: BanKind, value: str) -> int:
        """Lift every ban on that certificate, key or account; returns how many."""

    @abc.abstractmethod
    async def bans(self) -> list[Ban]:
        """Every ban, newest first, expired ones included."""

    # -- allow-lists --------------------------------------------------------------------

    @abc.abstractmethod
    async def allow(self, list_name: str, fingerprint: str) -> bool:
        """Add a fingerprint to a named list; False if it was already there."""

    @abc.abstractmethod
    async def disallow(self, list_name: str, fingerprint: str) -> bool:
        """Remove a fingerprint from a named list; False if it was not there."""

    @abc.abstractmethod
    async def allow_list(self, list_name: str) -> list[str]:
        """The fingerprints on a named list, sorted."""

    @abc.abstractmethod
    async def allow_lists(self) -> dict[str, int]:
        """The names of all lists with their sizes."""

    # -- the admin capsule: its audit log, and what the store holds ----------------------

    @abc.abstractmethod
    async def add_audit_entry(
        self, time: dt.datetime, admin: str, action: str, target: str, reason: str = ""
    ) -> AuditEntry:
        """Append to the audit log: ``admin`` (a fingerprint, or ``cli:USER``) did ``action``.

        ``target`` is what it was done to, ``reason`` the admin's reason.

        Raises :class:`StoreError` for an empty ``admin``, ``action`` or ``target``.
        """

    @abc.abstractmethod
    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The last ``limit`` entries of the audit log, newest first."""

    @abc.abstractmethod
    async def counts(self, now: dt.datetime) -> StoreCounts:
        """What the store holds: accounts, certificates, bans in force at ``now``, and more.

        Allow-list and audit entries too, and its size on disk when it can tell.
        """

    # -- rate limits of the account pages ----------------------------------------------

    async def take_token(
        self, bucket: str, key: str, rate: float, burst: float, now: dt.datetime
    ) -> float:
        """Spend a token of ``key``'s bucket ``bucket``: 0.0 if granted, else the seconds to wait.

        A bucket holds ``burst`` tokens and refills at ``rate`` per second; a
        refusal spends nothing.  This default keeps the buckets in this
        process; a store shared by several nodes keeps them in its database,
        so the limit holds whichever node a client reaches.
        """
        if self._buckets is None:
            self._buckets = LocalBuckets()
        return self._buckets.take(bucket, key, rate, burst, now)

    # -- lifecycle ----------------------------------------------------------------------

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""
