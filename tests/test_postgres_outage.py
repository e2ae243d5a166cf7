"""The PostgreSQL store goes away under a running ``hospes serve``, and comes back.

Everything is real: a database of the test's own on the machine's PostgreSQL
(other tests share ``test``, so the outage is made on this one only), a
``hospes serve --database URL`` process, the admin CLI in processes of their
own, and requests over TLS with a client certificate made here.  The outage
is what a database restart or a lost network looks like to a node: every
session of the database is terminated and new ones are refused
(``ALLOW_CONNECTIONS false``) for :data:`OUTAGE` seconds.

What ``docs/deployment.md`` and :mod:`hospes.store.postgres` promise, and
this test checks: public pages keep answering; pages that need the store
answer ``40`` within the pool's timeout; nothing is answered from the cache
while the change watch is down; the outage is logged once (once a minute);
the process stays up; when the database is back the node serves members again
by itself, its watch listens again, and a ban made then by the CLI applies
within the stated bound (3 s).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import pg
from helpers import (
    CertFactory,
    CertFiles,
    Hospes,
    RawResponse,
    identity_of,
    raw_request,
    serve_process,
)
from hospes.app.dispatch import STORE_RETRY

postgres = pytest.importorskip("hospes.store.postgres")

pytestmark = pytest.mark.slow

HOSPES = [sys.executable, "-m", "hospes"]
OUTAGE = 16.0
"""Seconds the database refuses connections.  Long enough for psycopg_pool's own
reconnection pauses (1, 2, 4, 8, 16 s: attempts about 1, 3, 7, 15 and 31 s after the loss)
to leave a node without a connection for about 15 s after the database is back; with
``POOL_RECONNECT`` the pool gives up an attempt after 5 s and the next query tries at once."""
SLACK = 1.5
"""Seconds allowed on top of a bound for TLS, a process start, a busy 2-core machine."""
UNAVAILABLE = "the identity store is unavailable"
WATCH_DOWN = "identity store: not told of changes"
WATCH_UP = "identity store: listening for changes"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOSPES, *args], capture_output=True, text=True, timeout=60, check=False)


def timed(port: int, path: str, cert: CertFiles | None) -> tuple[RawResponse, float]:
    """One request over a new TLS connection, and the seconds it took."""
    start = time.monotonic()
    response = raw_request(port, f"gemini://localhost:{port}{path}", cert=cert, timeout=30)
    return response, time.monotonic() - start


def count(process: Hospes, text: str) -> int:
    return sum(text in line for line in list(process.stderr))


def wait_for_count(process: Hospes, text: str, expected: int, timeout: float) -> float:
    """Seconds until ``text`` is in ``expected`` lines of the server's log (at most ``timeout``)."""
    start = time.monotonic()
    while count(process, text) < expected:
        assert time.monotonic() - start < timeout, (
            f"{text!r} not logged {expected} times within {timeout} s: " + "\n".join(process.stderr)
        )
        time.sleep(0.02)
    return time.monotonic() - start


def capsule(tmp_path: Path) -> Path:
    """A root with a public page and a members' page, account pages under /account/."""
    root = tmp_path / "root"
    (root / "members").mkdir(parents=True)
    (root / "index.gmi").write_text("# public\n")
    (root / "members" / "index.gmi").write_text("# members only\n")
    config = tmp_path / "hospes.toml"
    config.write_text(
        f'root = "{root}"\n'
        '[accounts]\nmount = "/account/"\nmembers_url = "/members/"\n'
        '[[access]]\npath = "/members/"\nrequire = "account"\n'
    )
    return config


def test_a_database_outage_and_its_end_under_a_running_server(tmp_path):
    with pg.database("hospes_outage") as (name, url):
        _scenario(name, url, tmp_path)


