"""The injected clock: ``ManualClock`` itself, and every place that reads time reading it.

The servers here are real (TLS over loopback); only their time is driven.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from helpers import raw_request
from hospes.app.access import AccessRule, Requirement
from hospes.app.routing import Application
from hospes.config import Config, HostConfig
from hospes.policy.clock import Clock, ManualClock
from hospes.policy.ratelimit import Blocks, RateLimiter
from hospes.server import Limits
from hostile import wait_for


def test_manual_clock_stands_still_until_advanced():
    clock = ManualClock()
    assert clock() == clock() == 1000.0
    clock.advance(0.25)
    assert clock() == 1000.25
    clock.advance(0)
    assert clock() == 1000.25
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)
    assert clock() == 1000.25
    assert ManualClock(5.0)() == 5.0
    assert repr(ManualClock(5.0)) == "ManualClock(5.0)"


def test_the_system_clock_is_a_clock():
    clock: Clock = time.monotonic
    assert clock() <= time.monotonic()


def test_token_bucket_refills_with_the_clock_only():
    clock = ManualClock()
    limiter = RateLimiter(rate=2.0, burst=2, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    time.sleep(0.01)  # real time passing changes nothing
    assert limiter.take("a") == 0.5
    clock.advance(0.5)
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == 0.5


def test_blocks_end_with_the_clock_only():
    clock = ManualClock()
    blocks = Blocks(after=1, first=10, clock=clock)
    blocks.refused("a", 5)
    assert blocks.refused("a", 5) == 10
    assert blocks.blocked("a") == 10
    clock.advance(4)
    assert blocks.blocked("a") == 6
    clock.advance(6)
    assert blocks.blocked("a") == 0


def test_the_periodic_sweep_reads_the_servers_clock(serve):
    server = serve(limits=Limits(handshake_timeout=0.3), clock=ManualClock())
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert wait_for(lambda: server.server.connection_count == 1)
        # Real time passes: the timer sweeps twice at least, and nothing has expired.
        time.sleep(0.6)
        assert server.server.connection_count == 1
        server.clock.advance(0.2)
        time.sleep(0.3)
        assert server.server.connection_count == 1
        # The clock passes the deadline: the next sweep, the timer's or ours, closes it.
        server.advance(0.2)
        assert sock.recv(100) == b""
    assert server.server.stats.dropped == {"handshake_timeout": 1}


def test_store_failures_are_logged_once_a_minute_of_the_servers_clock(serve, certs, caplog):
    app = Application()
    app.add_route("/members/page", lambda request: "members\n")
    config = Config(
        hosts=[HostConfig("localhost")], access=[AccessRule("/members/", Requirement.ACCOUNT)]
    )
    server = serve(app, config=config, clock=ManualClock())
    alice = certs.make()
    server.call(server.server.dispatcher.store.close)
    caplog.set_level(logging.ERROR, logger="hospes.app")

    def logged() -> int:
        return sum("identity store unavailable" in r.getMessage() for r in caplog.records)

    def guarded() -> int:
        return raw_request(server.port, server.url("/members/page"), cert=alice).status

    assert [guarded() for _ in range(3)] == [40, 40, 40]
    assert logged() == 1
    server.advance(59.5)
    assert guarded() == 40
    assert logged() == 1
    server.advance(0.5)
    assert guarded() == 40
    assert logged() == 2
