"""The records of the identity store: accounts, their certificates, allow-lists and bans."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Account",
    "AuditEntry",
    "Ban",
    "BanKind",
    "CertificateRecord",
    "Confirmation",
    "StoreCounts",
]


@dataclass(frozen=True, slots=True)
class Account:
    """A person (or bot) known to the capsule, who may use several certificates."""

    id: int
    name: str
    created: dt.datetime
    status: str = "active"


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """A client certificate seen for an account.

    ``key_fingerprint`` is what recognises a renewal: a new certificate for the
    same key is recorded as another certificate of the same account.
    """

    fingerprint: str
    key_fingerprint: str
    account_id: int
    common_name: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    first_seen: dt.datetime
    last_seen: dt.datetime


class BanKind(StrEnum):
    """What a ban applies to."""

    CERTIFICATE = "certificate"
    KEY = "key"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Ban:
    """A ban of a certificate, a key or an account, with the reason shown to the client."""

    id: int
    kind: BanKind
    value: str
    """A canonical fingerprint for certificate and key bans, the account id (as text)."""
    reason: str
    created: dt.datetime
    until: dt.datetime | None = None

    def active(self, now: dt.datetime) -> bool:
        """Whether the ban is in force at ``now``."""
        return self.until is None or now < self.until


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A nonce the server issued to one certificate for one action on one target.

    The store keeps only the nonce's hash; an answer counts only when it
    comes back with the same certificate, for the same action and target.
    """

    nonce_hash: bytes
    fingerprint: str
    """The certificate the nonce was issued to (canonical fingerprint)."""
    action: str
    target: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change an admin made (admin capsule or admin command): who, when, what, to whom, why."""

    id: int
    time: dt.datetime
    admin: str
    """The fingerprint of the certificate the admin used, or ``cli:USER`` for an admin command."""
    action: str
    """What was done (``ban``, ``unban``, ``rename``, ``remove-certificate``, ``delete-account``,
    ``create-account``, ``allow``, ``disallow``)."""
    target: str
    """What it was done to, as people read it (``account alice (id 3)``, ``key SHA256:…``)."""
    reason: str = ""
    """The admin's reason, when the action asks for one (bans, allow-list additions)."""


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """How much the identity store holds (the admin capsule's overview)."""

    accounts: int
    certificates: int
    bans: int
    """Bans in force."""
    allow_entries: int
    audit_entries: int
    size: int | None = None
    """The database's size on disk in bytes, when the store can tell."""
