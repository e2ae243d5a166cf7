"""What only the PostgreSQL store has: several nodes on one database, and how they learn of changes.

Each test gets a schema of its own (``pg.schema``); a *node* is a
:class:`PostgresStore` on it, as each hospes server behind a load balancer
has one.  The shared contract is ``test_store.py``; here: races between
nodes, the bound within which a change made elsewhere reaches a node's cached
answers (by notification, by the change counter when a notification is lost,
and while the watch is disconnected), migrations, and errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import pg
from hospes.store import BanKind, NameTaken, StoreError
from hospes.store.database_url import is_database_url, redact
from test_store import NOW, identity, run

postgres = pytest.importorskip("hospes.store.postgres")
PostgresStore = postgres.PostgresStore


@pytest.fixture
def url() -> Iterator[str]:
    with pg.schema() as selected:
        yield selected


@pytest.fixture
def nodes(url: str) -> Iterator[Callable[[], PostgresStore]]:
    """Opens nodes on the test's schema; closes them afterwards."""
    opened: list[PostgresStore] = []

    def node() -> PostgresStore:
        opened.append(PostgresStore(url))
        return opened[-1]

    yield node
    for store in opened:
        run(store.close())


async def listening(*stores: PostgresStore) -> None:
    """Use each store once (which opens its pool and watch) and wait until it listens."""
    for store in stores:
        await store.accounts()
        await asyncio.wait_for(store.watch.connected.wait(), 10)


async def seen_within(check: Callable[[], object], limit: float) -> float:
    """Seconds until ``await check()`` is true, polling; fails the test past ``limit``."""
    start = time.monotonic()
    while not await check():  # type: ignore[misc]
        elapsed = time.monotonic() - start
        assert elapsed < limit, f"not seen within {limit} s"
        await asyncio.sleep(0.002)
    return time.monotonic() - start


# -- several nodes at once ------------------------------------------------------------------------


