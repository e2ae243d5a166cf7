"""Identity stores: one interface (:class:`Store`), SQLite embedded, PostgreSQL shared."""

from .base import AlreadyRegistered, LastCertificate, NameTaken, Store, StoreError, UnknownAccount
from .models import Account, Ban, BanKind, CertificateRecord

__all__ = [
    "Account",
    "AlreadyRegistered",
    "Ban",
    "BanKind",
    "CertificateRecord",
    "LastCertificate",
    "NameTaken",
    "Store",
    "StoreError",
    "UnknownAccount",
]
