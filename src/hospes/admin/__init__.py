"""The admin capsule: accounts, bans and allow-lists over Gemini, by the admin's certificate.

``capsule`` gates and routes it (:func:`admin_app`, :func:`with_admin`);
``overview`` is the front page and the audit log; ``accounts``, ``bans``,
``allowlists`` and ``fingerprints`` hold the pages of each, on what
``shared`` gives them all (:class:`AdminPages`); ``monitor`` is what the
overview reads of the running server, ``render`` the gemtext helpers that
keep untrusted text in its place.  See docs/admin.md.
"""

from .accounts import AdminAccounts
from .allowlists import AdminAllowLists
from .bans import AdminBans
from .capsule import AdminCapsule, admin_app, with_admin
from .fingerprints import AdminFingerprints
from .monitor import Monitor, Snapshot
from .overview import Overview
from .shared import AdminPages

__all__ = [
    "AdminAccounts",
    "AdminAllowLists",
    "AdminBans",
    "AdminCapsule",
    "AdminFingerprints",
    "AdminPages",
    "Monitor",
    "Overview",
    "Snapshot",
    "admin_app",
    "with_admin",
]
