"""A real server attacked over loopback: slowloris, caps, deny lists, deadlines, garbage, 44.

Attackers use their own loopback addresses (127.0.0.2 and up) and the
well-behaved client 127.0.0.1, with loopback not trusted, so the per-address
caps, rate limits and blocks apply as they would on the Internet.

Tests of deadlines, eviction, refills and blocks give the server a
:class:`ManualClock` and move it (``server.advance``, which also runs the
deadline sweep) instead of sleeping: the connections are real, only time is
driven.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
import time

import pytest

from hospes.app.request import Request
from hospes.app.response import Response
from hospes.app.routing import Application
from hospes.config import Config, HostConfig
from hospes.policy.clock import ManualClock
from hospes.policy.ratelimit import RateRule
from hospes.server import Limits, Stats
from hostile import (
    client_hello,
    connect,
    open_fds,
    read_all,
    refused_at_accept,
    request,
    reset,
    tls_connect,
    wait_for,
)

BIG = 32 * 1024 * 1024
FAST = 64 * 1024 * 1024


def make_app() -> Application:
    app = Application()
    app.add_route("/", lambda request: "home\n")
    app.add_route("/limited", lambda request: "limited\n")
    app.add_route("/big", lambda request: b"x" * BIG)

    async def stream(request: Request) -> Response:
        async def chunks():
            for _ in range(BIG // 65536):
                yield b"y" * 65536

        return Response.success(chunks(), "application/octet-stream")

    async def stall(request: Request) -> str:
        await asyncio.Event().wait()  # never set: only the response deadline ends this
        return "too late\n"

    app.add_route("/stream", stream)
    app.add_route("/stall", stall)
    return app


def hostile(rate_limits: list[RateRule] | None = None, deny=(), **limits) -> Config:
    """Loopback not trusted, so every limit applies to the test's clients."""
    return Config(
        hosts=[HostConfig("localhost")],
        limits=Limits(trusted=(), **limits),
        rate_limits=rate_limits if rate_limits is not None else [],
        deny=tuple(deny),
    )


class FdCount:
    """Counts this process's descriptors from a mark (taken once the server runs) to the end."""

    def __init__(self) -> None:
        self.before: int | None = None

    def mark(self) -> None:
        self.before = open_fds()

    def check(self) -> None:
        assert self.before is not None, "the test never marked its baseline"
        assert wait_for(lambda: open_fds() == self.before, 5), (self.before, open_fds())


