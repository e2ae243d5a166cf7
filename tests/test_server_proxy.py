"""A server behind a load balancer: PROXY headers on real connections, before real TLS.

The server trusts the proxy 127.0.0.1; clients of the test connect from it
(as the proxy) or from 127.0.0.2 (anyone else on the network).  The client
addresses in the headers are documentation addresses, which the server then
treats exactly as direct clients: logs, ``remote_address``, deny lists, rate
limits.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import ssl
import time

import pytest

from helpers import Hospes, RawResponse, serve_process
from hospes.app.routing import Application
from hospes.config import Config, HostConfig
from hospes.policy.addresses import AddressSet
from hospes.policy.clock import ManualClock
from hospes.policy.limits import Limits
from hospes.policy.ratelimit import RateRule
from hostile import wait_for
from test_proxy import v1, v2

PROXY = "127.0.0.1"
STRANGER = "127.0.0.2"


def make_app() -> Application:
    app = Application()
    app.add_route("/who", lambda request: f"{request.remote_address} {request.remote_port}\n")
    return app


def proxied_config(**fields: object) -> Config:
    return Config(hosts=[HostConfig("localhost")], proxy_from=(PROXY,), **fields)  # type: ignore[arg-type]


def exchange(
    port: int,
    preamble: bytes,
    line: str = "",
    *,
    source: str = PROXY,
    trickle: bool = False,
    timeout: float = 10,
) -> RawResponse:
    """Connect from ``source``, send ``preamble`` (the PROXY header), then one request over TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    ) as sock:
        if trickle:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in preamble:
                sock.sendall(bytes([byte]))
                time.sleep(0.002)
        else:
            sock.sendall(preamble)
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(f"{line or f'gemini://localhost:{port}/who'}\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    header, _, body = data.partition(b"\r\n")
    status, _, meta = header.decode().partition(" ")
    return RawResponse(header.decode(), body, int(status), meta)


def refused_before_tls(port: int, preamble: bytes, *, source: str = PROXY) -> bool:
    """Whether the server closes the connection without ever starting TLS.

    A reset may even reach ``connect()`` before it returns, on a busy machine.
    """
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=(source, 0)
        ) as sock:
            sock.sendall(preamble)
            return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def ended(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (an end of file or a reset)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def logged(server, text: str) -> bool:
    return wait_for(lambda: any(text in line for line in server.log_lines))


@pytest.fixture
def behind(serve):
    return serve(make_app(), config=proxied_config())


def test_v1_and_v2_headers_give_the_client_address_to_logs_and_handlers(behind):
    port = behind.port
    first = exchange(port, v1("TCP4", "203.0.113.7", "198.51.100.1", 40001, 1965))
    assert (first.status, first.body) == (20, b"203.0.113.7 40001\n")
    assert logged(behind, "203.0.113.7:40001")
    second = exchange(port, v2(("2001:db8::7", 40002), ("2001:db8::1", 1965)))
    assert (second.status, second.body) == (20, b"2001:db8::7 40002\n")
    assert logged(behind, "2001:db8::7:40002")
    # UNKNOWN: the proxy does not know; the connection's own address is used.
    unknown = exchange(port, b"PROXY UNKNOWN\r\n")
    assert unknown.status == 20
    assert unknown.body.startswith(b"127.0.0.1 ")
    assert not any(line.startswith(PROXY) for line in behind.log_lines[:2])


def test_a_header_trickled_byte_by_byte_is_read_and_tls_follows(behind):
    header = v2(("203.0.113.9", 4242), ("198.51.100.1", 1965), tlvs=b"\x04\x00\x00")
    response = exchange(behind.port, header, trickle=True)
    assert (response.status, response.body) == (20, b"203.0.113.9 4242\n")


def test_a_connection_from_elsewhere_is_refused_before_tls(behind):
    """Anyone could send a PROXY header claiming any address: only the proxy may."""
    forged = v1("TCP4", "198.51.100.99", "198.51.100.1", 1, 1965)
    assert refused_before_tls(behind.port, forged, source=STRANGER)
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        exchange(behind.port, forged, source=STRANGER)
    assert wait_for(lambda: behind.server.stats.refused["not_a_proxy"] == 2)
    assert not any("198.51.100.99" in line for line in behind.log_lines)


def test_the_proxy_without_a_header_or_with_a_bad_one_is_dropped(behind):
    # A plain TLS client from the proxy's address: its ClientHello is no PROXY header.
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        exchange(behind.port, b"")
    assert refused_before_tls(behind.port, b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n")
    assert refused_before_tls(behind.port, b"GET / HTTP/1.1\r\n")
    assert wait_for(lambda: behind.server.stats.dropped["proxy_header_invalid"] == 3)
    assert wait_for(lambda: behind.server.connection_count == 0)


def test_a_missing_header_is_dropped_at_the_handshake_deadline(serve):
    server = serve(make_app(), config=proxied_config(), clock=ManualClock())
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7")  # and nothing more
        assert wait_for(lambda: server.server.connection_count == 1)
        server.advance(server.server.limits.handshake_timeout - 0.5)
        assert server.server.connection_count == 1
        server.advance(1.0)
        assert ended(sock)
    assert server.server.stats.dropped["proxy_timeout"] == 1
    assert server.server.connection_count == 0


def test_local_is_a_health_check_accepted_and_closed(behind):
    with socket.create_connection(("127.0.0.1", behind.port), timeout=5) as sock:
        sock.sendall(v2(None, None, command=0x0))
        assert sock.recv(100) == b""
    assert wait_for(lambda: behind.server.stats.health_checks == 1)
    assert "health checks 1" in behind.server.stats.summary()
    assert behind.server.stats.dropped.total() == 0


def test_deny_lists_and_rate_limits_apply_to_the_client_not_the_proxy(serve):
    config = proxied_config(
        deny=("203.0.113.0/24",),
        rate_limits=[RateRule(path="/", per_address=1 / 60, burst=1)],
    )
    server = serve(make_app(), config=config)
    denied = v1("TCP4", "203.0.113.5", "198.51.100.1", 1, 1965)
    assert refused_before_tls(server.port, denied)
    assert wait_for(lambda: server.server.stats.refused["denied"] == 1)
    first = v1("TCP4", "198.51.100.7", "198.51.100.1", 1, 1965)
    assert exchange(server.port, first).status == 20
    assert exchange(server.port, first).status == 44  # the same client, limited
    other = v1("TCP4", "198.51.100.8", "198.51.100.1", 1, 1965)
    assert exchange(server.port, other).status == 20  # another client behind the same proxy


def test_a_client_that_ignores_44_is_blocked_not_the_proxy_nor_its_other_clients(serve):
    """Blocks fall on the address in the header: its next connection is refused before TLS."""
    config = proxied_config(
        limits=Limits(block_after=2),
        rate_limits=[RateRule(path="/", per_address=1 / 60, burst=1)],
    )
    server = serve(make_app(), config=config)
    pushy = v1("TCP4", "198.51.100.7", "198.51.100.1", 1, 1965)
    statuses = [exchange(server.port, pushy).status for _ in range(4)]
    assert statuses == [20, 44, 44, 44]  # the third 44 in a row earns a block
    assert wait_for(lambda: server.server.stats.blocks == 1)
    assert refused_before_tls(server.port, pushy)
    assert wait_for(lambda: server.server.stats.refused["blocked"] == 1)
    other = v1("TCP4", "198.51.100.8", "198.51.100.1", 1, 1965)
    assert exchange(server.port, other).status == 20


def test_a_direct_server_takes_no_proxy_header_and_a_reload_can_switch(serve):
    server = serve(make_app())
    assert not server.server.proxies
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        exchange(server.port, v1("TCP4", "203.0.113.7", "198.51.100.1", 1, 1965))
    server.call(lambda: server.server.reconfigure(proxies=AddressSet([PROXY])))
    proxied = exchange(server.port, v1("TCP4", "203.0.113.7", "198.51.100.1", 7, 1965))
    assert proxied.body == b"203.0.113.7 7\n"
    server.call(lambda: server.server.reconfigure(proxies=AddressSet()))
    assert exchange(server.port, b"").body.startswith(b"127.0.0.1 ")


def _out_of_descriptors(process: Hospes, port: int, limit: int) -> socket.socket:
    """Lower the server's open-file limit so that accepting a new connection fails (EMFILE).

    The limit is the lowest free descriptor number of the server, read again
    and retried if a descriptor was closed meanwhile (then the accept succeeds).
    Returns the proxy's connection that could not be accepted.
    """
    failed = r"accept failed \(Too many open files\); pausing"
    for _ in range(10):
        used = {int(name) for name in os.listdir(f"/proc/{process.pid}/fd")}
        lowest = next(number for number in range(len(used) + 1) if number not in used)
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (lowest, limit))
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if wait_for(lambda: any(re.search(failed, line) for line in process.stderr), 1):
            return sock
        sock.close()
    raise AssertionError(f"the server never ran out of descriptors: {process.stderr}")


def test_after_running_out_of_descriptors_only_the_proxy_may_connect(tmp_path):
    """Out of file descriptors, a server pauses accepting; it must resume behind its proxy.

    The real kernel's EMFILE: the server's open-file limit is lowered while it
    runs (``prlimit``), a connection from the proxy fails to be accepted, then
    the limit is given back.  From then on a stranger's plain TLS request must
    still be refused before TLS, and the proxy's headers still read.
    """
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# hello\n")
    process = serve_process(
        [*("--root", str(capsule), "--state", str(tmp_path / "state")), "--proxy-from", PROXY]
    )
    port, url = process.port, f"gemini://localhost:{process.port}/"
    header = v1("TCP4", "203.0.113.7", "198.51.100.1", 4000, 1965)
    try:
        assert exchange(port, header, url).status == 20
        limits = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)
        with _out_of_descriptors(process, port, limits[1]):
            resource.prlimit(process.pid, resource.RLIMIT_NOFILE, limits)
            # Accepting again: the proxy's header is read, a stranger is refused before TLS.
            assert exchange(port, header, url).status == 20
            with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
                exchange(port, b"", url, source=STRANGER)
        process.send_signal(signal.SIGUSR1)
        counters = process.wait_for_line(r"counters: .*").group(0)
        assert re.search(r"not_a_proxy 1\b", counters), counters
        assert re.search(r"out_of_resources [1-9]", counters), counters
    finally:
        status, _, errors = process.stop()
    assert status == 0, errors
