"""Soak test: a real ``hospes serve`` under a mix of good clients and attackers for N minutes.

Run by hand, not in CI::

    .venv/bin/python bench/soak.py --minutes 1
    .venv/bin/python bench/soak.py --minutes 30 --good 8 --slow 6 --garbage 3

Everything stays on loopback, each kind of client on its own addresses (Linux
routes all of 127/8 to the loopback interface), with loopback *not* trusted,
so the per-address caps, rate limits and blocks apply as on the Internet:

* good clients (127.0.1.x): a request every ``--interval`` seconds each,
  honouring 44; their success rate and latency are what the server must keep;
* slowloris (127.0.2.x): keep as many connections open as the server lets
  them, half sending a ClientHello and half a request line a byte at a time;
* garbage (127.0.3.x): random bytes, plain-text requests, half ClientHellos,
  resets mid-handshake, and now and then an 8 MiB certificate chain;
* a hammer (127.0.4.1): requests as fast as it can, ignoring 44 (it should
  end up blocked).

At the end it prints the good clients' success rate and latency percentiles,
the server's peak RSS and descriptor counts, the server's own counters, and
whether the server process is still alive.  Exit status 0 when it is alive
and good clients succeeded at least ``--min-success`` of the time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def listening_port(server: subprocess.Popen[str], log: list[str]) -> int:
    """The port in the banner of a server started with port 0 (it prints once it listens)."""
    deadline = time.monotonic() + 20
    while True:
        for line in list(log):
            found = re.search(r"listening on \S+?:(\d+)", line)
            if found:
                return int(found.group(1))
        if server.poll() is not None or time.monotonic() > deadline:
            print("\n".join(log))
            raise SystemExit("the server did not start")
        time.sleep(0.05)


def context(chain: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    result = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    result.check_hostname = False
    result.verify_mode = ssl.CERT_NONE
    if chain is not None:
        result.load_cert_chain(*chain)
    return result


def connect(port: int, source: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    try:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def fetch(port: int, source: str, url: str, timeout: float = 10.0) -> tuple[int, str]:
    """One request; (status, meta), or raises OSError / ssl.SSLError."""
    with (
        connect(port, source, timeout) as sock,
        context().wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(url.encode() + b"\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        while tls.recv(65536):
            pass
    header = data.partition(b"\r\n")[0].decode("utf-8", "replace")
    status, _, meta = header.partition(" ")
    return int(status), meta


def make_chain(directory: Path, megabytes: int) -> tuple[Path, Path]:
    """A client certificate followed by ``megabytes`` one-MiB certificates (padded with names)."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from hospes.selfsigned import (  # noqa: PLC0415 - after the path tweak
        generate_key,
        self_signed_certificate,
        write_certificate,
        write_private_key,
    )

    key = generate_key("ecdsa")
    write_private_key(directory / "leaf.key", key)
    write_certificate(directory / "leaf.pem", self_signed_certificate(key, "soak"))
    names = [f"h{index:06d}.example" for index in range(60000)]
    padding = self_signed_certificate(generate_key("ecdsa"), "padding", hostnames=names)
    write_certificate(directory / "padding.pem", padding)
    chain = directory / "chain.pem"
    chain.write_bytes(
        (directory / "leaf.pem").read_bytes() + (directory / "padding.pem").read_bytes() * megabytes
    )
    return chain, directory / "leaf.key"


