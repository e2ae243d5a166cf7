"""TLS session resumption over real TLS: identities stay with their sessions, never shared.

hospes issues stateful TLS 1.3 tickets (``OP_NO_TICKET``): a ticket is a
session id into the server's cache, where the session keeps the client
certificate of the full handshake that made it.  What these tests prove:

* a resumed session presents the identity of the handshake that created it,
  and so does each of two clients resuming its own session;
* the certificate that counts is the one proven in the full handshake: a
  resumed handshake asks for none (``VERIFY_CLIENT_ONCE``), so a client that
  changes identity must make a new session;
* a session id or ticket alone (stolen from the wire or a file) resumes
  nothing: the resumption is bound to the session's secret, which only the
  client that made it has;
* the session cache stays within its memory budget against a client that
  sends huge certificates;
* a client that offers only the post-quantum ``X25519MLKEM768`` key share is
  answered with it.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from helpers import CertFactory, CertFiles, identity_of, s_client
from hospes.app.request import Request
from hospes.app.routing import Application
from hospes.server import tls

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def whoami(request: Request) -> str:
    identity = request.identity
    return "anonymous\n" if identity is None else f"{identity.fingerprint}\n"


@pytest.fixture
def server(serve):
    app = Application()
    app.add_route("/whoami", whoami)
    return serve(app)


def client(version: str, cert: CertFiles | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = VERSIONS[version]
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


def whoami_over(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[str, ssl.SSLSession, bool]:
    """GET /whoami: (the identity the server saw, the session to resume, whether it resumed)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost", session=session) as conn,
    ):
        conn.sendall(f"gemini://localhost:{port}/whoami\r\n".encode())
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        session_now = conn.session
        reused = conn.session_reused
    assert data.startswith(b"20 "), data
    assert session_now is not None
    return data.partition(b"\r\n")[2].decode().strip(), session_now, reused


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumed_sessions_present_the_identity_of_their_full_handshake(server, certs, version):
    alice = certs.make("alice")
    context = client(version, alice)
    seen, session, reused = whoami_over(server.port, context)
    assert (seen, reused) == (identity_of(alice).fingerprint, False)
    for _ in range(3):  # each resumption hands out a new ticket: resume from the latest
        seen, session, reused = whoami_over(server.port, context, session)
        assert reused
        assert seen == identity_of(alice).fingerprint


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_two_clients_resuming_each_keep_their_own_identity(server, certs, version):
    alice, bob = certs.make("alice"), certs.make("bob")
    contexts = {"alice": client(version, alice), "bob": client(version, bob)}
    expected = {"alice": identity_of(alice).fingerprint, "bob": identity_of(bob).fingerprint}
    sessions = {}
    for name in ("alice", "bob"):
        seen, sessions[name], _ = whoami_over(server.port, contexts[name])
        assert seen == expected[name]
    for name in ("alice", "bob", "bob", "alice", "alice", "bob"):
        seen, sessions[name], reused = whoami_over(server.port, contexts[name], sessions[name])
        assert reused, name
        assert seen == expected[name]


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_a_resumed_handshake_asks_for_no_certificate(server, certs, tmp_path, version):
    # VERIFY_CLIENT_ONCE: the identity is the one proven when the session was made; a
    # certificate the client loaded since is not even asked for, so a client that changes
    # identity must not resume (and the tests of hospes' client check it does not).
    alice, bob = certs.make("alice"), certs.make("bob")
    url = server.url("/whoami")
    saved = {name: tmp_path / f"{name}.pem" for name in ("alice", "anonymous")}
    s_client(server.port, url, cert=alice, options=(version, "-sess_out", str(saved["alice"])))
    s_client(server.port, url, options=(version, "-sess_out", str(saved["anonymous"])))
    as_bob = s_client(
        server.port, url, cert=bob, options=(version, "-sess_in", str(saved["alice"])), quiet=False
    )
    assert b"Reused," in as_bob.stdout
    assert identity_of(alice).fingerprint.encode() in as_bob.stdout
    assert identity_of(bob).fingerprint.encode() not in as_bob.stdout
    as_bob = s_client(
        server.port,
        url,
        cert=bob,
        options=(version, "-sess_in", str(saved["anonymous"])),
        quiet=False,
    )
    assert b"Reused," in as_bob.stdout
    assert b"anonymous" in as_bob.stdout
    fresh = s_client(server.port, url, cert=bob, options=(version,))  # a new session: bob
    assert identity_of(bob).fingerprint.encode() in fresh.stdout


