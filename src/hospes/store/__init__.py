"""The identity store: one interface (:class:`Store`), two implementations.

``base`` is the interface and ``models`` its records.  ``sqlite`` is the
embedded store of one machine, the default (an async facade over the
synchronous ``sqlite_db`` and the read ``cache``; ``migrations`` is its
schema).  ``postgres`` is the store several nodes share (``--database
postgresql://…``, the ``postgres`` extra; ``postgres_migrations`` is its
schema), with the same read ``cache``.  Both pass the contract suite,
``tests/test_store.py``.  Neither is imported here, so that importing the
interface does not need psycopg: the runner opens the one the configuration
names.  Shared by both: ``names`` and ``confusables`` (look-alike account
names), ``buckets`` (rate-limit tokens kept in memory), ``bans`` (what an
admin types for a ban) and ``database_url``.
"""

from .base import (
    LAST_SEEN_INTERVAL,
    MAX_CONFIRMATIONS,
    NAME_RULE,
    REFUSALS,
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
    "REFUSALS",
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