def _scenario(name: str, url: str, tmp_path: Path) -> None:
    pool_timeout, reconnect = postgres.POOL_TIMEOUT, postgres.POOL_RECONNECT
    propagation = postgres.PROPAGATION.total_seconds()
    watch_pause = postgres._RETRY_LONGEST  # the longest pause between the watch's attempts
    certs = CertFactory(tmp_path)
    alice = certs.make("alice")
    arguments = ["--config", str(capsule(tmp_path)), "--state", str(tmp_path / "state")]
    arguments += ["--database", url, "--access-log", "off", "--log-level", "debug"]
    server = serve_process(arguments)
    port = server.port
    try:
        created = cli(
            "accounts", "create", "alice", identity_of(alice).fingerprint, "--database", url
        )
        assert created.returncode == 0, created.stderr
        for _ in range(3):  # the account and "no ban" are now in the node's cache
            members, _ = timed(port, "/members/", alice)
            assert (members.status, members.body) == (20, b"# members only\n"), members.header
        overview, _ = timed(port, "/account/", alice)
        assert overview.status == 20 and b"# alice" in overview.body, overview.body
        wait_for_count(server, WATCH_UP, 1, 5)

        # -- the outage: every session terminated, new ones refused --------------------
        with pg.admin_connection() as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            cursor = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            assert len(cursor.fetchall()) >= 2  # the pool's and the watch's, at least
        lost = time.monotonic()
        # The watch learns of it within the stated bound; from then on nothing is cached.
        assert wait_for_count(server, WATCH_DOWN, 1, propagation + SLACK) >= 0
        public, took = timed(port, "/", None)
        assert (public.status, public.body) == (20, b"# public\n")
        assert took < SLACK, f"the public page took {took:.2f} s"
        for _ in range(2):
            members, took = timed(port, "/members/", alice)
            assert members.status == 40 and UNAVAILABLE in members.meta, members.header
            assert took < pool_timeout + SLACK, f"a 40 after {took:.2f} s"
        # The account pages: the visitor's account is unknown, not absent (never "no account").
        overview, took = timed(port, "/account/", alice)
        assert overview.status == 40 and UNAVAILABLE in overview.meta, overview.header
        assert took < pool_timeout + SLACK, f"a 40 after {took:.2f} s"
        # With accounts mounted, a request with a certificate asks the store for its account;
        # just after a failure, a public page does without it and answers at once...
        public, took = timed(port, "/", alice)
        assert (public.status, public.body) == (20, b"# public\n")
        assert took < SLACK, f"the public page took {took:.2f} s right after a failure"
        # ...and once that window has passed, it asks again: after the pool's timeout at most.
        time.sleep(STORE_RETRY)
        public, took = timed(port, "/", alice)
        assert (public.status, public.body) == (20, b"# public\n")
        assert took < pool_timeout + SLACK, f"the public page took {took:.2f} s"
        public, took = timed(port, "/", alice)
        assert took < SLACK, f"the public page took {took:.2f} s right after a failure"
        while time.monotonic() - lost < OUTAGE:
            members, took = timed(port, "/members/", alice)
            assert members.status == 40, members.header
            assert took < pool_timeout + SLACK, f"a 40 after {took:.2f} s"
        assert server.poll() is None
        # Logged once a minute, by hospes and by psycopg's pool (each kind of its warnings).
        assert count(server, "ERROR hospes.app: identity store unavailable") == 1
        assert count(server, WATCH_DOWN) == 1
        refused = "WARNING psycopg.pool: error connecting in 'hospes'"
        assert count(server, refused) == 1, "\n".join(server.stderr)
        assert "not currently accepting connections" in next(
            line for line in server.stderr if refused in line
        )
        assert "Traceback" not in "\n".join(server.stderr)

        # -- the database is back: nothing restarted -----------------------------------
        with pg.admin_connection() as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        back = time.monotonic()
        while True:
            members, took = timed(port, "/members/", alice)
            if members.status == 20:
                break
            assert members.status == 40, members.header
            assert time.monotonic() - back < reconnect + SLACK, (
                f"still 40 {time.monotonic() - back:.1f} s after the database came back"
            )
        recovered = time.monotonic() - back
        assert recovered < reconnect + SLACK, f"members served again after {recovered:.1f} s"
        assert members.body == b"# members only\n"
        overview, _ = timed(port, "/account/", alice)
        assert overview.status == 20 and b"# alice" in overview.body, overview.header
        # The watch listens again (its pauses between attempts are at most _RETRY_LONGEST).
        wait_for_count(server, WATCH_UP, 2, watch_pause + SLACK - (time.monotonic() - back))
        for _ in range(2):  # answers cached again
            assert timed(port, "/members/", alice)[0].status == 20

        # A ban made now by the CLI reaches the node's answers within the stated bound.
        banned = cli("ban", "--account", "alice", "--reason", "spam", "--database", url)
        assert banned.returncode == 0, banned.stderr
        ban_done = time.monotonic()
        while True:
            members, _ = timed(port, "/members/", alice)
            if members.status == 61:
                break
            assert members.status == 20, members.header
            assert time.monotonic() - ban_done < propagation, "ban not enforced"
            time.sleep(0.05)
        assert "spam" in members.meta
        print(
            f"40s within {pool_timeout} s during the outage; members again {recovered:.2f} s "
            f"after the database came back; ban enforced {time.monotonic() - ban_done:.2f} s "
            "after the CLI returned"
        )
        assert server.poll() is None
    finally:
        code, _, stderr = server.stop()
    assert code == 0, stderr
    # The whole run is shorter than a minute: each kind of the pool's warnings once at most.
    pool = [line for line in stderr.splitlines() if "WARNING psycopg.pool" in line]
    assert stderr.count("WARNING psycopg.pool: error connecting") == 1, pool
    assert len(pool) <= 3, pool  # error connecting; discarding closed connection; gave up
