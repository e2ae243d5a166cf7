"""The identity store's contract, run against every implementation (parametrised ``store``).

Each implementation is a *backend*: a context manager that prepares a place
for the data (an SQLite file; for PostgreSQL, a schema of its own that it
drops afterwards) and yields a function opening a store on it.  Opening it
twice gives two stores on the same data, as the server and the admin CLI are
(or two nodes).  A new implementation adds its backend to ``BACKENDS`` and
must pass this file unchanged.  SQLite-only behaviour (files, pragmas,
migrations, its cache) is tested in ``test_store_sqlite.py``, its synchronous
core in ``test_store_sqlite_db.py``, the read cache in ``test_store_cache.py``;
PostgreSQL-only behaviour (several nodes, notifications, migrations) in
``test_store_postgres.py``.

Every test runs its coroutines on one event loop of its own
(:func:`helpers.run`), as a server does: a store may bind to the loop that
first uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import pytest

import pg
from helpers import run
from hospes.gemini.identity import ClientIdentity
from hospes.store import (
    LAST_SEEN_INTERVAL,
    MAX_CONFIRMATIONS,
    AlreadyRegistered,
    BanKind,
    Confirmation,
    InvalidName,
    LastCertificate,
    NameTaken,
    Store,
    StoreError,
    UnknownAccount,
)
from hospes.store.sqlite import SQLiteStore

T = TypeVar("T")

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def eventually(store: Store, check: Callable[[], bool]) -> bool:
    """Whether ``check()`` holds at once, or for a shared store within its ``propagation``.

    For SQLite (``propagation`` 0) this is one immediate check: it sees every
    change at once.  For PostgreSQL it is the bound a change made elsewhere
    takes to reach this store's cached answers.
    """
    deadline = time.monotonic() + store.propagation.total_seconds()
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


Opener = Callable[[], Store]


@contextlib.contextmanager
def sqlite_backend(tmp_path: Path) -> Iterator[Opener]:
    path = tmp_path / "store" / "hospes.sqlite3"
    yield lambda: SQLiteStore(path)


@contextlib.contextmanager
def postgres_backend(tmp_path: Path) -> Iterator[Opener]:
    from hospes.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg may be missing

    with pg.schema() as url:
        yield lambda: PostgresStore(url)


BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Opener]]] = {
    "sqlite": sqlite_backend,
    "postgresql": postgres_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one backend's data; every store opened is closed afterwards."""
    opened: list[Store] = []
    with BACKENDS[request.param](tmp_path) as opener:

        def open_store() -> Store:
            opened.append(opener())
            return opened[-1]

        yield open_store
        for instance in opened:
            run(instance.close())


@pytest.fixture
def store(open_store: Opener) -> Store:
    return open_store()


def fp() -> str:
    return "SHA256:" + secrets.token_hex(32)


def identity(name: str | None = "alice", key: str | None = None) -> ClientIdentity:
    """A certificate identity with random fingerprints (``key`` reuses a key: a renewal)."""
    return ClientIdentity(
        fingerprint=fp(),
        key_fingerprint=key or fp(),
        common_name=name,
        subject=f"CN={name}",
        issuer=f"CN={name}",
        serial=secrets.randbits(64),
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        key_type="ECDSA P-256",
        key_bits=256,
        self_signed=True,
        defect=None,
    )


# -- register and recognise ------------------------------------------------------------------


def test_register_then_recognise(store):
    alice = identity()
    account = run(store.register("alice", alice, NOW))
    assert account.name == "alice"
    assert account.status == "active"
    assert account.created == NOW
    assert run(store.recognise(alice, NOW)) == account
    assert run(store.recognise(identity("stranger"), NOW)) is None
    [record] = run(store.certificates(account.id))
    assert record.fingerprint == alice.fingerprint
    assert record.key_fingerprint == alice.key_fingerprint
    assert record.common_name == "alice"
    assert record.not_before == alice.not_before
    assert record.not_after == alice.not_after
    assert record.first_seen == record.last_seen == NOW
    assert record.account_id == account.id


def test_renewal_with_same_key_is_the_same_account(store):
    old = identity()
    account = run(store.register("alice", old, NOW))
    renewed = identity("alice renewed", key=old.key_fingerprint)
    later = NOW + dt.timedelta(days=300)
    assert run(store.recognise(renewed, later)) == account
    records = run(store.certificates(account.id))
    assert [record.fingerprint for record in records] == [old.fingerprint, renewed.fingerprint]
    assert records[1].first_seen == later
    assert records[1].common_name == "alice renewed"
    # Recognising it again does not add it twice.
    assert run(store.recognise(renewed, later)) == account
    assert len(run(store.certificates(account.id))) == 2


