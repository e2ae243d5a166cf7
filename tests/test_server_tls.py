"""The server over real TLS on loopback: handshakes, client certificates, 6x, request limits."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from helpers import CertFactory, CertFiles, identity_of, raw_request, s_client
from hospes.app.access import AccessRule, Requirement
from hospes.app.request import Request
from hospes.app.routing import Application
from hospes.config import Config, HostConfig
from hospes.gemini.fingerprint import fingerprint
from hospes.policy.clock import ManualClock
from hospes.selfsigned import generate_key, write_certificate, write_private_key
from hospes.server import Limits


def whoami(request: Request) -> str:
    identity = request.identity
    if identity is None:
        return f"anonymous problem={request.certificate_problem}\n"
    return f"{identity.fingerprint} {identity.key_type} {identity.name}\n"


def make_app() -> Application:
    app = Application()
    app.add_route("/", lambda request: "home\n")
    app.add_route("/whoami", whoami)
    app.add_route("/cert/page", whoami)
    app.add_route("/allow/page", whoami)
    return app


def access_config(allowed: list[str]) -> Config:
    return Config(
        hosts=[HostConfig("localhost")],
        access=[
            AccessRule("/cert/", Requirement.CERTIFICATE),
            AccessRule("/allow/", Requirement.ALLOWLIST, fingerprints=frozenset(allowed)),
        ],
    )


@pytest.fixture
def alice(certs: CertFactory) -> CertFiles:
    return certs.make("alice")


@pytest.fixture
def guarded(serve, alice):
    return serve(make_app(), config=access_config([identity_of(alice).fingerprint]))


# -- the 6x outcomes, each proved with openssl s_client -------------------------------------


def test_60_without_certificate_openssl(guarded):
    result = s_client(guarded.port, guarded.url("/cert/page"))
    assert result.status == 60, result.stderr
    assert "certificate" in result.header


def test_20_with_any_valid_certificate_openssl(guarded, certs):
    bob = certs.make("bob")
    result = s_client(guarded.port, guarded.url("/cert/page"), cert=bob)
    assert result.status == 20, result.stdout
    assert b"ECDSA P-256 bob" in result.stdout


def test_62_expired_certificate_openssl(guarded, certs):
    result = s_client(guarded.port, guarded.url("/cert/page"), cert=certs.expired())
    assert result.status == 62
    assert "expired" in result.header


def test_62_not_yet_valid_certificate_openssl(guarded, certs):
    result = s_client(guarded.port, guarded.url("/cert/page"), cert=certs.not_yet_valid())
    assert result.status == 62
    assert "not valid before" in result.header


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_62_weak_rsa_key_openssl(guarded, certs, version):
    weak = certs.make("weak", kind="rsa", rsa_bits=1024)
    result = s_client(guarded.port, guarded.url("/cert/page"), cert=weak, options=(version,))
    assert result.status == 62, result.stderr
    assert "1024 bits is too weak" in result.header


def test_62_bad_self_signature_openssl(guarded, certs, tmp_path):
    key, forger = generate_key("ecdsa"), generate_key("ecdsa")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(42)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(forger, hashes.SHA256())
    )
    files = CertFiles(tmp_path / "forged.crt", tmp_path / "forged.key", key)
    write_certificate(files.cert, cert)
    write_private_key(files.key, key)
    result = s_client(guarded.port, guarded.url("/cert/page"), cert=files)
    assert result.status == 62, result.stderr
    assert "self-signature" in result.header


def test_61_not_on_allowlist_openssl(guarded, certs):
    stranger = certs.make("stranger")
    result = s_client(guarded.port, guarded.url("/allow/page"), cert=stranger)
    assert result.status == 61
    assert "allow-list" in result.header


def test_20_on_allowlist_openssl(guarded, alice):
    result = s_client(guarded.port, guarded.url("/allow/page"), cert=alice)
    assert result.status == 20


def test_allowlist_by_key_survives_renewal(serve, certs):
    alice = certs.make("alice")
    server = serve(make_app(), config=access_config([identity_of(alice).key_fingerprint]))
    assert raw_request(server.port, server.url("/allow/page"), cert=alice).status == 20
    renewed = certs.renewal(alice)
    assert raw_request(server.port, server.url("/allow/page"), cert=renewed).status == 20
    assert raw_request(server.port, server.url("/allow/page"), cert=certs.make("eve")).status == 61


def test_order_62_before_61(guarded, certs):
    """An expired certificate on an allow-listed page is told it is expired, not unauthorised."""
    result = raw_request(guarded.port, guarded.url("/allow/page"), cert=certs.expired())
    assert result.status == 62


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_other_key_types_are_identified(guarded, certs, kind):
    cert = certs.make(kind, kind=kind)
    result = raw_request(guarded.port, guarded.url("/cert/page"), cert=cert)
    assert result.status == 20
    assert ("Ed25519" if kind == "ed25519" else "RSA").encode() in result.body


def test_public_page_with_invalid_certificate_is_served_without_identity(guarded, certs):
    result = raw_request(guarded.port, guarded.url("/whoami"), cert=certs.expired())
    assert result.status == 20
    assert result.body.startswith(b"anonymous problem=certificate expired")


def test_fingerprint_matches_certificate_der(guarded, alice):
    der = ssl.PEM_cert_to_DER_cert(alice.cert.read_text())
    result = raw_request(guarded.port, guarded.url("/whoami"), cert=alice)
    assert result.body.split()[0].decode() == fingerprint(der)


# -- TLS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_tls_12_and_13_are_served(guarded, version):
    result = s_client(guarded.port, guarded.url("/"), options=(version,))
    assert result.status == 20
    assert result.stdout.endswith(b"home\n")


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_is_refused(guarded, version):
    result = s_client(
        guarded.port, guarded.url("/"), options=(version, "-cipher", "ALL:@SECLEVEL=0")
    )
    assert not result.stdout.startswith(b"20")
    assert guarded.server.stats.responses.total() == 0


def test_response_ends_with_close_notify(guarded):
    # raw_request uses suppress_ragged_eofs=False: a missing close_notify raises.
    assert raw_request(guarded.port, guarded.url("/")).body == b"home\n"


def test_bytes_after_the_request_line_do_not_destroy_the_response(guarded):
    """A client that sent more than its request line (a pipelined request, garbage) still
    gets the whole response: the server reads what is left before closing, as closing a
    socket with unread bytes resets the connection, and the reset can arrive before the
    client has read the response, which it then loses."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for _ in range(3):
        with (
            socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock,
            context.wrap_socket(
                sock, server_hostname="localhost", suppress_ragged_eofs=False
            ) as tls,
        ):
            tls.sendall(guarded.url("/").encode() + b"\r\n" + b"x" * 20_000)
            time.sleep(0.3)  # the server has answered and closed by now
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        assert data == b"20 text/gemini\r\nhome\n"


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_session_resumption_keeps_the_client_identity(guarded, alice, tmp_path, version):
    session = tmp_path / "session.pem"
    url = guarded.url("/cert/page")
    first = s_client(guarded.port, url, cert=alice, options=(version, "-sess_out", str(session)))
    assert first.status == 20
    resumed = s_client(guarded.port, url, options=(version, "-sess_in", str(session)), quiet=False)
    assert b"Reused, TLSv1." in resumed.stdout
    # No certificate was sent this time: the resumed session carries the first one.
    assert first.stdout in resumed.stdout


