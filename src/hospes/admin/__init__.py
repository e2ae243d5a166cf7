"""The admin capsule: accounts, bans and allow-lists over Gemini, by the admin's certificate.

``capsule`` gates and routes it (:func:`admin_app`, :func:`with_admin`),
``pages`` holds the accounts, bans and allow-list pages, ``overview`` the
front page and the audit log, ``monitor`` what the overview reads of the
running server, ``render`` the gemtext helpers that keep untrusted text in
its place.  See docs/admin.md.
"""

from .capsule import AdminCapsule, admin_app, with_admin
from .monitor import Monitor, Snapshot
from .overview import Overview
from .pages import AdminPages

__all__ = [
    "AdminCapsule",
    "AdminPages",
    "Monitor",
    "Overview",
    "Snapshot",
    "admin_app",
    "with_admin",
]
