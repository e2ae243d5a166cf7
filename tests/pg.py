"""PostgreSQL for the tests: a schema of their own in the machine's database, dropped afterwards.

The database is ``$HOSPES_TEST_DATABASE`` (default: this machine kind's
``postgresql://postgres@127.0.0.1:5432/test``, trust authentication).  Each
:func:`schema` is a fresh schema with a random name, so concurrent test runs
on one database never see each other's data; the URL it yields selects it
with ``options=-csearch_path=…``.  Without a reachable database the tests that
need one are skipped with the reason, except under CI (``CI`` set), where
``.ci/run`` starts PostgreSQL and a missing one is a failure.

A test that takes the database away from a running server (an outage)
needs a :func:`database` of its own instead: other tests use ``test``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from functools import cache

import pytest

try:
    import psycopg
except ImportError:  # pragma: no cover - the postgres extra is part of the test install
    psycopg = None  # type: ignore[assignment]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def base_url() -> str:
    return os.environ.get("HOSPES_TEST_DATABASE", DEFAULT_URL)


@cache
def unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    if psycopg is None:
        return "psycopg is not installed (pip install 'hospes[postgres]')"
    try:
        with psycopg.connect(base_url(), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {base_url()}: {' '.join(str(exc).split())}"


def require() -> None:
    """Skip the test (fail it under CI) when PostgreSQL cannot be used."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run should have started it)")
    pytest.skip(reason)


def url_for(name: str) -> str:
    """The test database's URL with ``name`` first on the search path."""
    separator = "&" if "?" in base_url() else "?"
    return f"{base_url()}{separator}options=-csearch_path%3D{name}"


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(base_url(), autocommit=True)


@contextlib.contextmanager
def schema() -> Iterator[str]:
    """A fresh, empty schema; yields the URL that selects it, drops it (and its data) after."""
    require()
    name = f"hospes_test_{secrets.token_hex(6)}"
    with admin_connection() as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    try:
        yield url_for(name)
    finally:
        with admin_connection() as connection:
            connection.execute(f"DROP SCHEMA {name} CASCADE")


def database_url(name: str) -> str:
    """The test server's URL with another database, ``name``, in it."""
    parts = urllib.parse.urlsplit(base_url())
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def database(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh database (``PREFIX_<random>``); yields its name and URL.

    Afterwards nobody may connect to it any more, its sessions are
    terminated, and it is dropped.  Only this database is touched.
    """
    require()
    name = f"{prefix}_{secrets.token_hex(6)}"
    with admin_connection() as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield name, database_url(name)
    finally:
        with admin_connection() as connection:
            connection.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")