def _der_elements(der: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the contents of each element of the outer DER SEQUENCE."""

    def header(at: int) -> tuple[int, int]:
        first = der[at + 1]
        if first < 0x80:
            return at + 2, first
        count = first & 0x7F
        return at + 2 + count, int.from_bytes(der[at + 2 : at + 2 + count], "big")

    start, length = header(0)
    elements, at = [], start
    while at < start + length:
        content, size = header(at)
        elements.append((content, size))
        at = content + size
    return elements


def _without_secret(session_pem: bytes) -> bytes:
    """The session as a thief would have it: the id (or ticket), a wrong master secret."""
    body = b"".join(line for line in session_pem.splitlines() if not line.startswith(b"-----"))
    der = bytearray(base64.b64decode(body))
    # SSL_SESSION ::= SEQUENCE { version, ssl_version, cipher, session_id, master_key, ... }
    offset, size = _der_elements(bytes(der))[4]
    der[offset : offset + size] = os.urandom(size)
    lines = [base64.b64encode(bytes(der))[i : i + 64] for i in range(0, len(der) * 2, 64)]
    text = b"\n".join(line for line in lines if line)
    return (
        b"-----BEGIN SSL SESSION PARAMETERS-----\n"
        + text
        + b"\n-----END SSL SESSION PARAMETERS-----\n"
    )


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_a_stolen_session_id_or_ticket_resumes_nothing(server, certs, tmp_path, version):
    alice, mallory = certs.make("alice"), certs.make("mallory")
    url = server.url("/whoami")
    saved = tmp_path / "alice.pem"
    first = s_client(server.port, url, cert=alice, options=(version, "-sess_out", str(saved)))
    assert first.status == 20
    assert identity_of(alice).fingerprint.encode() in first.stdout
    stolen = tmp_path / "stolen.pem"
    stolen.write_bytes(_without_secret(saved.read_bytes()))
    # Without a certificate: the server must not fall back on alice's identity.
    for cert in (None, mallory):
        theft = s_client(
            server.port, url, cert=cert, options=(version, "-sess_in", str(stolen)), quiet=False
        )
        assert identity_of(alice).fingerprint.encode() not in theft.stdout
        if b"\n20 " in theft.stdout:  # the server fell back on a full handshake: fine
            assert b"Reused," not in theft.stdout
            who = "anonymous" if cert is None else identity_of(cert).fingerprint
            assert who.encode() in theft.stdout
        else:  # it failed the handshake (TLS 1.2: the Finished does not verify)
            assert theft.returncode != 0 or b"\n2" not in theft.stdout
    genuine = s_client(server.port, url, options=(version, "-sess_in", str(saved)), quiet=False)
    if version == "-tls1_3":  # the session with its real secret resumes: the tampering failed
        assert b"Reused," in genuine.stdout
        assert identity_of(alice).fingerprint.encode() in genuine.stdout
    else:  # OpenSSL drops a TLS 1.2 session whose abbreviated handshake failed: a new one
        assert b"Reused," not in genuine.stdout
        assert b"anonymous" in genuine.stdout


def _rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def test_session_cache_stays_within_its_budget_against_huge_certificates(serve, certs, monkeypatch):
    # A certificate of 3,000 names (about 60 kB of DER) costs about 440 kB in every cached
    # session: 100 full handshakes would hold 44 MB without the budget.
    monkeypatch.setattr(tls, "SESSION_BUDGET", 4 * 2**20)
    app = Application()
    app.add_route("/whoami", whoami)
    server = serve(app)
    huge = certs.make("huge", hostnames=[f"h{index:05d}.example.org" for index in range(3000)])
    context = client("1.3", huge)
    whoami_over(server.port, context)
    before = _rss_kib()
    for _ in range(100):
        seen, session, _ = whoami_over(server.port, context)
        assert seen == identity_of(huge).fingerprint
    grown = _rss_kib() - before
    budget = server.server.contexts.sessions
    assert not budget.storing
    assert budget.estimate > 4 * 2**20
    assert grown < 20_000, f"RSS grew by {grown} KiB"
    # Over budget, sessions are not stored: a resumption falls back to a full handshake,
    # with the right identity.
    seen, _, reused = whoami_over(server.port, context, session)
    assert (seen, reused) == (identity_of(huge).fingerprint, False)


def _client_hello_offering_only_mlkem() -> bytes:
    """A TLS 1.3 ClientHello whose only group and key share is X25519MLKEM768 (0x11EC)."""
    group = 0x11EC
    # ML-KEM-768 encapsulation key: 384 * 3 bytes of coefficients (zero is a valid one) and
    # a 32-byte seed, then the X25519 public key.
    mlkem = bytes(1152) + os.urandom(32)
    x25519_public = (
        x25519.X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    share = mlkem + x25519_public

    def extension(kind: int, data: bytes) -> bytes:
        return struct.pack("!HH", kind, len(data)) + data

    name = b"localhost"
    extensions = b"".join(
        [
            extension(0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),
            extension(0x000A, struct.pack("!HH", 2, group)),
            extension(0x000D, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0807)),
            extension(0x002B, b"\x02\x03\x04"),
            extension(0x0033, struct.pack("!HHH", len(share) + 4, group, len(share)) + share),
        ]
    )
    body = (
        b"\x03\x03"
        + os.urandom(32)
        + b"\x20"
        + os.urandom(32)
        + struct.pack("!HHHH", 6, 0x1301, 0x1302, 0x1303)
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def test_a_client_offering_only_x25519mlkem768_is_answered_with_it(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_client_hello_offering_only_mlkem())
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {data!r}"
            data += chunk
    assert data[0] == 0x16, f"not a handshake record (an alert?): {data[:7]!r}"
    hello = data[5:]
    assert hello[0] == 0x02  # ServerHello
    retry = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
    assert hello[6:38] != retry  # the random of a HelloRetryRequest
    # The key_share extension (0x0033) names the group the server chose.
    extensions = hello[4 + 2 + 32 + 1 + hello[38] + 3 :]
    extensions = extensions[2:]
    found = {}
    while extensions:
        kind, size = struct.unpack("!HH", extensions[:4])
        found[kind] = extensions[4 : 4 + size]
        extensions = extensions[4 + size :]
    group, length = struct.unpack("!HH", found[0x0033][:4])
    assert group == 0x11EC
    assert length == 1088 + 32  # an ML-KEM-768 ciphertext and an X25519 public key


def test_session_budget_counts_the_chain_and_lets_old_sessions_go(certs: CertFactory):
    # The budget's arithmetic on a real connection object, with a clock the test moves.
    now = [0.0]
    budget = tls.SessionBudget(100_000, 300, clock=lambda: now[0])
    server_cert = certs.make("server", hostnames=["localhost"])
    host = tls.load_server_context(server_cert.cert, server_cert.key)
    contexts = tls.ServerContexts({"localhost": host})
    connection = contexts.connection(None)
    budget.handshake(connection, None)
    assert budget.estimate == 2_400  # two sessions, no certificate
    connection.set_app_data(connection.get_app_data() | 2)  # as if it had sent a chain
    budget.handshake(connection, b"x" * 1000)
    assert budget.estimate == 2 * 2_400 + 1_024 + 8 * 1000
    for _ in range(10):
        budget.handshake(connection, b"x" * 1000)
    assert not budget.storing  # 12 handshakes of ~10 kB: over 100 kB
    now[0] = 301.0  # every session has expired: the cache lets them go
    budget.handshake(contexts.connection(None), None)
    assert budget.estimate == 2_400
    assert budget.storing
