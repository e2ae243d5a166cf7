"""``hospes serve --workers N``: several processes on one port, supervised."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pg
from helpers import CertFactory, identity_of, raw_request, serve_process
from test_proxy import v2

pytestmark = pytest.mark.slow

HOSPES = [sys.executable, "-m", "hospes"]


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def listeners(port: int) -> int:
    """Listening TCP sockets on ``port`` (each worker has its own, with SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                count += 1
    return count


def wait_until(condition, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def reloads(process) -> int:
    return sum("reloaded the configuration" in line for line in process.stderr)


def test_workers_serve_restart_reload_and_stop(tmp_path):
    # Port 0: the supervisor binds a free port and holds it; every worker listens on it.
    process = serve_process(["--state", str(tmp_path), "--workers", "2"])
    port = process.port
    try:
        assert wait_until(lambda: len(children(process.pid)) == 2 and listeners(port) == 2)
        for _ in range(6):
            assert raw_request(port, f"gemini://localhost:{port}/").status == 20
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: reloads(process) == 2)  # both workers
        victim = min(children(process.pid))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(
            lambda: (
                victim not in children(process.pid)
                and len(children(process.pid)) == 2
                and listeners(port) == 2
            )
        )
        assert raw_request(port, f"gemini://localhost:{port}/").status == 20
        # A reload sent while a worker is starting must not kill it.  (The victim
        # died soon after it started, so the supervisor pauses before the next one.)
        victim = min(children(process.pid))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: victim not in children(process.pid))
        assert wait_until(lambda: len(children(process.pid)) == 2, step=0.002)
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: listeners(port) == 2)
        assert raw_request(port, f"gemini://localhost:{port}/").status == 20
        assert process.poll() is None
    finally:
        code, _, stderr = process.stop()
    assert code == 0
    assert f"listening on 127.0.0.1:{port} with 2 workers" in stderr
    assert stderr.count(" exited with status -9; starting a new one") == 2  # only our kills
    assert stderr.count("reloaded the configuration") >= 3
    assert not children(process.pid)


