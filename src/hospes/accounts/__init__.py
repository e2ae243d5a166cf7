"""Accounts on first use: the pages any capsule can mount, and the link codes they hand out."""

from .codes import CODE_ALPHABET, code_hash, new_link_code, normalize_code
from .pages import AccountLimits, AccountPages, account_app

__all__ = [
    "CODE_ALPHABET",
    "AccountLimits",
    "AccountPages",
    "account_app",
    "code_hash",
    "new_link_code",
    "normalize_code",
]