def test_sni_selects_certificate_per_hostname(serve, tmp_path):
    config = Config(hosts=[HostConfig("alpha.test"), HostConfig("beta.test")])
    server = serve(make_app(), config=config)
    seen = {}
    for name in ("alpha.test", "beta.test"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", server.port)) as sock,
            context.wrap_socket(sock, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            tls.sendall(f"gemini://{name}:{server.port}/\r\n".encode())
            assert tls.recv(100).startswith(b"20")
        cert = x509.load_der_x509_certificate(der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        seen[name] = (fingerprint(der), names.get_values_for_type(x509.DNSName))
    assert seen["alpha.test"][1] == ["alpha.test"]
    assert seen["beta.test"][1] == ["beta.test"]
    assert seen["alpha.test"][0] != seen["beta.test"][0]


# -- the request line ------------------------------------------------------------------------


def test_1024_byte_url_is_served_and_1025_is_refused(guarded):
    prefix = guarded.url("/")
    exact = prefix + "a" * (1024 - len(prefix))
    assert len(exact.encode()) == 1024
    assert raw_request(guarded.port, exact).status == 51
    too_long = raw_request(guarded.port, exact + "a")
    assert too_long.status == 59
    assert "1024" in too_long.meta


def test_bytes_after_crlf_are_ignored(guarded):
    line = (guarded.url("/") + "\r\nGET / HTTP/1.0\r\n\r\n").encode()
    result = raw_request(guarded.port, line)
    assert result.status == 20
    assert result.body == b"home\n"


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"\r\n", 59),
        (b"/relative\r\n", 59),
        (b"gemini://localhost/#frag\r\n", 59),
        (b"gemini://user@localhost/\r\n", 59),
        (b"gemini://localhost/\xff\r\n", 59),
        (b"gemini://localhost/%zz\r\n", 59),
        (b"gemini://localhost/\x1b[1m\r\n", 59),
        (b"\xef\xbb\xbfgemini://localhost/\r\n", 59),
        (b"gemini://localhost/\n", 59),
        (b"https://localhost/\r\n", 53),
        (b"gemini://elsewhere.example/\r\n", 53),
    ],
)
def test_malformed_requests_over_tls(guarded, line, status):
    if line.startswith(b"gemini://localhost/"):
        line = line.replace(b"localhost/", f"localhost:{guarded.port}/".encode(), 1)
    result = raw_request(guarded.port, line)
    assert result.status == status, result.header
    assert result.body == b""