def test_workers_refuse_a_taken_port_before_forking(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        command = [sys.executable, "-m", "hospes", "serve", "--port", str(port)]
        result = subprocess.run(
            [*command, "--state", str(tmp_path), "--workers", "3"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


def _responses(line: str) -> dict[int, int]:
    found = re.search(r"responses: ([^;]+)", line)
    if found is None:
        return {}
    pairs = (item.split() for item in found.group(1).split(", "))
    return {int(status): int(count) for status, count in pairs}


def test_worker_logs_name_the_worker_and_the_supervisor_logs_totals(tmp_path):
    process = serve_process(["--state", str(tmp_path), "--workers", "2", "--log-level", "debug"])
    port = process.port
    totals = "counters of 2 workers: "

    def reported(expected: dict[int, int]) -> bool:
        """Ask for the counters until the supervisor's line shows ``expected`` responses."""
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        lines = [line for line in process.stderr if totals in line]
        return bool(lines) and _responses(lines[-1]) == expected

    try:
        assert wait_until(lambda: len(children(process.pid)) == 2 and listeners(port) == 2)
        for _ in range(6):
            assert raw_request(port, f"gemini://localhost:{port}/").status == 20
        assert raw_request(port, "nonsense").status == 59
        assert wait_until(lambda: reported({20: 6, 59: 1}), step=0.5)
        # A worker that dies keeps its counters in the totals; its replacement counts anew.
        victim = min(children(process.pid))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(
            lambda: (
                victim not in children(process.pid)
                and len(children(process.pid)) == 2
                and listeners(port) == 2
            )
        )
        for _ in range(2):
            assert raw_request(port, f"gemini://localhost:{port}/").status == 20
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: reloads(process) == 2), "\n".join(process.stderr)
    finally:
        code, _, stderr = process.stop()
    assert code == 0
    final = [line for line in stderr.splitlines() if totals in line][-1]
    assert _responses(final) == {20: 8, 59: 1}
    assert " INFO " in final
    worker_lines = [line for line in stderr.splitlines() if re.search(r" worker \d: ", line)]
    reloaded = [line for line in stderr.splitlines() if "reloaded the configuration" in line]
    assert len(reloaded) == 2
    assert {re.search(r"worker (\d): reloaded", line).group(1) for line in reloaded} == {"1", "2"}
    # Each worker's own counters only at debug level, named.
    own = [line for line in worker_lines if ": counters: " in line]
    assert own
    assert all(" DEBUG " in line for line in own)
    assert "worker 1 exited with status -9" in stderr or "worker 2 exited with status -9" in stderr


def test_health_checks_are_totalled_across_workers(tmp_path):
    """PROXY ``LOCAL`` health checks count in the supervisor's totals, whichever worker took one."""
    process = serve_process(
        ["--state", str(tmp_path), "--workers", "2", "--proxy-from", "127.0.0.1"]
    )
    port = process.port
    totals = "counters of 2 workers: "

    def reported(count: int) -> bool:
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        lines = [line for line in process.stderr if totals in line]
        return bool(lines) and f"health checks {count}" in lines[-1]

    try:
        assert wait_until(lambda: len(children(process.pid)) == 2 and listeners(port) == 2)
        for _ in range(6):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(v2(None, None, command=0x0))
                assert sock.recv(100) == b""  # accepted, then closed
        assert wait_until(lambda: reported(6), step=0.5), "\n".join(process.stderr)
    finally:
        code, _, stderr = process.stop()
    assert code == 0, stderr
    final = [line for line in stderr.splitlines() if totals in line][-1]
    assert "health checks 6" in final


def _worker_responses(lines: list[str]) -> dict[str, dict[int, int]]:
    """Each worker's last own counters (``worker N: counters: …``, debug level), by N."""
    found: dict[str, dict[int, int]] = {}
    for line in lines:
        match = re.search(r" worker (\d+): counters: ", line)
        if match:
            found[match.group(1)] = _responses(line)
    return found


def test_workers_share_a_postgresql_store_and_each_enforces_a_ban(tmp_path):
    """``--workers 2 --database URL``: both workers serve members, and both refuse after a ban.

    Each worker has its own pool, change watch and cache.  The ban is made by
    the CLI in a process of its own; within the stated bound (``PROPAGATION``,
    3 s) every request must be refused, whichever worker takes it, and each
    worker's own counters (logged at debug level) must show its 20s before
    and its 61s after: both caches held the member, and both learnt of the ban.
    """
    with pg.schema() as database:
        postgres = pytest.importorskip("hospes.store.postgres")  # there, since pg.schema is
        alice = CertFactory(tmp_path).make("alice")
        fingerprint = identity_of(alice).fingerprint
        created = subprocess.run(
            [*HOSPES, "accounts", "create", "alice", fingerprint, "--database", database],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        arguments = ["--state", str(tmp_path / "state"), "--workers", "2"]
        arguments += ["--database", database, "--access-log", "off", "--log-level", "debug"]
        process = serve_process(arguments)
        port = process.port
        url = f"gemini://localhost:{port}/members/"

        def counted() -> dict[str, dict[int, int]]:
            """Ask every worker for its counters; what each said last."""
            before = len(process.stderr)
            process.send_signal(signal.SIGUSR1)
            wait_until(lambda: sum(": counters: " in line for line in process.stderr[before:]) >= 2)
            return _worker_responses(process.stderr)

        try:
            assert wait_until(lambda: len(children(process.pid)) == 2 and listeners(port) == 2)
            # Members: 8 requests, each a new TLS connection, all answered; more until
            # both workers have answered (SO_REUSEPORT spreads connections by hash).
            for _ in range(4):
                for _ in range(8):
                    members = raw_request(port, url, cert=alice)
                    assert members.status == 20, members.header
                    assert b"alice" in members.body
                served = counted()
                if len(served) == 2 and all(counts.get(20) for counts in served.values()):
                    break
            assert len(served) == 2 and all(counts.get(20) for counts in served.values()), served

            banned = subprocess.run(
                [*HOSPES, "ban", "--account", "alice", "--reason", "spam", "--database", database],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert banned.returncode == 0, banned.stderr
            done = time.monotonic()
            bound = postgres.PROPAGATION.total_seconds()
            first = None
            while time.monotonic() - done < bound:  # 20 allowed until the bound
                answer = raw_request(port, url, cert=alice)
                assert answer.status in (20, 61), answer.header
                if answer.status == 61 and first is None:
                    first = time.monotonic() - done
                time.sleep(0.05)
            assert first is not None, "no 61 within the bound"
            print(f"first 61 {first:.2f} s after the CLI returned")
            # From the bound on, every answer is 61, whichever worker gives it.
            for _ in range(4):
                for _ in range(8):
                    answer = raw_request(port, url, cert=alice)
                    assert answer.status == 61 and "spam" in answer.meta, answer.header
                refused = counted()
                if all(counts.get(61) for counts in refused.values()):
                    break
            assert len(refused) == 2 and all(counts.get(61) for counts in refused.values()), refused
            assert process.poll() is None
        finally:
            code, _, stderr = process.stop()
        assert code == 0, stderr
        assert "Traceback" not in stderr
