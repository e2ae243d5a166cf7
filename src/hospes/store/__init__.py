"""The identity store: one interface (:class:`Store`); its implementation today is SQLite.

``base`` is the interface (the one a shared, networked store will implement
too), ``models`` its records, ``sqlite`` the embedded store (an async facade
over the synchronous ``sqlite_db`` and the read ``cache``), ``migrations`` the
SQLite schema.
"""

from .base import (
    LAST_SEEN_INTERVAL,
    MAX_CONFIRMATIONS,
    NAME_RULE,
    AlreadyRegistered,
    InvalidName,
    LastCertificate,
    NameTaken,
    Store,
    StoreError,
    UnknownAccount,
    canonical_fingerprint,
    check_name,
)
from .models import (
    Account,
    AuditEntry,
    Ban,
    BanKind,
    CertificateRecord,
    Confirmation,
    StoreCounts,
)

__all__ = [
    "LAST_SEEN_INTERVAL",
    "MAX_CONFIRMATIONS",
    "NAME_RULE",
    "Account",
    "AlreadyRegistered",
    "AuditEntry",
    "Ban",
    "BanKind",
    "CertificateRecord",
    "Confirmation",
    "InvalidName",
    "LastCertificate",
    "NameTaken",
    "Store",
    "StoreCounts",
    "StoreError",
    "UnknownAccount",
    "canonical_fingerprint",
    "check_name",
]
