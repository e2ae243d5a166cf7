"""The rows of the stores' queries as models, for SQLite and PostgreSQL alike.

Both backends select the columns in the order these readers take them; only
how a time comes back differs (ISO 8601 text from SQLite, ``timestamptz``
from PostgreSQL), so a :class:`RowReader` is made with its backend's way of
reading one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from .models import Account, AuditEntry, Ban, BanKind, CertificateRecord, Confirmation

__all__ = ["RowReader", "confirmation_key"]


class RowReader:
    """Accounts, certificates, bans and audit entries from rows, times read by ``time``."""

    __slots__ = ("time",)

    def __init__(self, time: Callable[[Any], dt.datetime]) -> None:
        self.time = time

    def account(self, row: Sequence[Any]) -> Account:
        """``id, name, created, status``."""
        return Account(id=row[0], name=row[1], created=self.time(row[2]), status=row[3])

    def certificate(self, row: Sequence[Any]) -> CertificateRecord:
        """The columns of ``certificates`` in table order, ``fingerprint`` to ``last_seen``."""
        time = self.time
        return CertificateRecord(
            fingerprint=row[0],
            key_fingerprint=row[1],
            account_id=row[2],
            common_name=row[3],
            not_before=time(row[4]),
            not_after=time(row[5]),
            first_seen=time(row[6]),
            last_seen=time(row[7]),
        )

    def ban(self, row: Sequence[Any]) -> Ban:
        """``id, kind, value, reason, created, until`` (``until`` may be NULL: for ever)."""
        return Ban(
            id=row[0],
            kind=BanKind(row[1]),
            value=row[2],
            reason=row[3],
            created=self.time(row[4]),
            until=None if row[5] is None else self.time(row[5]),
        )

    def audit_entry(self, row: Sequence[Any]) -> AuditEntry:
        """``id, time, admin, action, target, reason``."""
        return AuditEntry(
            id=row[0],
            time=self.time(row[1]),
            admin=row[2],
            action=row[3],
            target=row[4],
            reason=row[5],
        )


def confirmation_key(confirmation: Confirmation) -> tuple[bytes, str, str, str]:
    """``nonce_hash, fingerprint, action, target``: what finds a confirmation in both stores."""
    return (
        confirmation.nonce_hash,
        confirmation.fingerprint,
        confirmation.action,
        confirmation.target,
    )
