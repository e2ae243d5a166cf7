"""Memory of idle connections: a real ``hospes serve`` holding N connections that ask nothing.

Run by hand, not in CI::

    .venv/bin/python bench/idle.py --connections 5000

Two kinds of idle connection, N of each in turn: accepted TCP connections
that send nothing (a slowloris before its ClientHello), then connections that
complete the TLS handshake with a client certificate and never send their
request line.  It prints the server's RSS before, with the N connections
open, and its peak (VmHWM), and the memory per connection.  The server runs
with limits raised so that it keeps them all (``max_connections`` above N,
timeouts of two minutes); loopback is trusted, so no per-address cap applies.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+)", status)
    peak = re.search(r"VmHWM:\s+(\d+)", status)
    assert rss and peak
    return int(rss.group(1)), int(peak.group(1))


def open_connections(port: int, count: int, context: ssl.SSLContext | None) -> list[socket.socket]:
    """``count`` connections to ``port``: bare TCP, or TLS with the handshake done."""
    opened: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        opened.append(sock)
    return opened


def settle(pid: int, seconds: float = 1.0) -> tuple[int, int]:
    time.sleep(seconds)  # let the server accept and handle what is in flight
    return memory(pid)


def measure(work: Path, kind: str, context: ssl.SSLContext | None, count: int) -> None:
    """Start a server, open ``count`` idle connections of one kind, print its memory."""
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "hospes", "serve", "--config", str(work / "hospes.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    try:
        port = 0
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            found = re.search(r"listening on \S+?:(\d+)", (work / "server.log").read_text())
            port = int(found.group(1)) if found else 0
            time.sleep(0.1)
        if not port:
            raise SystemExit(f"the server did not start: {(work / 'server.log').read_text()}")
        for sock in open_connections(port, 20, context):  # first-time allocations
            sock.close()
        base, _ = settle(server.pid)
        started = time.monotonic()
        held = open_connections(port, count, context)
        rss, peak = settle(server.pid)
        print(
            f"{count} idle connections ({kind}, opened in {time.monotonic() - started:.1f} s): "
            f"RSS {base / 1024:.1f} MiB at rest, {rss / 1024:.1f} MiB with them, peak "
            f"{peak / 1024:.1f} MiB: {(rss - base) * 1024 / count:,.0f} bytes per connection",
            flush=True,
        )
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 100
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    sys.path.insert(0, str(HERE.parent / "src"))
    from hospes.selfsigned import (  # noqa: PLC0415 - after the path tweak
        generate_key,
        self_signed_certificate,
        write_certificate,
        write_private_key,
    )

    work = Path(tempfile.mkdtemp(prefix="hospes-idle-"))
    key = generate_key("ecdsa")
    write_private_key(work / "client.key", key)
    write_certificate(work / "client.crt", self_signed_certificate(key, "idle"))
    (work / "capsule").mkdir()
    (work / "capsule" / "index.gmi").write_text("# idle\n")
    (work / "hospes.toml").write_text(
        'port = 0\nroot = "capsule"\nstate = "state"\naccess_log = "off"\n'
        f"[limits]\nmax_connections = {args.connections + 100}\n"
        "handshake_timeout = 120\nrequest_timeout = 120\n"
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(work / "client.crt", work / "client.key")
    try:
        for kind, ctx in (("TCP, nothing sent", None), ("TLS handshake done, no request", context)):
            measure(work, kind, ctx, args.connections)  # a fresh server for each kind
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
