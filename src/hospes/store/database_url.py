"""Database URLs: which strings name a PostgreSQL store, and how to show one without its password.

Kept apart from :mod:`hospes.store.postgres` so that the configuration and the
logs can use them without psycopg installed.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["SCHEMES", "is_database_url", "redact"]

SCHEMES = ("postgresql://", "postgres://")
"""The URL schemes of a PostgreSQL store (libpq's)."""
_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^@/]*@")


def is_database_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return text.startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` with its password (in the authority or the query) shown as ``***``."""
    shown = _PASSWORD.sub(r"\1:***@", url)
    try:
        parsed = urllib.parse.urlsplit(shown)
    except ValueError:  # not a URL at all: hide everything after the host
        return shown.partition("?")[0]
    query = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    if not any(name == "password" for name, _ in query):
        return shown
    hidden = [(name, "***" if name == "password" else value) for name, value in query]
    return parsed._replace(query=urllib.parse.urlencode(hidden, safe="*")).geturl()
