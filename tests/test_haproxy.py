"""Two hospes nodes behind HAProxy (TCP mode, PROXY protocol v2, round robin) sharing PostgreSQL.

Everything is real: Debian's ``haproxy`` in front, two ``hospes serve``
processes behind it on loopback, one PostgreSQL schema, the admin CLI in a
process of its own, and a client connecting from 127.0.0.7 (another loopback
address) with a client certificate.  HAProxy is installed when it is missing
and the test can (root, apt-get); otherwise the test is skipped, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pg
from helpers import CertFiles, Process, RawResponse, serve_process
from hospes.selfsigned import (
    generate_key,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)
from hostile import wait_for

pytestmark = pytest.mark.slow

CLIENT_ADDRESS = "127.0.0.7"
HOSPES = [sys.executable, "-m", "hospes"]


def haproxy() -> str:
    """The haproxy binary, installed with apt-get if missing and possible; else a skip."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("haproxy is not installed, and installing it needs root and apt-get")
    quiet: dict[str, object] = {"capture_output": True, "text": True, "timeout": 600}
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], check=False, **quiet)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], check=False, **quiet)
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if done.returncode != 0 or found is None:
        pytest.skip(f"haproxy is not installed and apt-get could not install it: {done.stderr}")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    port: int, url: str, cert: CertFiles | None = None, *, source: str = CLIENT_ADDRESS
) -> RawResponse:
    """One Gemini request over TLS from ``source`` (the stdlib's TLS: an independent client)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    with (
        socket.create_connection(
            ("127.0.0.1", port), timeout=15, source_address=(source, 0)
        ) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(f"{url}\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    header, _, body = data.partition(b"\r\n")
    status, _, meta = header.decode().partition(" ")
    return RawResponse(header.decode(), body, int(status), meta)


def certificate(directory: Path, name: str, hostnames: tuple[str, ...] = ()) -> CertFiles:
    key = generate_key("ecdsa")
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    write_certificate(cert_path, self_signed_certificate(key, name, hostnames=list(hostnames)))
    write_private_key(key_path, key)
    return CertFiles(cert_path, key_path, key)


def access_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_two_nodes_behind_haproxy_share_accounts_bans_and_client_addresses(tmp_path):
    binary = haproxy()
    with pg.schema() as database:
        _scenario(binary, database, tmp_path)


def _scenario(binary: str, database: str, tmp_path: Path) -> None:
    front = free_port()
    server = certificate(tmp_path, "localhost", ("localhost",))
    alice = certificate(tmp_path, "alice")
    logs = [tmp_path / "node-a.log", tmp_path / "node-b.log"]
    nodes: list[Process] = []
    balancer: Process | None = None
    try:
        for name, log in zip("ab", logs, strict=True):
            arguments = ["--state", str(tmp_path / f"state-{name}"), "--database", database]
            arguments += ["--cert", str(server.cert), "--key", str(server.key)]
            arguments += ["--proxy-from", "127.0.0.1", "--public-port", str(front)]
            nodes.append(serve_process([*arguments, "--access-log", str(log)]))
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            "global\n  maxconn 256\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
            "  timeout server 30s\n"
            f"frontend gemini\n  bind 127.0.0.1:{front}\n  default_backend nodes\n"
            "backend nodes\n  balance roundrobin\n"
            + "".join(
                f"  server {name} 127.0.0.1:{node.port} send-proxy-v2 check inter 500ms "
                "check-send-proxy\n"
                for name, node in zip("ab", nodes, strict=True)
            )
        )
        checked = subprocess.run(
            [binary, "-c", "-f", str(config)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        balancer = Process([binary, "-db", "-f", str(config)])
        assert wait_for(lambda: _accepts(front), 15), balancer.stderr
        url = f"gemini://localhost:{front}"

        # An account registered through one node is a member through the other (the
        # prompt's nonce is issued by one node and answered on the other).
        prompt = request(front, f"{url}/account/register", alice)
        assert prompt.status == 30, prompt.header
        assert prompt.meta.startswith("/account/register/"), prompt.meta
        registered = request(front, f"{url}{prompt.meta}?alice", alice)
        assert (registered.status, registered.meta) == (30, "/members/")
        for _ in range(4):
            members = request(front, f"{url}/members/", alice)
            assert members.status == 20, members.header
            assert b"alice" in members.body and b"# Members' lounge" in members.body
        for log in logs:
            assert wait_for(lambda log=log: _served(log, "/members/", 20), 5), access_lines(log)

        # The client's own address, from the PROXY header, in both nodes' access logs.
        for log in logs:
            assert all(
                line.split()[1].startswith(f"{CLIENT_ADDRESS}:") for line in access_lines(log)
            )

        # A ban through the admin CLI, in its own process, takes effect on both nodes.
        banned = subprocess.run(
            [*HOSPES, "ban", "--account", "alice", "--reason", "spam", "--database", database],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert banned.returncode == 0, banned.stderr
        # Within the stated bound (3 s) every node refuses: four answers in a row, which
        # round-robin spreads over both nodes, all 61.
        deadline = time.monotonic() + 3 + 4 * 2  # the bound, plus the requests themselves
        while True:
            answers = [request(front, f"{url}/members/", alice) for _ in range(4)]
            if all(answer.status == 61 for answer in answers) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [answer.status for answer in answers] == [61] * 4, [a.header for a in answers]
        assert all("spam" in answer.meta for answer in answers)
        for log in logs:
            assert wait_for(lambda log=log: _served(log, "/members/", 61), 5), access_lines(log)

        # Straight to a node, not through the proxy: refused before TLS.
        for node in nodes:
            with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
                request(node.port, f"gemini://localhost:{node.port}/")
        # Health checks (PROXY v2 LOCAL) are accepted and counted.
        nodes[0].send_signal(signal.SIGUSR1)
        counters = nodes[0].wait_for_line(r"counters: .*")
        assert re.search(r"refused: .*not_a_proxy 1", counters.group(0)), counters.group(0)
        assert re.search(r"health checks [1-9]", counters.group(0)), counters.group(0)
    finally:
        if balancer is not None:
            balancer.stop()
        for node in nodes:
            node.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _served(log: Path, path: str, status: int) -> bool:
    return any(f'{path}" {status} ' in line for line in access_lines(log))
