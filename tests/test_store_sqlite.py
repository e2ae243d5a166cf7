"""What only the SQLite store has: its file, pragmas, migrations, query plans, and sharing."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import stat

import pytest

from hospes.store import LAST_SEEN_INTERVAL, BanKind, NameTaken, StoreError
from hospes.store.cache import MISS
from hospes.store.migrations import MIGRATIONS, SchemaError, statements
from hospes.store.sqlite import SQLiteStore
from hospes.store.sqlite_db import _ACTIVE_BAN, _RECOGNISE, SQLiteDatabase
from test_store import NOW, identity, run


def test_new_database_file_and_pragmas(tmp_path):
    path = tmp_path / "state" / "hospes.sqlite3"
    store = SQLiteStore(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        assert {"accounts", "account_keys", "certificates", "link_codes", "bans"} <= tables
    finally:
        run(store.close())


def test_data_survives_reopening(tmp_path):
    path = tmp_path / "hospes.sqlite3"
    alice = identity()
    store = SQLiteStore(path)
    account = run(store.register("alice", alice, NOW))
    run(store.close())
    store = SQLiteStore(path)
    try:
        assert run(store.recognise(alice, NOW)) == account
    finally:
        run(store.close())


def test_schema_enforces_key_ownership(tmp_path):
    """The invariants hold even against SQL written by hand (foreign keys are on)."""
    path = tmp_path / "hospes.sqlite3"
    store = SQLiteStore(path)
    alice = identity()
    run(store.register("alice", alice, NOW))
    bob = run(store.register("bob", identity(), NOW))
    run(store.close())
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO certificates VALUES (?, ?, ?, 'x', '', '', '', '')",
                ("SHA256:" + "0" * 64, alice.key_fingerprint, bob.id),
            )
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO account_keys VALUES (?, ?)", (alice.key_fingerprint, bob.id)
            )


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "hospes.sqlite3"
    run(SQLiteStore(path).close())
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="upgrade hospes"):
        SQLiteStore(path)


def test_refuses_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "hospes.sqlite3"
    path.write_bytes(b"this is not sqlite\n" * 100)
    with pytest.raises(StoreError, match="not a usable hospes database"):
        SQLiteStore(path)
    assert path.read_bytes() == b"this is not sqlite\n" * 100


def test_create_false_refuses_a_missing_database(tmp_path):
    path = tmp_path / "nowhere" / "hospes.sqlite3"
    with pytest.raises(StoreError, match="no identity store"):
        SQLiteStore(path, create=False)
    assert not path.parent.exists()


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create"):
        SQLiteStore(blocker / "hospes.sqlite3")


@pytest.mark.parametrize(("query", "parameters"), [(_RECOGNISE, 2), (_ACTIVE_BAN, 4)])
def test_hot_path_queries_use_indexes(tmp_path, query, parameters):
    path = tmp_path / "hospes.sqlite3"
    run(SQLiteStore(path).close())
    with sqlite3.connect(path) as connection:
        plan = connection.execute("EXPLAIN QUERY PLAN " + query, ("x",) * parameters).fetchall()
    details = " | ".join(row[-1] for row in plan)
    assert "SCAN" not in details.replace("SCAN CONSTANT ROW", ""), details


def test_upgrading_a_database_with_look_alike_names_keeps_them_and_refuses_new_ones(tmp_path):
    """Names that collided before the upgrade stay; the oldest holds the key."""
    path = tmp_path / "hospes.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as connection:
        for statement in statements(MIGRATIONS[0]):
            connection.execute(statement)
        for name in ("alice", "aIice", "bob"):
            connection.execute(
                "INSERT INTO accounts (name, created) VALUES (?, ?)", (name, NOW.isoformat())
            )
        connection.execute("PRAGMA user_version = 1")
    connection.close()
    store = SQLiteStore(path)
    try:
        assert [account.name for account in run(store.accounts())] == ["aIice", "alice", "bob"]
        with pytest.raises(NameTaken) as taken:
            run(store.register("a1ice", identity(), NOW))
        assert taken.value.existing == "alice"
        with pytest.raises(NameTaken):
            run(store.register("b0b", identity(), NOW))
        assert run(store.register("carol", identity(), NOW)).name == "carol"
    finally:
        run(store.close())
    with sqlite3.connect(path) as connection:
        keys = dict(connection.execute("SELECT name, name_key FROM accounts").fetchall())
    connection.close()
    assert keys == {"alice": "alice", "aIice": None, "bob": "bob", "carol": "carol"}


def test_migration_statements_split():
    parts = list(statements(MIGRATIONS[0]))
    assert len(parts) == 11
    assert all(sqlite3.complete_statement(part) and part.count(";") == 1 for part in parts)
    assert list(statements("SELECT ';\n';\nSELECT 2;")) == ["SELECT ';\n';", "SELECT 2;"]
    with pytest.raises(SchemaError):
        list(statements("SELECT 1;\nCREATE TABLE x (a"))


def test_hot_path_answers_are_cached_until_the_database_changes(tmp_path):
    """A second store (the admin CLI, another worker) writes; the first sees it at once."""
    path = tmp_path / "hospes.sqlite3"
    server, admin = SQLiteStore(path), SQLiteStore(path)
    alice = identity()
    try:
        assert server._cache.recognised(alice, NOW) is MISS
        assert run(server.recognise(alice, NOW)) is None
        assert server._cache.recognised(alice, NOW) is None  # answered from memory next time
        account = run(admin.register("alice", alice, NOW))
        assert run(server.recognise(alice, NOW)) == account
        assert run(server.active_ban(alice, account, NOW)) is None
        run(admin.ban(BanKind.ACCOUNT, str(account.id), "spam", NOW))
        ban = run(server.active_ban(alice, account, NOW))
        assert ban is not None and ban.reason == "spam"
        assert not run(server.is_allowed(["friends"], alice))
        run(admin.allow("friends", alice.key_fingerprint))
        assert run(server.is_allowed(["friends"], alice))
        run(admin.unban(BanKind.ACCOUNT, str(account.id)))
        assert run(server.active_ban(alice, account, NOW)) is None
    finally:
        run(server.close())
        run(admin.close())


def test_cached_answers_expire_with_time(tmp_path):
    store = SQLiteStore(tmp_path / "hospes.sqlite3")
    alice = identity()
    try:
        account = run(store.register("alice", alice, NOW))
        until = NOW + dt.timedelta(hours=1)
        run(store.ban(BanKind.CERTIFICATE, alice.fingerprint, "cool off", NOW, until))
        assert run(store.active_ban(alice, account, NOW)) is not None
        assert run(store.active_ban(alice, account, until)) is None
        # last_seen is written again once it is an interval old, cache or not.
        later = NOW + LAST_SEEN_INTERVAL + dt.timedelta(minutes=1)
        assert run(store.recognise(alice, NOW)) == account
        assert run(store.recognise(alice, later)) == account
        (record,) = run(store.certificates(account.id))
        assert record.last_seen == later
    finally:
        run(store.close())


def test_an_answer_read_before_a_change_is_not_kept(tmp_path):
    """recognise reads, the CLI commits, another request notices, then the first answer arrives.

    Keeping that answer would hide the change until the next one: a ban, or
    here a registration, would go unseen for as long as nothing else changes.
    """
    path = tmp_path / "hospes.sqlite3"
    server, cli = SQLiteStore(path), SQLiteDatabase(path)
    alice = identity()

    async def interleaved() -> None:
        pending = asyncio.create_task(server.recognise(alice, NOW))
        await asyncio.sleep(0)  # its query is queued on the store's thread
        server._executor.submit(lambda: None).result()  # and has run: "no such certificate"
        # No await from here on: the pending recognise cannot resume before the end.
        cli.register("alice", alice, NOW)
        assert server._cache.recognised(alice, NOW) is MISS  # another request: change seen
        assert not pending.done()
        assert await pending is None
        assert server._cache.recognised(alice, NOW) is MISS  # the stale answer was dropped
        assert (await server.recognise(alice, NOW)).name == "alice"

    try:
        run(interleaved())
    finally:
        run(server.close())
        cli.close()
