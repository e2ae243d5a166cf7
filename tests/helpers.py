"""Test helpers: certificates made in the test, real servers over loopback, a raw TLS client."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.serialization import Encoding

from hospes.app.routing import Handler
from hospes.config import Config, HostConfig
from hospes.gemini.identity import ClientIdentity, identify
from hospes.policy.clock import Clock, ManualClock
from hospes.runner import prepare
from hospes.selfsigned import (
    KeyKind,
    PrivateKey,
    generate_key,
    load_certificate,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)
from hospes.server import Limits, Server
from hospes.server.accesslog import AccessLog

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

T = TypeVar("T")

RUNNERS: list[asyncio.Runner] = []
"""The running test's event loop (conftest's autouse fixture pushes and pops it)."""


def run(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on the test's event loop, the same for every call of one test.

    A store may bind to the loop that first uses it (PostgreSQL's pool does),
    as a server's does; outside a test, each call gets a loop of its own.
    """

    async def wrapper() -> T:
        return await awaitable

    if RUNNERS:
        return RUNNERS[-1].run(wrapper())
    return asyncio.run(wrapper())


@dataclass(frozen=True)
class CertFiles:
    """A certificate and key written as PEM files, with the key object for renewals."""

    cert: Path
    key: Path
    private_key: PrivateKey