def test_new_key_is_not_recognised(store):
    run(store.register("alice", identity(), NOW))
    assert run(store.recognise(identity("alice"), NOW)) is None


def test_last_seen_is_written_at_most_once_an_interval(store):
    alice = identity()
    account = run(store.register("alice", alice, NOW))
    soon = NOW + LAST_SEEN_INTERVAL / 2
    run(store.recognise(alice, soon))
    assert run(store.certificates(account.id))[0].last_seen == NOW
    later = NOW + LAST_SEEN_INTERVAL * 2
    run(store.recognise(alice, later))
    assert run(store.certificates(account.id))[0].last_seen == later


def test_names_are_case_insensitive_and_unique(store):
    account = run(store.register("Alice", identity(), NOW))
    with pytest.raises(NameTaken):
        run(store.register("aLICE", identity(), NOW))
    assert run(store.account("ALICE")) == account
    assert run(store.account("alice")).name == "Alice"
    assert run(store.account("bob")) is None
    assert run(store.account_by_id(account.id)) == account
    assert run(store.account_by_id(account.id + 1000)) is None


@pytest.mark.parametrize(
    "name", ["", "a" * 33, "has space", "-dash", ".dot", "naïve", "a/b", "new\nline", "x;y"]
)
def test_invalid_names_are_refused(store, name):
    with pytest.raises(InvalidName):
        run(store.register(name, identity(), NOW))
    assert run(store.accounts()) == []


def test_valid_name_edges(store):
    for name in ["a", "A" * 32, "0day", "x.y_z-w"]:
        run(store.register(name, identity(), NOW))
    assert len(run(store.accounts())) == 4


def test_a_certificate_or_key_registers_once(store):
    alice = identity()
    run(store.register("alice", alice, NOW))
    with pytest.raises(AlreadyRegistered):
        run(store.register("other", alice, NOW))
    with pytest.raises(AlreadyRegistered):
        run(store.register("other", identity(key=alice.key_fingerprint), NOW))
    assert [account.name for account in run(store.accounts())] == ["alice"]


