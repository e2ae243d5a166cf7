"""Attack tools for the hostile-load tests: clients from chosen loopback addresses, raw
ClientHellos to trickle, file-descriptor and memory counts.

Every address used is on the loopback range (127.0.0.0/8 or ::1): Linux routes
all of 127/8 to the loopback interface, so a test can play many clients.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import ssl
import struct
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID, ObjectIdentifier

from helpers import CertFiles, RawResponse
from hospes.selfsigned import PrivateKey, generate_key, write_certificate, write_private_key

_RESET = struct.pack("ii", 1, 0)


def odd_certificate(
    common_name: str, *, key: PrivateKey | None = None, extra: bytes = b""
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed certificate with any common name (no length check) and ``extra`` bytes
    of an unknown extension, which the hospes helpers rightly refuse to make."""
    key = key or generate_key("ecdsa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # longer than the 64 characters X.520 allows: on purpose
        attribute = x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False)
    name = x509.Name([attribute])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if extra:
        oid = ObjectIdentifier("1.3.6.1.4.1.55555.1")
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, extra), critical=False)
    return builder.sign(key, hashes.SHA256()), key


def odd_certificate_files(directory: Path, common_name: str, *, extra: bytes = b"") -> CertFiles:
    """:func:`odd_certificate` written as PEM files in ``directory``."""
    cert, key = odd_certificate(common_name, extra=extra)
    stem = directory / f"odd-{len(list(directory.iterdir()))}"
    files = CertFiles(stem.with_suffix(".crt"), stem.with_suffix(".key"), key)
    write_certificate(files.cert, cert)
    write_private_key(files.key, key)
    return files


def client_context(cert: CertFiles | None = None) -> ssl.SSLContext:
    """A stdlib TLS client context that accepts the server's self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A TCP connection to the server from the loopback address ``source``."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.bind((source, 0))
        sock.connect((source if ":" in source else "127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def tls_connect(
    port: int,
    source: str = "127.0.0.1",
    *,
    cert: CertFiles | None = None,
    timeout: float = 5.0,
) -> ssl.SSLSocket:
    """A TLS connection, handshake done, from ``source``."""
    sock = connect(port, source, timeout)
    try:
        return client_context(cert).wrap_socket(
            sock, server_hostname="localhost", suppress_ragged_eofs=False
        )
    except BaseException:
        sock.close()
        raise


def request(
    port: int,
    line: str | bytes,
    source: str = "127.0.0.1",
    *,
    cert: CertFiles | None = None,
    timeout: float = 5.0,
) -> RawResponse:
    """One request from ``source``, read to close_notify (like ``helpers.raw_request``)."""
    if isinstance(line, str):
        line = line.encode() + b"\r\n"
    with tls_connect(port, source, cert=cert, timeout=timeout) as tls:
        tls.sendall(line)
        data = read_all(tls)
    header, _, body = data.partition(b"\r\n")
    text = header.decode("utf-8")
    status, _, meta = text.partition(" ")
    return RawResponse(text, body, int(status), meta)


def read_all(tls: ssl.SSLSocket) -> bytes:
    chunks = []
    while True:
        data = tls.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def refused_at_accept(port: int, source: str = "127.0.0.1") -> bool:
    """Whether the server closes a new connection from ``source`` without a TLS handshake."""
    try:
        with contextlib.closing(connect(port, source)) as sock:
            sock.sendall(client_hello())
            return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def client_hello(server_name: str = "localhost") -> bytes:
    """The bytes of a real TLS ClientHello (from the stdlib, through memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    sock.close()


def open_fds() -> int:
    """File descriptors open in this process (the in-process server's included)."""
    return len(os.listdir("/proc/self/fd"))


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@dataclass
class Memory:
    """Resident memory of a process from /proc (kB)."""

    rss: int
    peak: int

    @classmethod
    def of(cls, pid: int | str = "self") -> Memory:
        values = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
        return cls(values["VmRSS"], values["VmHWM"])