def test_other_port_gets_53(guarded):
    result = raw_request(guarded.port, f"gemini://localhost:{guarded.port + 1}/")
    assert result.status == 53


def test_request_never_completed_is_closed_after_timeout(serve):
    limits = Limits(handshake_timeout=0.5, request_timeout=0.8)
    server = serve(make_app(), limits=limits, clock=ManualClock())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"gemini://localhost")
        server.advance(0.7)  # past the handshake deadline, but the handshake is done
        assert server.server.stats.dropped.total() == 0
        server.advance(0.2)
        try:
            data = tls.recv(100)
        except (ssl.SSLError, ConnectionError):
            data = b""
    assert data == b""
    assert server.server.stats.dropped == {"request_timeout": 1}


def test_handshake_timeout_when_no_client_hello(serve):
    """With the system clock, as in service: the periodic sweep closes it in real time."""
    server = serve(make_app(), limits=Limits(handshake_timeout=0.4))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - start < 3
    assert server.server.stats.dropped["handshake_timeout"] == 1


def test_garbage_instead_of_client_hello_does_not_hurt(guarded):
    for payload in (b"\x00" * 100, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256))):
        with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
            sock.sendall(payload)
            with contextlib.suppress(ConnectionResetError):
                sock.recv(100)
    assert raw_request(guarded.port, guarded.url("/")).status == 20
    assert guarded.server.stats.dropped["tls_error"] == 3


def test_access_log_line(guarded, alice):
    raw_request(guarded.port, guarded.url("/whoami"), cert=alice)
    raw_request(guarded.port, guarded.url("/nothing"))
    deadline = time.monotonic() + 2
    while len(guarded.log_lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    first, second = guarded.log_lines[:2]
    assert f'"{guarded.url("/whoami")}" 20 ' in first
    assert "127.0.0.1:" in first
    assert " SHA256:" in first
    assert f'- "{guarded.url("/nothing")}" 51 0 ' in second
    assert first.endswith("ms")


def test_dual_stack_listener(serve):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = serve(make_app(), host="::")
    except OSError:
        pytest.skip("cannot bind ::")
    assert raw_request(server.port, server.url("/"), host="127.0.0.1").status == 20
    assert raw_request(server.port, server.url("/"), host="::1").status == 20
