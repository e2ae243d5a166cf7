"""The SQLite store's schema, as numbered migrations applied in one transaction at open.

``PRAGMA user_version`` holds the number of migrations applied.  A migration
is only ever appended, never edited once released: a database created by any
earlier hospes is brought up to date by running the ones it lacks.

Invariants the schema itself enforces:

* names are unique regardless of case (``COLLATE NOCASE``; names are ASCII),
  and no two names look alike (``name_key``, see :mod:`hospes.store.names`;
  migrations call it as the SQL function ``hospes_name_key``);
* a public key belongs to at most one account (``account_keys`` primary key),
  which is what lets a renewed certificate be recognised without ambiguity;
* a certificate's account is its key's account (composite foreign key);
* deleting an account deletes its keys, certificates and link codes.

Times are stored as fixed-width ISO 8601 UTC text
(``2025-01-31T12:00:00.000000+00:00``) so that they compare as strings and
stay readable in the ``sqlite3`` shell.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from .names import name_key

__all__ = ["MIGRATIONS", "SchemaError", "migrate", "statements"]

MIGRATIONS: tuple[str, ...] = (
    # 1: accounts, keys, certificates, link codes, allow-lists, bans.
    """
    CREATE TABLE accounts (
        id       INTEGER PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created  TEXT NOT NULL,
        status   TEXT NOT NULL DEFAULT 'active'
    );
    CREATE TABLE account_keys (
        key_fingerprint  TEXT PRIMARY KEY,
        account_id       INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        UNIQUE (key_fingerprint, account_id)
    );
    CREATE INDEX account_keys_account ON account_keys (account_id);
    CREATE TABLE certificates (
        fingerprint      TEXT PRIMARY KEY,
        key_fingerprint  TEXT NOT NULL,
        account_id       INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        common_name      TEXT,
        not_before       TEXT NOT NULL,
        not_after        TEXT NOT NULL,
        first_seen       TEXT NOT NULL,
        last_seen        TEXT NOT NULL,
        FOREIGN KEY (key_fingerprint, account_id)
            REFERENCES account_keys (key_fingerprint, account_id) ON DELETE CASCADE
    );
    CREATE INDEX certificates_key ON certificates (key_fingerprint, account_id);
    CREATE INDEX certificates_account ON certificates (account_id);
    CREATE TABLE link_codes (
        code_hash   BLOB PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        expires     TEXT NOT NULL
    );
    CREATE INDEX link_codes_account ON link_codes (account_id);
    CREATE TABLE allow_entries (
        list         TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        added        TEXT NOT NULL,
        PRIMARY KEY (list, fingerprint)
    ) WITHOUT ROWID;
    CREATE TABLE bans (
        id       INTEGER PRIMARY KEY,
        kind     TEXT NOT NULL CHECK (kind IN ('certificate', 'key', 'account')),
        value    TEXT NOT NULL,
        reason   TEXT NOT NULL,
        created  TEXT NOT NULL,
        until    TEXT
    );
    CREATE INDEX bans_value ON bans (value, kind);
    """,
    # 2: confusable names refused by a unique key (names.name_key); confirmation nonces.
    # Accounts whose names already collided keep them, with a NULL key (the unique
    # index allows several NULLs): the oldest holds the key, so new names are still
    # refused against it.
    """
    ALTER TABLE accounts ADD COLUMN name_key TEXT;
    UPDATE accounts SET name_key = hospes_name_key(name) WHERE NOT EXISTS (
        SELECT 1 FROM accounts AS older WHERE older.id < accounts.id
        AND hospes_name_key(older.name) = hospes_name_key(accounts.name)
    );
    CREATE UNIQUE INDEX accounts_name_key ON accounts (name_key);
    CREATE TABLE confirmations (
        nonce_hash   BLOB PRIMARY KEY,
        fingerprint  TEXT NOT NULL,
        action       TEXT NOT NULL,
        target       TEXT NOT NULL,
        expires      TEXT NOT NULL
    );
    CREATE INDEX confirmations_fingerprint ON confirmations (fingerprint, expires);
    CREATE INDEX confirmations_expires ON confirmations (expires);
    """,
    # 3: accounts created by the admin for a fingerprint not seen yet (hospes accounts create).
    """
    CREATE TABLE awaited_fingerprints (
        fingerprint  TEXT PRIMARY KEY,
        account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created      TEXT NOT NULL
    );
    CREATE INDEX awaited_fingerprints_account ON awaited_fingerprints (account_id);
    """,
    # 4: the admin capsule's audit log (who changed what, when and why).
    """
    CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY,
        time    TEXT NOT NULL,
        admin   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        reason  TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_log_time ON audit_log (time);
    """,
)


class SchemaError(Exception):
    """The database's schema cannot be used by this version of hospes."""


def statements(script: str) -> Iterator[str]:
    """Split a migration into single statements (``executescript`` would commit mid-way)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise SchemaError(f"incomplete SQL statement in a migration: {pending.strip()[:60]!r}")


def migrate(connection: sqlite3.Connection) -> tuple[int, int]:
    """Apply the missing migrations in one write transaction; returns (old, new) versions.

    ``connection`` must be in autocommit mode (``isolation_level=None``).  The
    version is read again under the write lock, so processes opening the same
    database at once (the server and the CLI) apply each migration once.
    """
    connection.create_function("hospes_name_key", 1, name_key, deterministic=True)
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise SchemaError(
                f"the database has schema version {version}, newer than this hospes knows "
                f"({len(MIGRATIONS)}); upgrade hospes"
            )
        for script in MIGRATIONS[version:]:
            for statement in statements(script):
                connection.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        connection.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return version, len(MIGRATIONS)
