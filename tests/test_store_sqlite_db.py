"""The SQLite store's synchronous core, used as it is: no event loop, plain calls and threads."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from hospes.store import (
    LAST_SEEN_INTERVAL,
    AlreadyRegistered,
    BanKind,
    InvalidName,
    NameTaken,
    StoreError,
)
from hospes.store.sqlite_db import ChangeCounter, SQLiteDatabase
from test_store import NOW, identity


@pytest.fixture
def path(tmp_path):
    return tmp_path / "hospes.sqlite3"


@pytest.fixture
def db(path):
    database = SQLiteDatabase(path)
    yield database
    database.close()


def test_works_without_an_event_loop(db):
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    alice = identity()
    account = db.register("alice", alice, NOW)
    assert db.recognise(alice, NOW) == (account, NOW + LAST_SEEN_INTERVAL)
    assert db.account("ALICE") == account
    assert [record.fingerprint for record in db.certificates(account.id)] == [alice.fingerprint]
    ban = db.ban(BanKind.ACCOUNT, str(account.id), "spam", NOW)
    assert db.active_ban(alice, account, NOW) == ban
    assert db.allow("crew", alice.key_fingerprint) is True
    assert db.is_allowed(("crew",), alice) is True
    assert db.is_allowed((), alice) is False


def test_recognise_says_until_when_its_answer_holds(db):
    """The answer stays true without a write until the next last_seen update is due."""
    alice = identity()
    account = db.register("alice", alice, NOW)
    stranger = identity("stranger")
    assert db.recognise(stranger, NOW) == (None, None)  # until the database changes
    soon = NOW + LAST_SEEN_INTERVAL / 4
    assert db.recognise(alice, soon) == (account, NOW + LAST_SEEN_INTERVAL)
    later = NOW + LAST_SEEN_INTERVAL * 3
    assert db.recognise(alice, later) == (account, later + LAST_SEEN_INTERVAL)
    assert db.certificates(account.id)[0].last_seen == later
    renewed = identity(key=alice.key_fingerprint)
    assert db.recognise(renewed, later) == (account, later + LAST_SEEN_INTERVAL)
    assert len(db.certificates(account.id)) == 2


def test_arguments_are_checked_before_any_sql(db):
    with pytest.raises(InvalidName):
        db.register("no spaces", identity(), NOW)
    with pytest.raises(InvalidName):
        db.rename("alice", "-dash")
    with pytest.raises(StoreError, match="not a SHA-256 fingerprint"):
        db.ban(BanKind.KEY, "SHA256:12", "x", NOW)
    with pytest.raises(StoreError, match="needs a name"):
        db.allow("", identity().fingerprint)
    assert db.accounts() == []
    assert db.bans() == []


def test_a_failed_write_releases_the_write_lock(db, path):
    alice = identity()
    db.register("alice", alice, NOW)
    with pytest.raises(AlreadyRegistered):
        db.register("bob", alice, NOW)
    # Another connection gets the write lock at once: the failed transaction is over.
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert [account.name for account in db.accounts()] == ["alice"]


def test_a_writer_waits_for_another_process_then_gives_up(path):
    """BEGIN IMMEDIATE queues on the write lock for the busy timeout; reads never wait (WAL)."""
    db = SQLiteDatabase(path, busy_timeout=dt.timedelta(milliseconds=50))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        assert db.accounts() == []
        start = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            db.register("alice", identity(), NOW)
        assert time.monotonic() - start >= 0.04
        holder.execute("ROLLBACK")
        db.close()
        db = SQLiteDatabase(path)  # the default: seconds to spare
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.1, holder.execute, ("ROLLBACK",))
        release.start()
        assert db.register("alice", identity(), NOW).name == "alice"
        release.join()
    finally:
        db.close()
        holder.close()


def test_racing_writers_in_threads_queue_and_exactly_one_name_wins(path):
    SQLiteDatabase(path).close()
    start = threading.Barrier(8)
    outcomes: list[object] = []

    def register() -> None:
        db = SQLiteDatabase(path)
        try:
            start.wait()
            outcomes.append(db.register("popular", identity(), NOW))
        except StoreError as exc:
            outcomes.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=register) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [outcome for outcome in outcomes if isinstance(outcome, StoreError)]
    assert len(outcomes) == 8
    assert len(errors) == 7
    assert all(isinstance(error, NameTaken) for error in errors), errors


def test_closed_and_foreign_threads_are_store_errors(path):
    db = SQLiteDatabase(path)
    failures: list[BaseException] = []

    def elsewhere() -> None:
        try:
            db.accounts()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert len(failures) == 1
    assert isinstance(failures[0], StoreError)
    assert "thread" in str(failures[0])
    db.close()
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.accounts()
    with pytest.raises(StoreError, match="closed"):
        db.register("alice", identity(), NOW)


def test_change_counter_moves_on_every_commit_elsewhere(db, path):
    counter = ChangeCounter(path)
    try:
        before = counter.read()
        assert counter.read() == before
        db.accounts()  # a read changes nothing
        assert counter.read() == before
        db.register("alice", identity(), NOW)  # the store's own connection is another one
        after_own = counter.read()
        assert after_own != before
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys\n"
                "with sqlite3.connect(sys.argv[1]) as c:\n"
                "    c.execute(\"INSERT INTO allow_entries VALUES ('x', 'y', 'z')\")\n",
                str(path),
            ],
            check=True,
            timeout=60,
        )
        assert counter.read() != after_own
        assert db.allow_list("x") == ["y"]
    finally:
        counter.close()
    with pytest.raises(StoreError):
        counter.read()