class CertFactory:
    """Makes client certificates of every kind the tests need, in a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._count = 0

    def make(
        self,
        name: str = "alice",
        *,
        kind: KeyKind = "ecdsa",
        rsa_bits: int = 2048,
        key: PrivateKey | None = None,
        days: float = 365,
        not_before: dt.datetime | None = None,
        hostnames: Sequence[str] = (),
    ) -> CertFiles:
        self._count += 1
        private_key = key or generate_key(kind, rsa_bits)
        cert = self_signed_certificate(
            private_key, name, days=days, not_before=not_before, hostnames=hostnames
        )
        stem = self.directory / f"{self._count}-{name}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        write_certificate(cert_path, cert)
        write_private_key(key_path, private_key)
        return CertFiles(cert_path, key_path, private_key)

    def expired(self, name: str = "old") -> CertFiles:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
        return self.make(name, not_before=start, days=30)

    def not_yet_valid(self, name: str = "future") -> CertFiles:
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        return self.make(name, not_before=start, days=365)

    def renewal(self, previous: CertFiles, name: str = "alice") -> CertFiles:
        return self.make(name, key=previous.private_key)


def identity_of(files: CertFiles) -> ClientIdentity:
    """The identity hospes derives from a certificate file."""
    return identify(load_certificate(files.cert).public_bytes(Encoding.DER))


@dataclass
class RunningServer:
    """A hospes server running in a thread of its own, on a free loopback port."""

    server: Server
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    host: str
    port: int
    state: Path
    clock: Clock
    log_lines: list[str] = field(default_factory=list)

    def url(self, path: str = "/", hostname: str = "localhost") -> str:
        return f"gemini://{hostname}:{self.port}{path}"

    def call(self, function: Callable[[], object]) -> object:
        """Run ``function`` on the server's loop and return its result."""
        future = asyncio.run_coroutine_threadsafe(_call(function), self.loop)
        return future.result(10)

    def advance(self, seconds: float) -> None:
        """Move the server's :class:`ManualClock` forward, then check every deadline at once."""
        assert isinstance(self.clock, ManualClock), "start the server with clock=ManualClock()"
        self.clock.advance(seconds)
        self.call(self.server.sweep)

    def stop(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.shutdown(1.0), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


async def _call(function: Callable[[], object]) -> object:
    result = function()
    if asyncio.iscoroutine(result):
        result = await result
    return result


class _ListStream:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> int:
        self.lines.extend(text.splitlines())
        return len(text)

    def flush(self) -> None:
        return None


def start_server(
    state: Path,
    handler: Handler | None = None,
    *,
    config: Config | None = None,
    limits: Limits | None = None,
    host: str = "127.0.0.1",
    clock: Clock = time.monotonic,
) -> RunningServer:
    """Start a real server (TLS, dispatcher, store) on a free port of ``host``.

    Its time comes from ``clock``: with a :class:`ManualClock`, the test moves it
    (:meth:`RunningServer.advance`) and no deadline passes on its own.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    config = config or Config(hosts=[HostConfig("localhost")])
    config.state = state
    config.port = port
    if limits is not None:
        config.limits = limits
    lines: list[str] = []
    access_log = AccessLog(_ListStream(lines), interval=0.01)
    prepared = prepare(config, handler, access_log=access_log, clock=clock)
    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(prepared.server.start(sockets=[sock]))
        started.set()
        loop.run_forever()
        if prepared.store is not None:
            loop.run_until_complete(prepared.store.close())
        loop.close()

    thread = threading.Thread(target=run, name="hospes-test-server", daemon=True)
    thread.start()
    assert started.wait(10), "server did not start"
    return RunningServer(prepared.server, loop, thread, host, port, state, clock, lines)


@dataclass
class RawResponse:
    header: str
    body: bytes
    status: int
    meta: str


def raw_request(
    port: int,
    line: bytes | str,
    *,
    cert: CertFiles | None = None,
    host: str = "127.0.0.1",
    server_name: str = "localhost",
    timeout: float = 10,
) -> RawResponse:
    """Send exactly ``line`` (CRLF added to str) over TLS with the stdlib; read to close_notify.

    A deliberately independent client, so server tests do not depend on
    hospes' own client for the bytes on the wire.
    """
    if isinstance(line, str):
        line = line.encode("utf-8") + b"\r\n"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the tests can present weak keys
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    # suppress_ragged_eofs=False: a response not ended by close_notify raises.
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=server_name, suppress_ragged_eofs=False) as tls,
    ):
        tls.sendall(line)
        chunks = []
        while True:
            data = tls.recv(65536)
            if not data:
                break
            chunks.append(data)
    data = b"".join(chunks)
    header, _, body = data.partition(b"\r\n")
    text = header.decode("utf-8")
    status, _, meta = text.partition(" ")
    return RawResponse(text, body, int(status), meta)


@dataclass
class OpenSSLResult:
    """What ``openssl s_client`` printed: the response on stdout, diagnostics on stderr."""

    stdout: bytes
    stderr: str
    returncode: int

    @property
    def status(self) -> int:
        return int(self.stdout[:2])

    @property
    def header(self) -> str:
        return self.stdout.partition(b"\r\n")[0].decode("utf-8", "replace")


def s_client(
    port: int,
    line: str | bytes,
    *,
    cert: CertFiles | None = None,
    server_name: str | None = "localhost",
    options: tuple[str, ...] = (),
    quiet: bool = True,
    timeout: float = 15,
) -> OpenSSLResult:
    """Send one request with the real ``openssl s_client`` (the system's OpenSSL build).

    ``@SECLEVEL=0`` lets it present the weak keys the tests need.  It reads
    until the server closes; with ``quiet=False`` stdout starts with the
    session summary (``New,``/``Reused,`` ...) before the response.
    ``server_name=None`` sends no SNI.
    """
    if isinstance(line, str):
        line = line.encode("utf-8") + b"\r\n"
    command = [
        "openssl",
        "s_client",
        "-quiet" if quiet else "-ign_eof",
        "-connect",
        f"127.0.0.1:{port}",
        *(["-noservername"] if server_name is None else ["-servername", server_name]),
        "-cipher",
        "DEFAULT:@SECLEVEL=0",
        *options,
    ]
    if cert is not None:
        command += ["-cert", str(cert.cert), "-key", str(cert.key)]
    result = subprocess.run(command, input=line, capture_output=True, timeout=timeout, check=False)
    return OpenSSLResult(result.stdout, result.stderr.decode("utf-8", "replace"), result.returncode)


# -- `hospes` as a real process -------------------------------------------------------

_LISTENING = re.compile(r"listening on (\S+?):(\d+)\b")


class Process:
    """A process whose stdout and stderr are collected line by line as they come."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None, **popen) -> None:
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            **popen,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait_for_line(
        self, pattern: str | re.Pattern[str], *, stderr: bool = True, timeout: float = 15
    ) -> re.Match[str]:
        """The first line of stderr (or stdout) matching ``pattern``, waiting for it to come."""
        lines = self.stderr if stderr else self.stdout
        deadline = time.monotonic() + timeout
        while True:
            for line in list(lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None:
                for reader in self._readers:
                    reader.join(5)
                if not any(re.search(pattern, line) for line in lines):
                    raise AssertionError(f"exited without {pattern!r}: {self.stderr}")
            elif time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout} s: {self.stderr}")
            else:
                time.sleep(0.01)

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Signal the process, wait for it; its exit status and everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.wait()

    def wait(self, timeout: float = 15) -> tuple[int, str, str]:
        """Wait for the process to exit (killed after ``timeout``); its status and output."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        for reader in self._readers:
            reader.join(5)
        return self.process.returncode, "\n".join(self.stdout), "\n".join(self.stderr)


class Hospes(Process):
    """``python -m hospes ARGS``; for ``serve``, :attr:`port` is the one its banner shows."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, **popen) -> None:
        super().__init__([sys.executable, "-m", "hospes", *args], env, **popen)
        self.port = 0

    def listening(self, timeout: float = 15) -> int:
        """Wait for the start-up banner; the port it shows, once connections are accepted.

        ``--workers N`` prints the banner before the workers listen: the port is
        tried until one accepts.
        """
        self.port = int(self.wait_for_line(_LISTENING, timeout=timeout).group(2))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self.port
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"not listening on {self.port}: {self.stderr}") from None
                time.sleep(0.02)


def serve_process(args: list[str], env: dict[str, str] | None = None, **popen) -> Hospes:
    """Start ``hospes serve --port 0 ARGS`` and wait until it listens (its port: ``.port``)."""
    process = Hospes(["serve", "--port", "0", *args], env, **popen)
    try:
        process.listening()
    except BaseException:
        process.stop(signal.SIGKILL)
        raise
    return process