def test_two_nodes_racing_for_one_name_one_wins(nodes):
    first, second = nodes(), nodes()

    async def race() -> list[object]:
        attempts = [node.register("popular", identity(), NOW) for node in (first, second) * 5]
        return await asyncio.gather(*attempts, return_exceptions=True)

    results = run(race())
    winners = [result for result in results if not isinstance(result, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(result, NameTaken) for result in results if result not in winners)
    assert [account.name for account in run(second.accounts())] == ["popular"]


def test_a_link_code_is_single_use_across_nodes(nodes):
    first, second = nodes(), nodes()
    account = run(first.register("alice", identity(), NOW))
    code = secrets.token_bytes(32)
    run(first.create_link_code(account.id, code, NOW + dt.timedelta(minutes=10)))

    async def race() -> list[object]:
        tries = [node.redeem_link_code(code, identity(), NOW) for node in (first, second) * 4]
        return await asyncio.gather(*tries)

    results = run(race())
    assert results.count(account) == 1
    assert results.count(None) == 7
    assert len(run(second.certificates(account.id))) == 2


def test_rate_limits_are_shared_between_nodes(nodes):
    first, second = nodes(), nodes()
    rate, burst = 1 / 60, 5

    async def flood() -> list[float]:
        takes = [
            node.take_token("register/address", "198.51.100.7", rate, burst, NOW)
            for node in (first, second) * 10
        ]
        return await asyncio.gather(*takes)

    waits = run(flood())
    assert waits.count(0.0) == burst  # not burst per node
    assert all(wait > 0 for wait in waits if wait)
    later = NOW + dt.timedelta(seconds=60)
    assert run(second.take_token("register/address", "198.51.100.7", rate, burst, later)) == 0
    assert run(first.take_token("register/address", "198.51.100.7", rate, burst, later)) > 0


def test_full_buckets_are_forgotten(nodes, monkeypatch):
    node = nodes()
    monkeypatch.setattr(postgres, "_SWEEP_EVERY", 3)
    for address in ("a", "b"):
        run(node.take_token("t", address, 1.0, 2, NOW))
    run(node.take_token("t", "c", 1.0, 2, NOW + dt.timedelta(seconds=10)))  # sweeps a and b
    with pg.admin_connection() as connection:
        schema = node.schema
        rows = connection.execute(f"SELECT key FROM {schema}.rate_buckets ORDER BY key").fetchall()
    assert rows == [("c",)]


# -- how a node learns of changes made elsewhere ----------------------------------------------


def test_a_ban_by_the_admin_cli_reaches_a_node_within_the_bound(nodes, url):
    """The real command in its own process, as an operator types it, against a caching node."""
    node = nodes()
    mallory = identity("mallory")

    async def scenario() -> float:
        await listening(node)
        assert await node.active_ban(mallory, None, NOW) is None  # cached from now on
        assert await node.active_ban(mallory, None, NOW) is None
        command = [sys.executable, "-m", "hospes", "ban", "--key", mallory.key_fingerprint]
        command += ["--reason", "spam", "--database", url]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr

        async def banned() -> bool:
            ban = await node.active_ban(mallory, None, NOW)
            return ban is not None and ban.reason == "spam"

        return await seen_within(banned, postgres.PROPAGATION.total_seconds())

    run(scenario())


def test_notifications_alone_bring_changes_in_milliseconds(nodes, monkeypatch):
    """With the counter checked only once a minute, only a notification can tell the node."""
    monkeypatch.setattr(postgres, "CHECK_INTERVAL", 60.0)
    node, admin = nodes(), nodes()
    target = identity()

    async def scenario() -> list[float]:
        await listening(node, admin)
        delays = []
        for round_number in range(5):
            assert await node.is_allowed(["crew"], target) is (round_number % 2 == 1)
            if round_number % 2 == 0:
                await admin.allow("crew", target.fingerprint)
            else:
                await admin.disallow("crew", target.fingerprint)
            expected = round_number % 2 == 0

            async def changed(expected: bool = expected) -> bool:
                return await node.is_allowed(["crew"], target) is expected

            delays.append(await seen_within(changed, postgres.PROPAGATION.total_seconds()))
        return delays

    delays = run(scenario())
    assert sorted(delays)[len(delays) // 2] < 0.5  # a median: the machine is shared


def test_a_lost_notification_is_caught_by_the_change_counter(nodes, monkeypatch):
    """A change that sends no notification (triggers off) is seen at the next counter check."""
    monkeypatch.setattr(postgres, "CHECK_INTERVAL", 0.2)
    node = nodes()
    account = run(node.register("alice", identity(), NOW))
    alice = identity(key=None)
    run(node.add_certificate(account.id, alice, NOW))

    async def scenario() -> float:
        await listening(node)
        assert await node.active_ban(alice, account, NOW) is None
        with pg.admin_connection() as connection:
            connection.execute("SET session_replication_role = replica")  # no triggers
            schema = node.schema
            connection.execute(
                f"INSERT INTO {schema}.bans (kind, value, reason, created) "
                "VALUES ('account', %s, 'quiet', %s)",
                (str(account.id), NOW),
            )
            assert await node.active_ban(alice, account, NOW) is None  # cached, not told
            connection.execute(f"UPDATE {schema}.changes SET n = n + 1")

        async def banned() -> bool:
            return await node.active_ban(alice, account, NOW) is not None

        return await seen_within(banned, 0.2 + postgres.CHECK_TIMEOUT)

    run(scenario())


def test_while_the_watch_is_down_nothing_is_cached_and_it_comes_back(nodes):
    node, admin = nodes(), nodes()
    target = identity()

    async def scenario() -> None:
        await listening(node, admin)
        pid = node.watch.backend_pid
        assert pid is not None
        assert await node.is_allowed(["crew"], target) is False
        with pg.admin_connection() as connection:
            connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await seen_within(lambda: _true(not node.watch.live), 5.0)
        # Not listening: every read goes to the database, so a change is seen at once.
        await admin.allow("crew", target.fingerprint)
        assert await node.is_allowed(["crew"], target) is True
        await asyncio.wait_for(node.watch.connected.wait(), 10)
        assert node.watch.backend_pid not in (None, pid)
        await admin.disallow("crew", target.fingerprint)
        await seen_within(
            lambda: _negate(node.is_allowed(["crew"], target)), postgres.PROPAGATION.total_seconds()
        )

    run(scenario())


def test_last_seen_updates_and_other_schemas_do_not_empty_the_caches(nodes):
    node, other_node = nodes(), nodes()
    alice = identity()
    run(other_node.register("alice", alice, NOW))

    async def scenario() -> None:
        await listening(node)
        count = node.watch.count
        # An hour later, recognising writes last_seen: no node needs to forget anything.
        assert await other_node.recognise(alice, NOW + dt.timedelta(hours=2)) is not None
        records = await node.certificates(1)
        assert records[0].last_seen == NOW + dt.timedelta(hours=2)
        # A change in another schema of the same database is not ours either.
        with pg.schema() as elsewhere:
            stranger = PostgresStore(elsewhere)
            try:
                await stranger.register("bob", identity(), NOW)
            finally:
                await stranger.close()
        await asyncio.sleep(0.3)
        assert node.watch.count == count
        await other_node.ban(BanKind.KEY, alice.key_fingerprint, "now it counts", NOW)
        bound = postgres.PROPAGATION.total_seconds()
        await seen_within(lambda: _true(node.watch.count > count), bound)

    run(scenario())


async def _true(value: bool) -> bool:
    return value


async def _negate(awaitable: object) -> bool:
    return not await awaitable  # type: ignore[misc]


# -- opening, migrations, errors ------------------------------------------------------------------


def test_migrations_are_recorded_and_applied_once_by_nodes_starting_together(url):
    from hospes.store.postgres_migrations import MIGRATIONS  # noqa: PLC0415

    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(PostgresStore(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert not errors
        assert len(stores) == 4
        with pg.admin_connection() as connection:
            schema = stores[0].schema
            rows = connection.execute(f"SELECT version FROM {schema}.hospes_schema").fetchall()
        assert rows == [(len(MIGRATIONS),)]
    finally:
        for store in stores:
            run(store.close())


def test_a_newer_schema_is_refused_with_advice(url):
    run(PostgresStore(url).close())
    name = url.rpartition("%3D")[2]
    with pg.admin_connection() as connection:
        connection.execute(f"UPDATE {name}.hospes_schema SET version = version + 1")
    with pytest.raises(StoreError, match="upgrade hospes"):
        PostgresStore(url)


def test_read_only_commands_refuse_an_empty_schema(url):
    with pytest.raises(StoreError, match="no identity store"):
        PostgresStore(url, create=False)
    name = url.rpartition("%3D")[2]
    with pg.admin_connection() as connection:
        row = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (name,)
        ).fetchone()
    assert row == (0,)  # nothing was created
    run(PostgresStore(url).close())
    run(PostgresStore(url, create=False).close())


def test_clear_errors_without_the_password():
    pg.require()
    with pytest.raises(StoreError, match="no schema") as missing:
        PostgresStore(pg.url_for("hospes_no_such_schema_here"))
    assert "CREATE SCHEMA" in str(missing.value)
    started = time.monotonic()
    with pytest.raises(StoreError) as down:
        PostgresStore("postgresql://hospes:s3cret@127.0.0.1:1/hospes")
    assert time.monotonic() - started < 10
    assert "s3cret" not in str(down.value)
    assert "hospes:***@127.0.0.1:1" in str(down.value)
    with pytest.raises(StoreError, match=r"cannot use the database postgresql://\[::1/x: .*IPv6"):
        PostgresStore("postgresql://[::1/x")


def test_one_event_loop_per_store(nodes):
    node = nodes()
    run(node.accounts())

    async def elsewhere() -> None:
        await node.accounts()

    with pytest.raises(StoreError, match="another event loop"):
        asyncio.run(elsewhere())


def test_a_broken_connection_is_a_store_error_then_the_pool_recovers(nodes):
    node = nodes()

    async def scenario() -> int:
        await listening(node)
        row = await node._one("SELECT pg_backend_pid()", ())
        assert row is not None
        with pg.admin_connection() as connection:
            connection.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        failures = 0
        for _ in range(3):
            try:
                assert await node.accounts() == []
            except StoreError as exc:
                assert "terminat" in str(exc) or "closed" in str(exc) or "connection" in str(exc)
                failures += 1
        assert await node.accounts() == []
        return failures

    assert run(scenario()) <= 1


def test_database_urls():
    assert is_database_url("postgresql://db/hospes")
    assert is_database_url("postgres://db/hospes")
    assert not is_database_url("/var/lib/hospes/hospes.sqlite3")
    assert redact("postgresql://hospes:pa%40ss@db:5432/x") == "postgresql://hospes:***@db:5432/x"
    assert (
        redact("postgresql://db/x?user=h&password=p%26q") == "postgresql://db/x?user=h&password=***"
    )
    assert redact("postgresql://hospes@db/x") == "postgresql://hospes@db/x"
