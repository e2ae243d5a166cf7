"""A flood against a real ``hospes serve`` process: idle and half-open connections, garbage,
many-megabyte certificate chains, while good clients keep being served; memory stays bounded
and no file descriptor is leaked.  The figures are printed (``pytest -s``), not asserted
beyond generous bounds.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import ssl

import pytest

from helpers import serve_process
from hostile import Memory, client_context, client_hello, connect, request, tls_connect, wait_for
from test_hostile_certs import huge_chain

pytestmark = pytest.mark.slow


def server_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_flood_keeps_memory_bounded_and_leaks_no_descriptor(tmp_path, capsys):
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# hello\n")
    args = ["--root", str(capsule), "--state", str(tmp_path / "s"), "--access-log", "off"]
    process = serve_process(args)
    port = process.port
    url = f"gemini://localhost:{port}/"
    held: list[socket.socket] = []
    try:
        for _ in range(20):
            assert request(port, url).status == 20
        base = Memory.of(process.pid)
        fds_before = server_fds(process.pid)
        chain = huge_chain(tmp_path, 8)
        hello = client_hello()
        good = 0
        for round_number in range(10):
            held += [connect(port) for _ in range(30)]  # idle: never a byte
            for _ in range(20):  # half a ClientHello, then silence
                sock = connect(port)
                sock.sendall(hello[: len(hello) // 2])
                held.append(sock)
            held += [tls_connect(port) for _ in range(10)]  # handshake done, no request
            for index in range(10):  # garbage, closed at once
                with contextlib.closing(connect(port)) as sock, contextlib.suppress(OSError):
                    sock.sendall(os.urandom(100 + 50 * index))
            if round_number % 2 == 0:  # an 8 MiB certificate chain
                with (
                    contextlib.closing(connect(port)) as sock,
                    contextlib.suppress(ssl.SSLError, OSError),
                ):
                    tls = client_context(chain).wrap_socket(sock, server_hostname="localhost")
                    tls.sendall(url.encode() + b"\r\n")
                    tls.recv(10)
            for _ in range(10):
                assert request(port, url).status == 20
                good += 1
        assert len(held) == 600
        peak = Memory.of(process.pid)
        for sock in held:
            sock.close()
        held.clear()
        assert wait_for(lambda: server_fds(process.pid) == fds_before, 10)
        assert process.poll() is None
        assert request(port, url).status == 20
        grown = (peak.peak - base.rss) / 1024
        with capsys.disabled():
            print(
                f"\nflood: 600 held connections, 100 garbage, 5 chains of 8 MiB, {good} good "
                f"requests; server RSS {base.rss / 1024:.1f} MiB before, peak "
                f"{peak.peak / 1024:.1f} MiB (+{grown:.1f}), "
                f"fds {fds_before} before and after"
            )
        assert grown < 150, "a generous bound: 600 connections cost tens of MiB, not hundreds"
    finally:
        for sock in held:
            sock.close()
        code, _, stderr = process.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_low_open_file_limit_caps_connections_and_the_server_survives(tmp_path):
    """With only 100 descriptors, max_connections is lowered to fit and a flood is survived."""
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# hello\n")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))

    process = serve_process(
        ["--root", str(capsule), "--state", str(tmp_path / "s"), "--access-log", "off"],
        preexec_fn=low_limit,  # runs in the child before exec: only sets a limit
    )
    port = process.port
    url = f"gemini://localhost:{port}/"
    held: list[socket.socket] = []

    def served() -> bool:
        with contextlib.suppress(OSError, ssl.SSLError):
            return request(port, url, timeout=2).status == 20
        return False

    try:
        for _ in range(150):
            # Past the cap, the server may reset a connection before connect() returns.
            with contextlib.suppress(ConnectionResetError):
                held.append(connect(port))
        assert wait_for(lambda: server_fds(process.pid) < 100)
        # Full of idle connections: a newcomer is served once the oldest has waited long
        # enough to be displaced (a second of the server's own clock, in another process).
        assert wait_for(served, 10, step=0.1)
        assert process.poll() is None
    finally:
        for sock in held:
            sock.close()
        code, _, stderr = process.stop()
    assert code == 0, stderr
    assert "max_connections 1024 does not fit the open-file limit (100); using 75" in stderr
    assert "Traceback" not in stderr
