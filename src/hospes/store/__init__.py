"""Identity stores: one interface (:class:`Store`), SQLite embedded, PostgreSQL shared."""

from .base import (
    NAME_RULE,
    AlreadyRegistered,
    InvalidName,
    LastCertificate,
    NameTaken,
    Store,
    StoreError,
    UnknownAccount,
    check_name,
)
from .models import Account, Ban, BanKind, CertificateRecord

__all__ = [
    "NAME_RULE",
    "Account",
    "AlreadyRegistered",
    "Ban",
    "BanKind",
    "CertificateRecord",
    "InvalidName",
    "LastCertificate",
    "NameTaken",
    "Store",
    "StoreError",
    "UnknownAccount",
    "check_name",
]