class Soak:
    def __init__(self, args: argparse.Namespace, port: int, chain: tuple[Path, Path]) -> None:
        self.args = args
        self.port = port
        self.url = f"gemini://localhost:{port}/"
        self.chain = chain
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.good_ok = 0
        self.good_slowed = 0
        self.good_failed = 0
        self.failures: dict[str, int] = {}
        self.slow_opened = 0
        self.garbage_sent = 0
        self.hammer_statuses: dict[str, int] = {}
        self.hello = client_hello()

    def count(self, table: dict[str, int], key: str) -> None:
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def good(self, index: int) -> None:
        source = f"127.0.1.{index + 1}"
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                status, meta = fetch(self.port, source, self.url)
            except (OSError, ssl.SSLError) as exc:
                with self.lock:
                    self.good_failed += 1
                self.count(self.failures, type(exc).__name__)
                self.stop.wait(self.args.interval)
                continue
            elapsed = time.monotonic() - start
            with self.lock:
                if status == 20:
                    self.good_ok += 1
                    self.latencies.append(elapsed)
                elif status == 44:
                    self.good_slowed += 1
                else:
                    self.good_failed += 1
                    self.failures[f"status {status}"] = self.failures.get(f"status {status}", 0) + 1
            self.stop.wait(int(meta) if status == 44 else self.args.interval)

    def slowloris(self, index: int) -> None:
        source = f"127.0.2.{index + 1}"
        line = self.url.encode() + b"x" * 900
        held: list[tuple[socket.socket, bytes, int]] = []
        step = 0
        while not self.stop.is_set():
            # Open more until the server refuses; trickle one byte on each held one.
            for _ in range(8):
                try:
                    if step % 2:
                        sock = connect(self.port, source, 2)
                        tls = context().wrap_socket(sock, server_hostname="localhost")
                        held.append((tls, line, 0))
                    else:
                        held.append((connect(self.port, source, 2), self.hello, 0))
                    with self.lock:
                        self.slow_opened += 1
                except (OSError, ssl.SSLError):
                    break
                step += 1
            alive = []
            for sock, payload, position in held:
                try:
                    sock.send(payload[position : position + 1])
                    alive.append((sock, payload, position + 1))
                except (OSError, ssl.SSLError):
                    sock.close()
            held = alive
            self.stop.wait(0.5)
        for sock, _, _ in held:
            sock.close()

    def garbage(self, index: int) -> None:
        source = f"127.0.3.{index + 1}"
        while not self.stop.is_set():
            kind = random.randrange(6)
            try:
                sock = connect(self.port, source, 2)
            except OSError:
                self.stop.wait(0.05)
                continue
            try:
                if kind == 0:
                    sock.sendall(os.urandom(random.randrange(1, 5000)))
                elif kind == 1:
                    sock.sendall(self.url.encode() + b"\r\n")  # plain text on the TLS port
                elif kind == 2:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                elif kind == 3:
                    sock.sendall(self.hello[: random.randrange(1, len(self.hello))])
                    reset(sock)
                    continue
                elif kind == 4 and random.random() < 0.05:
                    tls = context(self.chain).wrap_socket(sock, server_hostname="localhost")
                    tls.sendall(self.url.encode() + b"\r\n")
                    tls.recv(10)
                else:
                    sock.sendall(self.hello)
                    sock.recv(10)
                with self.lock:
                    self.garbage_sent += 1
            except (OSError, ssl.SSLError):
                pass
            finally:
                sock.close()
            self.stop.wait(0.01)

    def hammer(self) -> None:
        while not self.stop.is_set():
            try:
                status, _ = fetch(self.port, "127.0.4.1", self.url, 2)
                self.count(self.hammer_statuses, str(status))
            except (OSError, ssl.SSLError):
                self.count(self.hammer_statuses, "refused")
                self.stop.wait(0.05)


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--good", type=int, default=4, help="good clients")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between requests")
    parser.add_argument("--slow", type=int, default=4, help="slowloris addresses")
    parser.add_argument("--garbage", type=int, default=2, help="garbage senders")
    parser.add_argument("--min-success", type=float, default=0.99)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hospes-soak-"))
    capsule = work / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# soak\n" + "A line of gemtext.\n" * 50)
    config = work / "hospes.toml"
    config.write_text(
        'port = 0\nroot = "capsule"\nstate = "state"\naccess_log = "off"\n'
        "[limits]\ntrusted = []\nhandshake_timeout = 5\nrequest_timeout = 10\n"
    )
    chain = make_chain(work, 8)
    command = [sys.executable, "-m", "hospes", "serve", "--config", str(config)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    reader = threading.Thread(
        target=lambda: log.extend(line.rstrip() for line in server.stderr or ()), daemon=True
    )
    reader.start()
    port = listening_port(server, log)
    rss_start, _ = memory(server.pid)
    fds_start = fds(server.pid)
    soak = Soak(args, port, chain)
    threads = [threading.Thread(target=soak.good, args=(i,)) for i in range(args.good)]
    threads += [threading.Thread(target=soak.slowloris, args=(i,)) for i in range(args.slow)]
    threads += [threading.Thread(target=soak.garbage, args=(i,)) for i in range(args.garbage)]
    threads.append(threading.Thread(target=soak.hammer))
    seconds = args.minutes * 60
    print(f"soak: {seconds:.0f} s against pid {server.pid} on port {port}", flush=True)
    for thread in threads:
        thread.start()
    fds_max = fds_start
    started = time.monotonic()
    alive = True
    try:
        while time.monotonic() - started < seconds:
            time.sleep(1)
            if server.poll() is not None:
                alive = False
                break
            fds_max = max(fds_max, fds(server.pid))
            elapsed = time.monotonic() - started
            if int(elapsed) % 15 == 0:
                rss, _ = memory(server.pid)
                print(
                    f"  {elapsed:5.0f} s  good {soak.good_ok} ok / {soak.good_failed} failed  "
                    f"rss {rss / 1024:.1f} MiB  fds {fds(server.pid)}",
                    flush=True,
                )
    finally:
        soak.stop.set()
        for thread in threads:
            thread.join(15)
    alive = alive and server.poll() is None
    if alive:
        time.sleep(1)  # let the server close what the attackers left
        wait = time.monotonic() + 15
        while fds(server.pid) > fds_start and time.monotonic() < wait:
            time.sleep(0.2)
        rss_end, rss_peak = memory(server.pid)
        fds_end = fds(server.pid)
        server.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    reader.join(5)
    total = soak.good_ok + soak.good_failed
    rate = soak.good_ok / total if total else 0.0
    print()
    print(f"good clients     {total} requests, success {100 * rate:.2f} %", end="")
    print(f" (+{soak.good_slowed} answered 44)", end="")
    print(f", failures {soak.failures or 'none'}")
    if soak.latencies:
        print(
            f"latency          p50 {1000 * percentile(soak.latencies, 0.5):.1f} ms, "
            f"p99 {1000 * percentile(soak.latencies, 0.99):.1f} ms, "
            f"max {1000 * max(soak.latencies):.1f} ms, "
            f"mean {1000 * statistics.fmean(soak.latencies):.1f} ms"
        )
    print(f"slowloris        {soak.slow_opened} connections opened")
    print(f"garbage          {soak.garbage_sent} connections")
    print(f"hammer           {soak.hammer_statuses}")
    print(f"server alive     {'yes' if alive else 'NO (exit ' + str(server.returncode) + ')'}")
    if alive:
        print(
            f"server memory    RSS {rss_start / 1024:.1f} MiB at start, peak {rss_peak / 1024:.1f}"
            f" MiB, {rss_end / 1024:.1f} MiB at the end"
        )
        print(f"server fds       {fds_start} at start, max {fds_max}, {fds_end} at the end")
    for line in log:
        if "counters:" in line or "blocking" in line or "Traceback" in line:
            print(f"server log       {line}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if alive and rate >= args.min_success else 1


if __name__ == "__main__":
    sys.exit(main())