def test_concurrent_registrations_of_one_name_exactly_one_wins(store):
    async def race() -> list[object]:
        return await asyncio.gather(
            *(store.register("popular", identity(), NOW) for _ in range(10)),
            return_exceptions=True,
        )

    results = run(race())
    winners = [result for result in results if not isinstance(result, BaseException)]
    losers = [result for result in results if isinstance(result, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(loser, NameTaken) for loser in losers)
    assert "popular" in str(losers[0])
    assert len(run(store.accounts())) == 1


def test_names_that_look_alike_are_one_name(store):
    run(store.register("alice", identity(), NOW))
    for name in ("aIice", "AIice", "a1ice", "A1ice"):
        with pytest.raises(NameTaken) as taken:
            run(store.register(name, identity(), NOW))
        assert taken.value.existing == "alice"
        assert "alice" in str(taken.value)
    with pytest.raises(NameTaken) as same:
        run(store.register("ALICE", identity(), NOW))
    assert same.value.existing is None
    bob = run(store.register("bob", identity(), NOW))
    with pytest.raises(NameTaken) as renamed:
        run(store.rename("bob", "aIice"))
    assert renamed.value.existing == "alice"
    # An account may take a name that looks like its own.
    assert run(store.rename("alice", "aIice")).name == "aIice"
    assert bob.name == "bob"
    assert [account.name for account in run(store.accounts())] == ["aIice", "bob"]


def test_concurrent_registrations_of_look_alike_names_exactly_one_wins(store):
    names = ["m0rn", "mOrn", "rnorn", "m0m", "rnOrn", "rn0rn"]

    async def race() -> list[object]:
        return await asyncio.gather(
            *(store.register(name, identity(), NOW) for name in names), return_exceptions=True
        )

    results = run(race())
    assert sum(not isinstance(result, BaseException) for result in results) == 1
    assert all(isinstance(r, NameTaken) for r in results if isinstance(r, BaseException))
    assert len(run(store.accounts())) == 1


def test_accounts_sorted_by_name(store):
    for name in ["carol", "Bob", "alice"]:
        run(store.register(name, identity(), NOW))
    assert [account.name for account in run(store.accounts())] == ["alice", "Bob", "carol"]


def test_rename(store):
    alice = identity()
    account = run(store.register("alice", alice, NOW))
    run(store.register("bob", identity(), NOW))
    renamed = run(store.rename("ALICE", "alicia"))
    assert renamed.id == account.id
    assert renamed.name == "alicia"
    assert run(store.recognise(alice, NOW)).name == "alicia"
    assert run(store.rename("alicia", "Alicia")).name == "Alicia"  # a change of case
    with pytest.raises(NameTaken):
        run(store.rename("alicia", "BOB"))
    with pytest.raises(UnknownAccount):
        run(store.rename("nobody", "somebody"))
    with pytest.raises(InvalidName):
        run(store.rename("alicia", "bad name"))
    assert run(store.account("alicia")).name == "Alicia"


def test_delete_removes_everything_of_the_account(store):
    alice = identity()
    account = run(store.register("alice", alice, NOW))
    bob = run(store.register("bob", identity(), NOW))
    run(store.ban(BanKind.ACCOUNT, str(account.id), "spam", NOW))
    run(store.ban(BanKind.ACCOUNT, str(bob.id), "spam", NOW))
    run(store.create_link_code(account.id, b"h" * 32, NOW + dt.timedelta(minutes=10)))
    run(store.delete("Alice"))
    assert run(store.account("alice")) is None
    assert run(store.recognise(alice, NOW)) is None
    assert run(store.certificates(account.id)) == []
    assert [ban.value for ban in run(store.bans())] == [str(bob.id)]
    assert run(store.redeem_link_code(b"h" * 32, identity(), NOW)) is None
    with pytest.raises(UnknownAccount):
        run(store.delete("alice"))
    # The certificate is free again.
    assert run(store.register("alice2", alice, NOW)).name == "alice2"


# -- certificates -----------------------------------------------------------------------------


def test_add_and_remove_certificates(store):
    laptop = identity("laptop")
    account = run(store.register("alice", laptop, NOW))
    phone = identity("phone")
    record = run(store.add_certificate(account.id, phone, NOW))
    assert record.fingerprint == phone.fingerprint
    assert record.account_id == account.id
    assert run(store.recognise(phone, NOW)) == account
    with pytest.raises(AlreadyRegistered):
        run(store.add_certificate(account.id, phone, NOW))
    run(store.remove_certificate(account.id, phone.fingerprint))
    assert run(store.recognise(phone, NOW)) is None
    # Its key is gone with it: a renewal of the removed certificate is a stranger.
    assert run(store.recognise(identity("phone", key=phone.key_fingerprint), NOW)) is None
    with pytest.raises(LastCertificate):
        run(store.remove_certificate(account.id, laptop.fingerprint))
    assert run(store.recognise(laptop, NOW)) == account


def test_remove_accepts_any_fingerprint_notation(store):
    account = run(store.register("alice", identity(), NOW))
    phone = identity("phone")
    run(store.add_certificate(account.id, phone, NOW))
    run(store.remove_certificate(account.id, phone.fingerprint.removeprefix("SHA256:").upper()))
    assert len(run(store.certificates(account.id))) == 1


def test_removing_an_old_renewal_keeps_the_key(store):
    old = identity()
    account = run(store.register("alice", old, NOW))
    renewed = identity(key=old.key_fingerprint)
    run(store.recognise(renewed, NOW))
    run(store.remove_certificate(account.id, old.fingerprint))
    assert run(store.recognise(renewed, NOW)) == account


def test_cannot_remove_or_add_across_accounts(store):
    alice = run(store.register("alice", identity(), NOW))
    bob_certificate = identity("bob")
    bob = run(store.register("bob", bob_certificate, NOW))
    run(store.add_certificate(bob.id, identity("bob2"), NOW))
    with pytest.raises(StoreError):
        run(store.remove_certificate(alice.id, bob_certificate.fingerprint))
    with pytest.raises(AlreadyRegistered):
        run(store.add_certificate(alice.id, bob_certificate, NOW))
    with pytest.raises(AlreadyRegistered):
        run(store.add_certificate(alice.id, identity(key=bob_certificate.key_fingerprint), NOW))
    with pytest.raises(UnknownAccount):
        run(store.add_certificate(alice.id + bob.id + 100, identity(), NOW))
    assert run(store.recognise(bob_certificate, NOW)) == bob


def test_malformed_fingerprint_is_a_store_error(store):
    account = run(store.register("alice", identity(), NOW))
    with pytest.raises(StoreError):
        run(store.remove_certificate(account.id, "not-a-fingerprint"))


# -- link codes -------------------------------------------------------------------------------


def test_link_code_adds_a_device_once(store):
    account = run(store.register("alice", identity(), NOW))
    code = secrets.token_bytes(32)
    run(store.create_link_code(account.id, code, NOW + dt.timedelta(minutes=10)))
    phone = identity("phone")
    assert run(store.redeem_link_code(code, phone, NOW + dt.timedelta(minutes=1))) == account
    assert run(store.recognise(phone, NOW)) == account
    assert run(store.redeem_link_code(code, identity("tablet"), NOW)) is None


def test_link_code_expires(store):
    account = run(store.register("alice", identity(), NOW))
    code = secrets.token_bytes(32)
    run(store.create_link_code(account.id, code, NOW + dt.timedelta(minutes=10)))
    phone = identity("phone")
    assert run(store.redeem_link_code(code, phone, NOW + dt.timedelta(minutes=10))) is None
    assert run(store.recognise(phone, NOW)) is None


def test_unknown_code_and_new_code_replaces_old(store):
    account = run(store.register("alice", identity(), NOW))
    first, second = secrets.token_bytes(32), secrets.token_bytes(32)
    expires = NOW + dt.timedelta(minutes=10)
    run(store.create_link_code(account.id, first, expires))
    run(store.create_link_code(account.id, second, expires))
    assert run(store.redeem_link_code(secrets.token_bytes(32), identity(), NOW)) is None
    assert run(store.redeem_link_code(first, identity(), NOW)) is None
    assert run(store.redeem_link_code(second, identity(), NOW)) == account
    with pytest.raises(UnknownAccount):
        run(store.create_link_code(account.id + 100, secrets.token_bytes(32), expires))


def test_redeeming_with_a_registered_certificate_consumes_nothing(store):
    alice = run(store.register("alice", identity(), NOW))
    bob_certificate = identity("bob")
    run(store.register("bob", bob_certificate, NOW))
    code = secrets.token_bytes(32)
    run(store.create_link_code(alice.id, code, NOW + dt.timedelta(minutes=10)))
    with pytest.raises(AlreadyRegistered):
        run(store.redeem_link_code(code, bob_certificate, NOW))
    assert run(store.redeem_link_code(code, identity("phone"), NOW)) == alice


def test_concurrent_redemptions_of_one_code(store):
    account = run(store.register("alice", identity(), NOW))
    code = secrets.token_bytes(32)
    run(store.create_link_code(account.id, code, NOW + dt.timedelta(minutes=10)))

    async def race() -> list[object]:
        return await asyncio.gather(
            *(store.redeem_link_code(code, identity(), NOW) for _ in range(8))
        )

    results = run(race())
    assert results.count(account) == 1
    assert results.count(None) == 7
    assert len(run(store.certificates(account.id))) == 2


# -- confirmations --------------------------------------------------------------------------


def confirmation(who: str, action: str = "link", target: str = "") -> Confirmation:
    return Confirmation(secrets.token_bytes(32), who, action, target)


def test_a_confirmation_is_valid_for_its_certificate_action_and_target_once(store):
    alice = fp()
    nonce = confirmation(alice, "remove", "SHA256:" + "ab" * 32)
    run(store.create_confirmation(nonce, NOW + dt.timedelta(minutes=10), NOW))
    assert run(store.confirmation_valid(nonce, NOW))
    for other in (
        Confirmation(nonce.nonce_hash, fp(), nonce.action, nonce.target),
        Confirmation(nonce.nonce_hash, alice, "register", nonce.target),
        Confirmation(nonce.nonce_hash, alice, nonce.action, "SHA256:" + "cd" * 32),
        Confirmation(secrets.token_bytes(32), alice, nonce.action, nonce.target),
    ):
        assert not run(store.confirmation_valid(other, NOW))
        assert run(store.take_confirmation(other, NOW)) is None
    assert run(store.take_confirmation(nonce, NOW)) == NOW + dt.timedelta(minutes=10)
    assert run(store.take_confirmation(nonce, NOW)) is None
    assert not run(store.confirmation_valid(nonce, NOW))
    # Given back (the change did not happen), it is valid again until its expiry.
    run(store.create_confirmation(nonce, NOW + dt.timedelta(minutes=10), NOW))
    assert run(store.take_confirmation(nonce, NOW + dt.timedelta(minutes=9))) is not None


def test_a_confirmation_expires(store):
    nonce = confirmation(fp())
    run(store.create_confirmation(nonce, NOW + dt.timedelta(minutes=10), NOW))
    later = NOW + dt.timedelta(minutes=10)
    assert not run(store.confirmation_valid(nonce, later))
    assert run(store.take_confirmation(nonce, later)) is None


def test_confirmations_per_certificate_are_capped(store):
    alice, bob = fp(), fp()
    nonces = [confirmation(alice) for _ in range(MAX_CONFIRMATIONS + 3)]
    bobs = confirmation(bob)
    run(store.create_confirmation(bobs, NOW + dt.timedelta(minutes=10), NOW))
    for index, nonce in enumerate(nonces):
        expires = NOW + dt.timedelta(minutes=10, seconds=index)
        run(store.create_confirmation(nonce, expires, NOW))
    valid = [run(store.confirmation_valid(nonce, NOW)) for nonce in nonces]
    assert valid == [False] * 3 + [True] * MAX_CONFIRMATIONS
    assert run(store.confirmation_valid(bobs, NOW))


def test_one_of_two_concurrent_takes_gets_a_confirmation(open_store):
    first, second = open_store(), open_store()
    nonce = confirmation(fp())
    run(first.create_confirmation(nonce, NOW + dt.timedelta(minutes=10), NOW))

    async def race() -> list[dt.datetime | None]:
        return list(
            await asyncio.gather(
                *(store.take_confirmation(nonce, NOW) for store in (first, second, first, second))
            )
        )

    assert sum(result is not None for result in run(race())) == 1


def test_a_confirmation_made_by_one_store_is_taken_by_another(open_store):
    """Two worker processes (or servers) on one database: the prompt and its answer may differ."""
    first, second = open_store(), open_store()
    nonce = confirmation(fp())
    run(first.create_confirmation(nonce, NOW + dt.timedelta(minutes=10), NOW))
    assert run(second.confirmation_valid(nonce, NOW))
    assert run(second.take_confirmation(nonce, NOW)) is not None
    assert not run(first.confirmation_valid(nonce, NOW))


# -- bans -------------------------------------------------------------------------------------


def test_bans_by_certificate_key_and_account(store):
    alice_certificate = identity()
    alice = run(store.register("alice", alice_certificate, NOW))
    stranger = identity("stranger")
    assert run(store.active_ban(alice_certificate, alice, NOW)) is None

    ban = run(store.ban(BanKind.CERTIFICATE, stranger.fingerprint, "rude", NOW))
    assert ban.kind is BanKind.CERTIFICATE
    assert ban.value == stranger.fingerprint
    assert ban.reason == "rude"
    assert ban.until is None
    assert run(store.active_ban(stranger, None, NOW)) == ban
    assert run(store.active_ban(alice_certificate, alice, NOW)) is None

    renewed_stranger = identity(key=stranger.key_fingerprint)
    assert run(store.active_ban(renewed_stranger, None, NOW)) is None
    key_ban = run(store.ban(BanKind.KEY, stranger.key_fingerprint.upper()[7:], "still rude", NOW))
    assert key_ban.value == stranger.key_fingerprint
    assert run(store.active_ban(renewed_stranger, None, NOW)) == key_ban

    account_ban = run(store.ban(BanKind.ACCOUNT, str(alice.id), "spam", NOW))
    assert run(store.active_ban(alice_certificate, alice, NOW)) == account_ban
    # An account ban follows the account to every certificate of it.
    phone = identity("phone")
    run(store.add_certificate(alice.id, phone, NOW))
    assert run(store.active_ban(phone, alice, NOW)) == account_ban

    assert run(store.unban(BanKind.ACCOUNT, str(alice.id))) == 1
    assert run(store.active_ban(alice_certificate, alice, NOW)) is None
    assert run(store.unban(BanKind.CERTIFICATE, stranger.fingerprint)) == 1
    assert run(store.unban(BanKind.CERTIFICATE, stranger.fingerprint)) == 0
    assert run(store.active_ban(stranger, None, NOW)) == key_ban


def test_ban_expiry_and_listing(store):
    target = identity()
    later = NOW + dt.timedelta(days=7)
    temporary = run(store.ban(BanKind.CERTIFICATE, target.fingerprint, "cool off", NOW, later))
    assert temporary.until == later
    assert run(store.active_ban(target, None, NOW + dt.timedelta(days=6))) == temporary
    assert run(store.active_ban(target, None, later)) is None
    newer = run(store.ban(BanKind.KEY, target.key_fingerprint, "again", NOW + dt.timedelta(1)))
    assert run(store.bans()) == [newer, temporary]
    assert run(store.unban(BanKind.CERTIFICATE, target.fingerprint)) == 1
    assert run(store.bans()) == [newer]


def test_ban_validation(store):
    with pytest.raises(StoreError):
        run(store.ban(BanKind.CERTIFICATE, "SHA256:1234", "x", NOW))
    with pytest.raises(UnknownAccount):
        run(store.ban(BanKind.ACCOUNT, "999", "x", NOW))
    with pytest.raises(UnknownAccount):
        run(store.ban(BanKind.ACCOUNT, "alice", "x", NOW))
    assert run(store.bans()) == []


# -- allow-lists ------------------------------------------------------------------------------


def test_allow_lists(store):
    member, other = identity(), identity()
    assert run(store.is_allowed(["friends"], member)) is False
    assert run(store.allow("friends", member.fingerprint)) is True
    assert run(store.allow("friends", member.fingerprint.upper()[7:])) is False
    assert run(store.is_allowed(["friends"], member)) is True
    assert run(store.is_allowed(["others", "friends"], member)) is True
    assert run(store.is_allowed(["others"], member)) is False
    assert run(store.is_allowed([], member)) is False
    assert run(store.is_allowed(["friends"], other)) is False
    # A key on the list admits every certificate of that key.
    assert run(store.allow("keys", other.key_fingerprint)) is True
    assert run(store.is_allowed(["keys"], identity(key=other.key_fingerprint))) is True
    assert run(store.allow_list("friends")) == [member.fingerprint]
    assert run(store.allow_list("nothing")) == []
    assert run(store.allow_lists()) == {"friends": 1, "keys": 1}
    assert run(store.disallow("friends", member.fingerprint)) is True
    assert run(store.disallow("friends", member.fingerprint)) is False
    assert run(store.is_allowed(["friends"], member)) is False
    assert run(store.allow_lists()) == {"keys": 1}
    with pytest.raises(StoreError):
        run(store.allow("friends", "nonsense"))


# -- rate limits of the account pages ---------------------------------------------------------


def test_token_buckets_refill_and_a_refusal_spends_nothing(store):
    rate, burst = 1 / 60, 2

    def take(bucket: str, key: str, seconds: float) -> float:
        return run(store.take_token(bucket, key, rate, burst, NOW + dt.timedelta(seconds=seconds)))

    assert take("register", "192.0.2.1", 0) == 0
    assert take("register", "192.0.2.1", 0) == 0
    assert take("register", "192.0.2.1", 0) == pytest.approx(60)
    assert take("register", "192.0.2.1", 30) == pytest.approx(30)  # the refusal spent nothing
    assert take("register", "192.0.2.1", 60) == 0
    # Buckets are per name and per key.
    assert take("register", "192.0.2.2", 60) == 0
    assert take("link", "192.0.2.1", 60) == 0
    # A clock that goes back (another node's) refills nothing and breaks nothing.
    assert take("register", "192.0.2.1", 0) == pytest.approx(60)
    # Never more than the burst, however long the wait.
    assert take("register", "192.0.2.1", 86400) == 0
    assert take("register", "192.0.2.1", 86400) == 0
    assert take("register", "192.0.2.1", 86400) == pytest.approx(60)
    with pytest.raises(ValueError):
        run(store.take_token("register", "x", 0, burst, NOW))


def test_closed_store_refuses_work(open_store):
    instance = open_store()
    run(instance.close())
    run(instance.close())  # closing twice is harmless
    with pytest.raises(StoreError):
        run(instance.accounts())
    with pytest.raises(StoreError):
        run(instance.register("alice", identity(), NOW))


# -- two stores on the same data (the server and the admin CLI) ------------------------------


def test_a_second_store_sees_every_change_at_once(open_store):
    """What the CLI changes applies to the server's next request, whatever the server kept.

    At once for SQLite; for a store shared by nodes, within its stated ``propagation``.
    """
    server, admin = open_store(), open_store()
    alice = identity()
    assert run(server.recognise(alice, NOW)) is None
    account = run(admin.register("alice", alice, NOW))
    assert eventually(server, lambda: run(server.recognise(alice, NOW)) == account)
    bob_certificate = identity("bob")
    assert run(admin.recognise(bob_certificate, NOW)) is None
    bob = run(server.register("bob", bob_certificate, NOW))
    assert eventually(admin, lambda: run(admin.recognise(bob_certificate, NOW)) == bob)
    assert run(server.active_ban(alice, account, NOW)) is None
    ban = run(admin.ban(BanKind.KEY, alice.key_fingerprint, "flood", NOW))
    assert eventually(server, lambda: run(server.active_ban(alice, account, NOW)) == ban)
    run(admin.unban(BanKind.KEY, alice.key_fingerprint))
    assert eventually(server, lambda: run(server.active_ban(alice, account, NOW)) is None)
    assert run(server.is_allowed(["crew"], alice)) is False
    run(admin.allow("crew", alice.fingerprint))
    assert eventually(server, lambda: run(server.is_allowed(["crew"], alice)) is True)
    run(admin.disallow("crew", alice.fingerprint))
    assert eventually(server, lambda: run(server.is_allowed(["crew"], alice)) is False)
    assert run(server.recognise(alice, NOW)).name == "alice"
    run(admin.rename("alice", "alicia"))
    assert eventually(server, lambda: run(server.recognise(alice, NOW)).name == "alicia")
    run(admin.delete("alicia"))
    assert eventually(server, lambda: run(server.recognise(alice, NOW)) is None)


# -- accounts created by the admin, fingerprint prefixes ---------------------------------


@pytest.mark.parametrize("by", ["certificate", "key"])
def test_created_account_gets_the_first_matching_certificate(store, by):
    alice = identity("alice")
    typed = alice.fingerprint if by == "certificate" else alice.key_fingerprint
    account = run(store.create_account("alice", typed.upper().replace("SHA256:", ""), NOW))
    assert account.name == "alice"
    assert run(store.awaited_fingerprints(account.id)) == [typed]
    assert run(store.certificates(account.id)) == []
    assert run(store.recognise(identity("stranger"), NOW)) is None
    later = NOW + dt.timedelta(days=1)
    found = run(store.recognise(alice, later))
    assert found is not None and found.id == account.id
    [record] = run(store.certificates(account.id))
    assert (record.fingerprint, record.first_seen) == (alice.fingerprint, later)
    assert run(store.awaited_fingerprints(account.id)) == []
    # Claimed once: the account now holds the key, a renewal follows as usual.
    renewal = identity("alice", key=alice.key_fingerprint)
    assert run(store.recognise(renewal, later)).id == account.id


def test_an_account_created_elsewhere_reaches_a_store_that_saw_a_stranger(open_store):
    server, admin = open_store(), open_store()
    alice = identity("alice")
    assert run(server.recognise(alice, NOW)) is None  # remembered: a stranger
    account = run(admin.create_account("alice", alice.key_fingerprint, NOW))
    assert eventually(server, lambda: run(server.recognise(alice, NOW)) == account)
    assert run(admin.awaited_fingerprints(account.id)) == []


def test_create_account_refuses_taken_names_and_fingerprints(store):
    alice = identity("alice")
    run(store.register("alice", alice, NOW))
    awaited = fp()
    run(store.create_account("bob", awaited, NOW))
    with pytest.raises(NameTaken):
        run(store.create_account("ALICE", fp(), NOW))
    with pytest.raises(NameTaken, match="looks like the existing account 'alice'"):
        run(store.create_account("aIice", fp(), NOW))  # the look-alike rule of register
    with pytest.raises(InvalidName):
        run(store.create_account("-x", fp(), NOW))
    for taken in (alice.fingerprint, alice.key_fingerprint, awaited):
        with pytest.raises(AlreadyRegistered):
            run(store.create_account("carol", taken, NOW))
    with pytest.raises(StoreError):
        run(store.create_account("carol", "SHA256:1234", NOW))
    assert run(store.account("carol")) is None
    run(store.delete("bob"))
    assert run(store.create_account("carol", awaited, NOW)).name == "carol"


def test_fingerprints_with_prefix_finds_every_kind_of_known_fingerprint(store):
    alice = identity("alice")
    run(store.register("alice", alice, NOW))
    listed, banned, awaited = fp(), fp(), fp()
    run(store.allow("friends", listed))
    run(store.ban(BanKind.KEY, banned, "spam", NOW))
    run(store.create_account("bob", awaited, NOW))
    for known in (alice.fingerprint, alice.key_fingerprint, listed, banned, awaited):
        assert run(store.fingerprints_with_prefix(known[:19])) == [known]
        assert run(store.fingerprints_with_prefix(known)) == [known]
    everything = run(store.fingerprints_with_prefix("SHA256:"))
    assert sorted(everything) == everything
    assert set(everything) == {
        alice.fingerprint,
        alice.key_fingerprint,
        listed,
        banned,
        awaited,
    }
    assert len(run(store.fingerprints_with_prefix("SHA256:", limit=2))) == 2
    assert run(store.fingerprints_with_prefix("SHA256:" + "f" * 64)) == []
    with pytest.raises(StoreError):
        run(store.fingerprints_with_prefix("SHA256:" + "g" * 12))


# -- the admin capsule: searching accounts, the audit log, counts --------------------------


def test_search_accounts_by_part_of_a_name_or_a_fingerprint_prefix(store):
    alice, alina, bob = identity("alice"), identity("alina"), identity("bob")
    for name, who in (("Alice", alice), ("alina", alina), ("bob", bob)):
        run(store.register(name, who, NOW))
    awaited = fp()
    carol = run(store.create_account("carol", awaited, NOW))
    names = lambda text, limit=50: [a.name for a in run(store.search_accounts(text, limit))]  # noqa: E731
    assert names("AL") == ["Alice", "alina"]  # any case, sorted by name regardless of case
    assert names("lin") == ["alina"]
    assert names("") == ["Alice", "alina", "bob", "carol"]
    assert names("", 2) == ["Alice", "alina"]
    assert names("zed") == []
    assert names("%") == names("_") == []  # no pattern characters: text is text
    # A fingerprint prefix finds by certificate, key, or awaited fingerprint; never by name.
    assert names(alice.fingerprint[:20]) == ["Alice"]
    assert names(bob.key_fingerprint) == ["bob"]
    assert [a.id for a in run(store.search_accounts(awaited[:15]))] == [carol.id]
    assert names("SHA256:" + "f" * 64) == []
    renewal = identity("alice", key=alice.key_fingerprint)
    run(store.recognise(renewal, NOW))
    assert names(renewal.fingerprint[:30]) == ["Alice"]  # one account, though two matches


def test_audit_log_keeps_every_entry_newest_first(store):
    admin = fp()
    first = run(store.add_audit_entry(NOW, admin, "ban", "account alice (id 1)", "spam"))
    assert (first.time, first.admin, first.action, first.target, first.reason) == (
        NOW,
        admin,
        "ban",
        "account alice (id 1)",
        "spam",
    )
    later = run(store.add_audit_entry(NOW + dt.timedelta(minutes=1), admin, "unban", "x"))
    assert later.reason == ""
    same_time = run(store.add_audit_entry(NOW + dt.timedelta(minutes=1), admin, "rename", "y"))
    assert run(store.audit_log()) == [same_time, later, first]
    assert run(store.audit_log(limit=1)) == [same_time]
    for missing in (("", "ban", "x"), (admin, "", "x"), (admin, "ban", "")):
        with pytest.raises(StoreError):
            run(store.add_audit_entry(NOW, *missing))
    assert len(run(store.audit_log())) == 3


def test_audit_entries_of_one_store_are_read_by_another(open_store):
    server, cli = open_store(), open_store()
    entry = run(server.add_audit_entry(NOW, fp(), "allow", "list admins: x", "new admin"))
    assert run(cli.audit_log()) == [entry]  # not cached: at once, on every backend


def test_counts_of_what_the_store_holds(store):
    empty = run(store.counts(NOW))
    assert (empty.accounts, empty.certificates, empty.bans, empty.allow_entries) == (0, 0, 0, 0)
    assert empty.audit_entries == 0
    alice = identity("alice")
    account = run(store.register("alice", alice, NOW))
    run(store.recognise(identity("alice", key=alice.key_fingerprint), NOW))
    run(store.register("bob", identity("bob"), NOW))
    run(store.ban(BanKind.ACCOUNT, str(account.id), "spam", NOW))
    run(store.ban(BanKind.KEY, fp(), "old", NOW - dt.timedelta(days=2), NOW - dt.timedelta(days=1)))
    run(store.allow("friends", fp()))
    run(store.allow("admins", fp()))
    run(store.add_audit_entry(NOW, fp(), "ban", "account alice"))
    counts = run(store.counts(NOW))
    assert (counts.accounts, counts.certificates, counts.bans) == (2, 3, 1)  # expired: not counted
    assert (counts.allow_entries, counts.audit_entries) == (2, 1)
    assert counts.size is not None and counts.size > 0
