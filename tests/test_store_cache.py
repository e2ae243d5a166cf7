"""The read cache on its own: hits, invalidation by the change counter and by time, bounds."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from hospes.store import Account, Ban, BanKind
from hospes.store.cache import MISS, ReadCache
from hospes.store.sqlite_db import ChangeCounter, SQLiteDatabase
from test_store import NOW, identity

ALICE = Account(id=1, name="alice", created=NOW)


class Version:
    """A change counter the test moves by hand."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.value


def test_answers_are_kept_none_included():
    cache = ReadCache(Version())
    member, stranger = identity(), identity("stranger")
    assert cache.recognised(member, NOW) is MISS
    cache.remember_recognised(cache.generation, member, ALICE, None)
    cache.remember_recognised(cache.generation, stranger, None, None)
    assert cache.recognised(member, NOW) == ALICE
    assert cache.recognised(stranger, NOW) is None  # "nobody" is an answer too
    ban = Ban(1, BanKind.ACCOUNT, "1", "spam", NOW)
    assert cache.active_ban(member, ALICE, NOW) is MISS
    cache.remember_ban(cache.generation, member, ALICE, ban)
    cache.remember_ban(cache.generation, member, None, None)
    assert cache.active_ban(member, ALICE, NOW) == ban
    assert cache.active_ban(member, None, NOW) is None  # keyed by the account as well
    assert cache.is_allowed(["crew"], member) is MISS
    cache.remember_allowed(cache.generation, ["crew"], member, True)
    cache.remember_allowed(cache.generation, ("crew", "staff"), stranger, False)
    assert cache.is_allowed(("crew",), member) is True
    assert cache.is_allowed(["crew", "staff"], stranger) is False
    assert cache.is_allowed(["staff"], member) is MISS  # keyed by the lists asked
    assert len(cache) == 6


def test_a_change_of_version_forgets_everything():
    version = Version()
    cache = ReadCache(version)
    member = identity()
    assert cache.recognised(member, NOW) is MISS
    generation = cache.generation
    cache.remember_recognised(generation, member, ALICE, None)
    cache.remember_ban(generation, member, ALICE, None)
    cache.remember_allowed(generation, ["crew"], member, True)
    assert cache.recognised(member, NOW) == ALICE
    assert cache.generation == generation  # unchanged version: nothing forgotten
    version.value += 1
    assert cache.recognised(member, NOW) is MISS
    assert cache.generation == generation + 1
    assert cache.active_ban(member, ALICE, NOW) is MISS
    assert cache.is_allowed(["crew"], member) is MISS
    assert len(cache) == 0
    assert version.reads == 5  # every lookup asks, and only asks once


def test_an_answer_from_before_a_change_is_not_kept():
    """A lookup missed, the store changed while it was asked, another lookup noticed."""
    version = Version()
    cache = ReadCache(version)
    member = identity()
    assert cache.recognised(member, NOW) is MISS
    asked_at = cache.generation
    version.value += 1  # e.g. the CLI registers the certificate meanwhile
    assert cache.active_ban(member, None, NOW) is MISS  # another request sees the change
    cache.remember_recognised(asked_at, member, None, None)  # the stale "stranger"
    cache.remember_ban(asked_at, member, None, None)
    cache.remember_allowed(asked_at, ["crew"], member, False)
    assert cache.recognised(member, NOW) is MISS
    assert cache.active_ban(member, None, NOW) is MISS
    assert cache.is_allowed(["crew"], member) is MISS
    assert len(cache) == 0


def test_answers_expire_with_time():
    cache = ReadCache(Version())
    member = identity()
    until = NOW + dt.timedelta(hours=1)
    cache.recognised(member, NOW)
    cache.remember_recognised(cache.generation, member, ALICE, until)
    assert cache.recognised(member, until - dt.timedelta(microseconds=1)) == ALICE
    assert cache.recognised(member, until) is MISS
    ban = Ban(2, BanKind.CERTIFICATE, member.fingerprint, "cool off", NOW, until)
    cache.remember_ban(cache.generation, member, None, ban)
    assert cache.active_ban(member, None, NOW) == ban
    assert cache.active_ban(member, None, until) is MISS
    forever = Ban(3, BanKind.KEY, member.key_fingerprint, "gone", NOW)
    cache.remember_ban(cache.generation, member, ALICE, forever)
    assert cache.active_ban(member, ALICE, NOW + dt.timedelta(days=10_000)) == forever


def test_each_question_keeps_at_most_size_answers():
    cache = ReadCache(Version(), size=3)
    members = [identity(f"m{index}") for index in range(4)]
    cache.recognised(members[0], NOW)
    for member in members[:3]:
        cache.remember_recognised(cache.generation, member, None, None)
        cache.remember_allowed(cache.generation, ["crew"], member, True)
    assert all(cache.recognised(member, NOW) is None for member in members[:3])
    assert len(cache) == 6
    cache.remember_recognised(cache.generation, members[3], ALICE, None)  # full: starts over
    assert [cache.recognised(member, NOW) for member in members] == [MISS, MISS, MISS, ALICE]
    assert all(cache.is_allowed(["crew"], member) is True for member in members[:3])
    assert len(cache) == 4
    with pytest.raises(ValueError, match="at least one"):
        ReadCache(Version(), size=0)


def test_sqlite_change_counter_drives_it_across_connections_and_processes(tmp_path):
    path = tmp_path / "hospes.sqlite3"
    writer = SQLiteDatabase(path)
    counter = ChangeCounter(path)
    try:
        cache = ReadCache(counter.read)
        member = identity()
        assert cache.recognised(member, NOW) is MISS
        generation = cache.generation
        account, fresh_until = writer.recognise(member, NOW)
        cache.remember_recognised(generation, member, account, fresh_until)
        assert cache.recognised(member, NOW) is None
        writer.accounts()  # reads by others change nothing
        assert cache.recognised(member, NOW) is None
        assert account is None
        account = writer.register("alice", member, NOW)  # another connection commits
        assert cache.recognised(member, NOW) is MISS
        cache.remember_allowed(cache.generation, ["crew"], member, False)
        assert cache.is_allowed(["crew"], member) is False
        subprocess.run(  # another process commits (the admin CLI)
            [
                sys.executable,
                "-c",
                "import sqlite3, sys\n"
                "with sqlite3.connect(sys.argv[1]) as c:\n"
                "    c.execute(\"INSERT INTO allow_entries VALUES ('crew', ?, 'now')\", "
                "(sys.argv[2],))\n",
                str(path),
                member.fingerprint,
            ],
            check=True,
            timeout=60,
        )
        assert cache.is_allowed(["crew"], member) is MISS
        assert writer.is_allowed(["crew"], member) is True
        assert writer.recognise(member, NOW)[0] == account
    finally:
        counter.close()
        writer.close()