@pytest.fixture
def serve_checked(serve):
    """Starts servers through ``serve`` and fails the test if it leaves a descriptor open.

    Torn down before ``serve``: the count is compared while the server still runs.
    """
    count = FdCount()

    def start(*args, **kwargs):
        server = serve(*args, **kwargs)
        # Warm up: the first request opens what the server keeps open (store, caches).
        request(server.port, server.url("/"), "127.0.0.250")
        assert wait_for(lambda: server.server.connection_count == 0)
        server.server.stats = Stats()
        count.mark()
        return server

    yield start
    count.check()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset, after whatever it sends) in time.

    ``sock`` may be a TLS socket: the session tickets a server sends after the
    handshake are read, not mistaken for a close.
    """
    deadline = time.monotonic() + seconds
    timeout = sock.gettimeout()
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                if sock.recv(4096) == b"":
                    return True
            except TimeoutError:
                return False
            except (ConnectionResetError, ssl.SSLError):
                return True
    finally:
        sock.settimeout(timeout)


def advance_until(server, seconds: float, condition, timeout: float = 10) -> bool:
    """Advance the server's clock by ``seconds`` (and sweep) until ``condition()`` holds.

    For a deadline whose start the test cannot see (a write blocks when the
    client's buffers are full): the other deadlines must be much longer.
    """
    return wait_for(lambda: server.advance(seconds) or condition(), timeout)


# -- slowloris and connection caps -------------------------------------------------------------


def test_slowloris_hundreds_of_trickling_connections(serve_checked):
    limits = {"handshake_timeout": 2.5, "request_timeout": 3.5, "max_connections_per_address": 30}
    server = serve_checked(make_app(), config=hostile(**limits), clock=ManualClock())
    stats = server.server.stats
    hello = client_hello()
    half_open, handshaken = [], []
    for source in range(2, 12):
        address = f"127.0.0.{source}"
        for index in range(30):
            if index % 2:
                handshaken.append(tls_connect(server.port, address))
            else:
                half_open.append(connect(server.port, address))
    attackers = half_open + handshaken
    assert wait_for(lambda: server.server.connection_count == 300, 5)
    url = server.url("/")
    latencies = []
    try:
        for step in range(12):
            # Each attacker sends one more byte of its ClientHello or request line.
            for sock in half_open:
                with contextlib.suppress(OSError):
                    sock.send(hello[step : step + 1])
            for tls in handshaken:
                with contextlib.suppress(OSError, ssl.SSLError):
                    tls.send(url.encode()[step : step + 1])
            start = time.monotonic()
            response = request(server.port, url)
            latencies.append(time.monotonic() - start)
            assert response.status == 20
            server.advance(0.2)
        # 2.4 s after accept, every attacker is still in...
        assert wait_for(lambda: server.server.connection_count == 300)
        assert stats.dropped.total() == 0
        # ...and the deadlines count from accept: trickling did not extend them.
        server.advance(0.15)
        assert wait_for(lambda: server.server.connection_count == 150)
        assert stats.dropped == {"handshake_timeout": 150}
        server.advance(1.0)
        assert wait_for(lambda: server.server.connection_count == 0)
    finally:
        for sock in attackers:
            sock.close()
    assert stats.dropped["handshake_timeout"] >= 15  # the half ClientHellos, at least0
    assert stats.dropped["request_timeout"] == 150
    assert stats.responses[20] == 12
    # A bound against starvation, not a speed target: each request is a handful of ms.
    assert max(latencies) < 2.0, latencies


def test_per_address_cap_refuses_before_the_handshake(serve_checked):
    server = serve_checked(make_app(), config=hostile(max_connections_per_address=5))
    idle = [connect(server.port, "127.0.0.2") for _ in range(5)]
    try:
        assert wait_for(lambda: server.server.connection_count == 5)
        assert refused_at_accept(server.port, "127.0.0.2")
        assert server.server.stats.refused["max_connections_per_address"] == 1
        assert request(server.port, server.url("/"), "127.0.0.3").status == 20
    finally:
        for sock in idle:
            sock.close()
    assert wait_for(lambda: server.server.connection_count == 0)
    assert request(server.port, server.url("/"), "127.0.0.2").status == 20
    assert server.server.stats.accepted == 7


def test_global_cap_full_of_idle_connections_still_serves_newcomers(serve_checked):
    server = serve_checked(make_app(), config=hostile(max_connections=10), clock=ManualClock())
    stats = server.server.stats
    idle = [connect(server.port, "127.0.0.2") for _ in range(10)]
    try:
        assert wait_for(lambda: server.server.connection_count == 10)
        # Young connections are not displaced: at the cap, a flood is refused.
        assert refused_at_accept(server.port, "127.0.0.3")
        server.advance(0.9)
        assert refused_at_accept(server.port, "127.0.0.3")
        assert stats.refused["max_connections"] == 2
        server.advance(0.2)
        # Idle for over a second without a request: the oldest makes way for a newcomer.
        assert request(server.port, server.url("/"), "127.0.0.3").status == 20
        assert stats.dropped["evicted"] == 1
        assert idle[0].recv(1) == b""
    finally:
        for sock in idle:
            sock.close()


def test_deny_list_by_address_and_cidr(serve_checked):
    server = serve_checked(make_app(), config=hostile(deny=["127.0.0.2", "127.0.1.0/24"]))
    assert refused_at_accept(server.port, "127.0.0.2")
    assert refused_at_accept(server.port, "127.0.1.77")
    assert request(server.port, server.url("/"), "127.0.0.3").status == 20
    assert server.server.stats.refused["denied"] == 2
    assert server.server.stats.accepted == 1


def test_deny_list_ipv6_on_a_dual_stack_listener(serve_checked):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = serve_checked(make_app(), config=hostile(deny=["::1/128"]), host="::")
    except OSError:
        pytest.skip("cannot bind ::")
    assert refused_at_accept(server.port, "::1")
    # IPv4 through the dual-stack socket arrives as ::ffff:127.0.0.1, matched as IPv4.
    assert request(server.port, server.url("/"), "127.0.0.1").status == 20
    assert server.server.stats.refused["denied"] == 1


# -- deadlines ----------------------------------------------------------------------------------


def test_client_hello_one_byte_at_a_time_hits_the_handshake_deadline(serve_checked):
    server = serve_checked(make_app(), config=hostile(handshake_timeout=1.0), clock=ManualClock())
    hello = client_hello()
    with connect(server.port) as sock:
        assert wait_for(lambda: server.server.connection_count == 1)
        for index in range(9):  # a byte every 0.1 s: still in the handshake at 0.9 s
            sock.send(hello[index : index + 1])
            server.advance(0.1)
            assert not closed_within(sock, 0)
        server.advance(0.15)
        assert closed_within(sock, 5)
    assert server.server.stats.dropped == {"handshake_timeout": 1}


def test_request_trickle_does_not_extend_the_request_deadline(serve_checked):
    server = serve_checked(make_app(), config=hostile(request_timeout=1.5), clock=ManualClock())
    with tls_connect(server.port) as tls:
        line = server.url("/" + "a" * 200).encode()
        for byte in line[:14]:  # a byte every 0.1 s, 1.4 s from accept: still open
            tls.send(bytes([byte]))
            server.advance(0.1)
            assert not closed_within(tls, 0)
        server.advance(0.15)
        assert closed_within(tls, 5)
    assert server.server.stats.dropped == {"request_timeout": 1}


@pytest.mark.parametrize("path", ["/big", "/stream"])
def test_client_that_never_reads_hits_the_write_deadline(serve_checked, path):
    # 32 MiB at 64 MiB/s plus a 0.5 s floor: a budget of at most 1 s of blocked writes;
    # every other deadline is a minute away.
    others = {"handshake_timeout": 60, "request_timeout": 60, "response_timeout": 60}
    config = hostile(write_timeout=0.5, write_rate=FAST, **others)
    server = serve_checked(make_app(), config=config, clock=ManualClock())
    stats = server.server.stats
    with tls_connect(server.port) as tls:
        tls.sendall(server.url(path).encode() + b"\r\n")
        assert advance_until(server, 0.6, lambda: stats.dropped["write_timeout"] == 1)
        assert stats.dropped == {"write_timeout": 1}
    assert wait_for(lambda: any("20+write_timeout" in line for line in server.log_lines))


def test_a_reader_keeping_up_gets_the_whole_big_response(serve_checked):
    server = serve_checked(make_app(), config=hostile(write_timeout=0.5, write_rate=FAST))
    for path in ("/big", "/stream"):
        with tls_connect(server.port, timeout=10) as tls:
            tls.sendall(server.url(path).encode() + b"\r\n")
            data = read_all(tls)
        assert data.startswith(b"20 ")
        assert len(data.partition(b"\r\n")[2]) == BIG
    assert server.server.stats.dropped.total() == 0


def test_handler_that_never_answers_hits_the_response_deadline(serve_checked):
    config = hostile(response_timeout=0.5, handshake_timeout=60, request_timeout=60)
    server = serve_checked(make_app(), config=config, clock=ManualClock())
    stats = server.server.stats
    with tls_connect(server.port) as tls:
        tls.sendall(server.url("/stall").encode() + b"\r\n")
        assert advance_until(server, 0.6, lambda: stats.dropped["response_timeout"] == 1)
        with contextlib.suppress(ssl.SSLError, OSError):
            assert tls.recv(100) == b""
    assert stats.dropped == {"response_timeout": 1}
    assert wait_for(lambda: any('/stall" response_timeout' in line for line in server.log_lines))


def test_client_resetting_mid_response_harms_nobody(serve_checked):
    server = serve_checked(make_app(), config=hostile())
    for _ in range(3):
        tls = tls_connect(server.port)
        tls.sendall(server.url("/big").encode() + b"\r\n")
        assert tls.recv(3) == b"20 "
        reset(tls)
    assert wait_for(lambda: server.server.stats.dropped["reset_during_response"] == 3)
    assert request(server.port, server.url("/")).status == 20
    assert wait_for(lambda: server.server.connection_count == 0)


# -- garbage on the TLS port ----------------------------------------------------------------------


GARBAGE = [
    b"gemini://localhost/\r\n",  # plain text on the TLS port
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"\x16\x03\x01\xff\xff" + b"\x01" * 300,  # a handshake record of 64 KiB that never comes
    b"\x16\x03\x03\x00\x05\x01\xff\xff\xff\xff",  # a ClientHello claiming 16 MiB
    b"\x80\x2e\x01\x00\x02" + b"\x00" * 45,  # an SSLv2 hello
    b"\x15\x03\x03\x00\x02\x02\x28",  # a fatal alert before anything else
    bytes(range(256)) * 16,
]


@pytest.mark.parametrize("payload", GARBAGE, ids=lambda payload: repr(payload[:12]))
def test_garbage_on_the_tls_port_is_dropped_at_once(serve_checked, payload):
    server = serve_checked(make_app(), config=hostile(handshake_timeout=5), clock=ManualClock())
    with connect(server.port) as sock:
        sock.sendall(payload)
        # A record that announces 64 KiB and never comes: OpenSSL may refuse the length at
        # once, or wait for the rest, which only the handshake deadline ends.
        if payload.startswith(b"\x16\x03\x01\xff\xff") and not closed_within(sock, 0.2):
            server.advance(5.1)
            assert server.server.stats.dropped == {"handshake_timeout": 1}
        # With the clock standing still, a close can only be a rejection, not a deadline.
        assert closed_within(sock, 5)
    assert request(server.port, server.url("/")).status == 20
    assert server.server.stats.dropped.total() == 1


def test_random_garbage_from_many_clients_leaves_the_server_serving(serve_checked):
    server = serve_checked(make_app(), config=hostile(handshake_timeout=1), clock=ManualClock())
    stats = server.server.stats
    hello = client_hello()
    socks = []
    for index in range(60):
        if index % 10 == 0:
            assert request(server.port, server.url("/")).status == 20
        sock = connect(server.port, f"127.0.0.{2 + index % 10}")
        kind = index % 4
        if kind == 0:
            sock.sendall(os.urandom(1 + index * 37))
        elif kind == 1:
            sock.sendall(hello[: len(hello) // 2])  # half a ClientHello, then nothing
        elif kind == 2:
            sock.sendall(hello[:40])
            reset(sock)  # reset mid-handshake
            continue
        else:
            sock.sendall(hello)
            sock.shutdown(socket.SHUT_WR)  # a FIN right after the hello
        socks.append(sock)
    try:
        assert wait_for(lambda: stats.accepted == 66)
        server.advance(1.1)  # the half ClientHellos reach the handshake deadline
        assert wait_for(lambda: server.server.connection_count == 0, 5)
    finally:
        for sock in socks:
            sock.close()
    assert stats.responses[20] == 6
    assert stats.dropped.total() == 60
    assert stats.dropped["handshake_timeout"] >= 15  # the half ClientHellos, at least


def test_client_initiated_renegotiation_is_refused(serve):
    """A client must not make the server do handshake after handshake on one connection."""
    openssl = pytest.importorskip("OpenSSL.SSL")
    server = serve(make_app(), config=hostile())
    context = openssl.Context(openssl.TLS_CLIENT_METHOD)
    context.set_max_proto_version(openssl.TLS1_2_VERSION)
    with connect(server.port) as sock:
        sock.setblocking(True)
        tls = openssl.Connection(context, sock)
        tls.set_tlsext_host_name(b"localhost")
        tls.set_connect_state()
        tls.do_handshake()
        with pytest.raises(openssl.Error):
            tls.renegotiate()
            tls.do_handshake()
            tls.send(server.url("/").encode() + b"\r\n")
            tls.recv(100)
    assert wait_for(lambda: server.server.connection_count == 0)


# -- rate limits and blocks -----------------------------------------------------------------------


def test_44_with_an_integer_meta_then_served_again(serve_checked):
    rules = [RateRule("/limited", per_address=1.0, burst=2)]
    server = serve_checked(make_app(), config=hostile(rules), clock=ManualClock())
    url = server.url("/limited")
    assert [request(server.port, url).status for _ in range(2)] == [20, 20]
    slowed = request(server.port, url)
    assert slowed.status == 44
    assert re.fullmatch(r"[1-9][0-9]*", slowed.meta), slowed.header
    assert slowed.body == b""
    # Other paths have no rule here, and other addresses their own buckets.
    assert request(server.port, server.url("/")).status == 20
    assert request(server.port, url, "127.0.0.2").status == 20
    wait = int(slowed.meta)
    server.advance(wait / 2)
    assert request(server.port, url).status == 44  # not refilled before the wait it was told
    server.advance(wait / 2)
    assert request(server.port, url).status == 20
    assert wait_for(lambda: any(f'"{url}" 44 0 ' in line for line in server.log_lines))


def test_per_key_limit_follows_the_key_across_addresses_and_renewals(serve, certs):
    rules = [RateRule("/", per_key=0.01, burst=2)]
    server = serve(make_app(), config=hostile(rules))
    alice, bob = certs.make("alice"), certs.make("bob")
    url = server.url("/")
    assert request(server.port, url, "127.0.0.2", cert=alice).status == 20
    assert request(server.port, url, "127.0.0.3", cert=alice).status == 20
    assert request(server.port, url, "127.0.0.4", cert=alice).status == 44
    assert request(server.port, url, "127.0.0.4", cert=certs.renewal(alice)).status == 44
    assert request(server.port, url, "127.0.0.4", cert=bob).status == 20
    assert request(server.port, url, "127.0.0.4").status == 20  # no certificate, no key limit


def test_malformed_requests_count_against_the_address(serve):
    server = serve(make_app(), config=hostile([RateRule("/", per_address=0.01, burst=3)]))
    statuses = [request(server.port, b"not a url\r\n").status for _ in range(4)]
    assert statuses == [59, 59, 59, 44]


def test_client_ignoring_44_is_blocked_for_doubling_periods(serve, caplog):
    caplog.set_level(logging.WARNING, logger="hospes.server")
    config = hostile(
        [RateRule("/", per_address=0.2, burst=1)], block_after=3, block_first=1, block_longest=8
    )
    server = serve(make_app(), config=config, clock=ManualClock())
    stats = server.server.stats
    url = server.url("/")
    source = "127.0.0.2"

    def hammer() -> list[int]:
        """Requests without honouring 44, until the server stops accepting them."""
        statuses = []
        for _ in range(10):
            try:
                statuses.append(request(server.port, url, source).status)
            except (ConnectionResetError, ssl.SSLError, OSError):
                break
        return statuses

    assert hammer() == [20, 44, 44, 44, 44]
    assert stats.blocks == 1
    assert refused_at_accept(server.port, source)
    assert request(server.port, url, "127.0.0.3").status == 20  # others unaffected
    server.advance(0.9)
    assert refused_at_accept(server.port, source)
    server.advance(0.2)
    assert not refused_at_accept(server.port, source)
    # Still ignoring 44 after the block: blocked again, for twice as long.
    assert hammer() == [44, 44, 44]
    assert stats.blocks == 2
    server.advance(1.9)
    assert refused_at_accept(server.port, source)
    server.advance(0.2)
    assert not refused_at_accept(server.port, source)
    assert stats.refused["blocked"] >= 2
    messages = [record.getMessage() for record in caplog.records]
    assert "blocking 127.0.0.2 for 1 s: it kept ignoring 44 (slow down)" in messages
    assert "blocking 127.0.0.2 for 2 s: it kept ignoring 44 (slow down)" in messages


def test_a_client_honouring_44_is_never_blocked(serve):
    config = hostile([RateRule("/", per_address=2.0, burst=1)], block_after=1, block_first=60)
    server = serve(make_app(), config=config, clock=ManualClock())
    url = server.url("/")
    statuses = []
    for _ in range(6):
        response = request(server.port, url)
        statuses.append(response.status)
        if response.status == 44:
            server.advance(int(response.meta))
    assert statuses == [20, 44] * 3
    assert server.server.stats.blocks == 0
    assert request(server.port, url).status == 20


def test_trusted_addresses_are_neither_capped_nor_limited(serve):
    config = hostile([RateRule("/", per_address=0.01, burst=1)], max_connections_per_address=1)
    config.limits = Limits(trusted=("127.0.0.0/24",), max_connections_per_address=1)
    server = serve(make_app(), config=config)
    idle = connect(server.port, "127.0.0.2")
    try:
        assert [request(server.port, server.url("/"), "127.0.0.2").status for _ in range(3)] == [
            20,
            20,
            20,
        ]
        assert request(server.port, server.url("/"), "127.0.1.2").status == 20
        assert request(server.port, server.url("/"), "127.0.1.2").status == 44
    finally:
        idle.close()
