"""The client against ``openssl s_server``: TOFU, identities and malformed responses over real TLS.

s_server is a peer hospes did not write.  It runs with ``-msg``, which prints
every TLS message it receives, and echoes the application data it receives,
so a test can prove what the client sent: no request, no client certificate.
It answers with whatever the test writes to its stdin once the request line
arrived, and closes when stdin is closed (without a TLS close_notify: s_server
shuts the socket first, which the client reports as a possible truncation).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import CertFactory, CertFiles
from hospes.cli import main
from hospes.client import (
    CertificateUntrusted,
    Client,
    FetchTimeout,
    IdentityStore,
    KeyChanged,
    KnownHosts,
    MalformedResponse,
    Scope,
    TLSFailure,
    Verdict,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

_START_TIMEOUT = 10.0


class OpenSSLServer:
    """``openssl s_server`` for one connection on ``port``, answering ``response``.

    ``response=None`` never answers (the client must time out); ``b""`` closes
    right after the request; ``keep_open`` sends the response but keeps the
    connection open.
    """

    def __init__(
        self,
        cert: CertFiles,
        port: int,
        response: bytes | None = b"20 text/gemini\r\nhello\r\n",
        *,
        tls12: bool = False,
        keep_open: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.response = response
        self.keep_open = keep_open
        self.output = b""
        self._lock = threading.Lock()
        command = [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-naccept",
            "1",
            "-cert",
            str(cert.cert),
            "-key",
            str(cert.key),
            "-verify",
            "1",
            "-msg",
        ]
        if tls12:
            command.append("-tls1_2")
        command.extend(extra)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while b"ACCEPT" not in self.text_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"s_server did not start: {self.output!r}")
            time.sleep(0.01)
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def text_bytes(self) -> bytes:
        with self._lock:
            return self.output

    def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            data = self.process.stdout.read1(65536)
            if not data:
                return
            with self._lock:
                self.output += data

    def _feed(self) -> None:
        """Answer once the request line (the only CRLF s_server prints) has arrived."""
        assert self.process.stdin is not None
        deadline = time.monotonic() + 30
        while b"\r\n" not in self.text_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                return
            time.sleep(0.01)
        if self.response is None:
            return
        with contextlib.suppress(OSError):
            self.process.stdin.write(self.response)
            self.process.stdin.flush()
            if not self.keep_open:
                self.process.stdin.close()

    def stop(self) -> bytes:
        """Stop the server (if it did not exit by itself) and return everything it printed."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        return self.text_bytes()

    # -- what the server received --------------------------------------------------------

    def received_request(self) -> bool:
        return b"gemini://" in self.text_bytes()

    def received_messages(self) -> list[str]:
        """The TLS messages the client sent (``<<<`` lines of -msg), e.g. ``Certificate``."""
        text = self.text_bytes().decode("latin-1")
        return re.findall(r"^<<< [^,\n]*, (?:Handshake|Alert) \[length \w+\], (\w+)", text, re.M)

    def received_client_certificate(self) -> bool:
        return b"Client certificate" in self.text_bytes()


@pytest.fixture
def s_server():
    """Start s_server instances with ``s_server(cert, port, response, ...)``; all stopped after."""
    started: list[OpenSSLServer] = []

    def start(*args, **kwargs) -> OpenSSLServer:
        server = OpenSSLServer(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def hold_port():
    """Free loopback ports, held for the test: ``hold_port()`` returns a new one.

    Each is bound (never listened on) with SO_REUSEADDR until the test ends: the
    s_server instances of a test take turns on it (they set SO_REUSEADDR too, and a
    client's pin is per port), and no other program can be given it meanwhile.
    """
    held: list[socket.socket] = []

    def hold() -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
        return int(sock.getsockname()[1])

    yield hold
    for sock in held:
        sock.close()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The client's files, in the test's directory (also for commands run without --data-dir)."""
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


def fetch(data_dir: Path, url: str, **options):
    kwargs = {
        key: options.pop(key) for key in ("identity", "input", "accept_key") if key in options
    }
    options.setdefault("timeout", 10)

    async def run():
        return await Client(data_dir=data_dir, **options).fetch(url, **kwargs)

    return asyncio.run(run())


def server_cert(certs: CertFactory, name: str = "localhost", **kwargs) -> CertFiles:
    kwargs.setdefault("hostnames", [name])
    return certs.make(name, **kwargs)


# -- TOFU ---------------------------------------------------------------------------------------


def test_first_use_renewal_and_key_change(hold_port, s_server, certs, data_dir):
    port = hold_port()
    url = f"gemini://localhost:{port}/"
    first = server_cert(certs)
    server = s_server(first, port)
    response = fetch(data_dir, url)
    server.stop()
    assert response.status == 20
    assert response.body == b"hello\r\n"
    assert response.trust.verdict is Verdict.FIRST_USE
    assert server.received_request()
    pin = KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port)
    assert pin is not None
    assert pin.key_fingerprint == response.certificate.key_fingerprint
    assert pin.times_seen == 1

    # The same certificate again: known.
    server = s_server(first, port)
    assert fetch(data_dir, url).trust.verdict is Verdict.KNOWN
    server.stop()

    # A renewal: the same key in a new certificate is accepted and recorded.
    renewed = certs.renewal(first, name="localhost")
    server = s_server(renewed, port)
    response = fetch(data_dir, url)
    server.stop()
    assert response.status == 20
    assert response.trust.verdict is Verdict.RENEWED
    assert response.trust.previous is not None
    assert response.trust.previous.cert_fingerprint == pin.cert_fingerprint
    pin2 = KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port)
    assert pin2 is not None
    assert pin2.key_fingerprint == pin.key_fingerprint
    assert pin2.cert_fingerprint == response.certificate.fingerprint != pin.cert_fingerprint
    assert pin2.times_seen == 3
    assert pin2.first_seen == pin.first_seen

    # A new key: refused during the handshake.
    impostor = server_cert(certs)
    server = s_server(impostor, port)
    with pytest.raises(KeyChanged) as caught:
        fetch(data_dir, url)
    output = server.stop()
    assert caught.value.pinned.key_fingerprint == pin.key_fingerprint
    assert caught.value.presented.key_fingerprint != pin.key_fingerprint
    assert not server.received_request(), output
    # The pin is untouched.
    assert KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port) == pin2


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])
def test_key_change_sends_neither_request_nor_certificate(
    hold_port, s_server, certs, data_dir, tls12
):
    """The impostor sees a ClientHello and an alert: no Certificate, no request."""
    port = hold_port()
    url = f"gemini://localhost:{port}/private/"
    identities = IdentityStore(data_dir / "identities")
    identities.create("alice")
    identities.add_scope("alice", Scope.parse(f"gemini://localhost:{port}/private/"))

    # Control: with the right key, the identity and the request do reach the server.
    genuine = server_cert(certs)
    server = s_server(genuine, port, tls12=tls12)
    assert fetch(data_dir, url).status == 20
    server.stop()
    assert server.received_request()
    assert server.received_client_certificate()
    assert "Certificate" in server.received_messages()

    impostor = server_cert(certs)
    server = s_server(impostor, port, tls12=tls12)
    with pytest.raises(KeyChanged):
        fetch(data_dir, url)
    output = server.stop()
    messages = server.received_messages()
    assert messages[0] == "ClientHello", output
    assert "Certificate" not in messages, output
    assert "Finished" not in messages, output
    assert not server.received_client_certificate()
    assert not server.received_request()
    assert b"alert" in output.lower()


def test_cli_key_change_message_and_explicit_trust(hold_port, s_server, certs, data_dir, capsys):
    port = hold_port()
    url = f"gemini://localhost:{port}/"
    flags = ["--data-dir", str(data_dir)]
    server = s_server(server_cert(certs), port)
    assert main(["get", *flags, url]) == 0
    server.stop()
    first = capsys.readouterr()
    assert first.out == "hello\r\n"
    assert "first contact" in first.err
    old_pin = KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port)
    assert old_pin is not None

    new = server_cert(certs)
    server = s_server(new, port)
    assert main(["get", *flags, url]) == 13
    server.stop()
    assert not server.received_request()
    err = capsys.readouterr().err
    assert f"localhost:{port}" in err
    assert old_pin.key_fingerprint in err
    new_key = re.search(r"presented key\s+(SHA256:[0-9a-f]{64})", err)
    assert new_key is not None
    command = f"hospes known-hosts trust localhost:{port} --key {new_key.group(1)} " + " ".join(
        flags
    )
    assert command in err
    assert f"first seen {old_pin.first_seen:%Y-%m-%d}" in err

    # The exact command from the message, run as printed (minus the program name).
    server = s_server(new, port, response=None)
    assert main(command.split()[1:]) == 0
    server.stop()
    assert not server.received_request()
    pinned = KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port)
    assert pinned is not None
    assert pinned.key_fingerprint == new_key.group(1)

    server = s_server(new, port)
    assert main(["get", *flags, url]) == 0
    server.stop()


def test_trust_with_wrong_key_changes_nothing(hold_port, s_server, certs, data_dir, capsys):
    port = hold_port()
    server = s_server(server_cert(certs), port, response=None)
    code = main(["known-hosts", "trust", f"localhost:{port}", "--key", "SHA256:" + "ab" * 32])
    server.stop()
    assert code == 1
    assert "nothing was changed" in capsys.readouterr().err
    assert KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port) is None


def test_accept_key_for_one_call(hold_port, s_server, certs, data_dir):
    port = hold_port()
    url = f"gemini://localhost:{port}/"
    server = s_server(server_cert(certs), port)
    fetch(data_dir, url)
    server.stop()
    new = server_cert(certs)
    server = s_server(new, port)
    with pytest.raises(KeyChanged) as caught:
        fetch(data_dir, url, accept_key="SHA256:" + "00" * 32)  # another key: still refused
    server.stop()
    presented = caught.value.presented.key_fingerprint
    server = s_server(new, port)
    response = fetch(data_dir, url, accept_key=presented)
    server.stop()
    assert response.trust.verdict is Verdict.KEY_ACCEPTED
    assert server.received_request()
    server = s_server(new, port)
    assert fetch(data_dir, url).trust.verdict is Verdict.KNOWN
    server.stop()


# -- hostnames ----------------------------------------------------------------------------------


def test_hostname_mismatch_is_reported_not_fatal_by_default(
    hold_port, s_server, certs, data_dir, capsys
):
    port = hold_port()
    cert = server_cert(certs, "example.org")
    server = s_server(cert, port)
    code = main(["get", "-v", "--data-dir", str(data_dir), f"gemini://localhost:{port}/"])
    server.stop()
    assert code == 0
    err = capsys.readouterr().err
    assert "NOT named in the certificate" in err
    assert "DNS:example.org" in err


def test_verify_hostname_makes_a_mismatch_fatal_before_sending(
    hold_port, s_server, certs, data_dir
):
    port = hold_port()
    server = s_server(server_cert(certs, "example.org"), port)
    with pytest.raises(CertificateUntrusted, match="not issued for localhost"):
        fetch(data_dir, f"gemini://localhost:{port}/", verify_hostname=True)
    server.stop()
    assert not server.received_request()
    # Nothing was pinned either: the connection was refused.
    assert KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", port) is None


def test_verify_hostname_accepts_a_matching_certificate(hold_port, s_server, certs, data_dir):
    port = hold_port()
    server = s_server(server_cert(certs, "localhost"), port)
    response = fetch(data_dir, f"gemini://localhost:{port}/", verify_hostname=True)
    server.stop()
    assert response.status == 20
    assert response.trust.hostname_matches


# -- identities -----------------------------------------------------------------------------


def test_identity_sent_only_inside_its_scope(hold_port, s_server, certs, data_dir):
    port = hold_port()
    identities = IdentityStore(data_dir / "identities")
    identities.create("alice")
    identities.add_scope("alice", Scope.parse(f"gemini://localhost:{port}/app/"))
    cert = server_cert(certs)
    for path, sent in [("/app/page", True), ("/app", True), ("/apple", False), ("/", False)]:
        server = s_server(cert, port)
        response = fetch(data_dir, f"gemini://localhost:{port}{path}")
        server.stop()
        assert server.received_request()
        assert server.received_client_certificate() is sent, path
        assert (response.identity is not None) is sent
    # Dot segments do not smuggle a URL into the scope.
    server = s_server(cert, port)
    fetch(data_dir, f"gemini://localhost:{port}/app/../secret")
    server.stop()
    assert not server.received_client_certificate()


# -- the end of the stream ----------------------------------------------------------------------


def test_response_without_close_notify_is_reported(hold_port, s_server, certs, data_dir):
    port = hold_port()
    server = s_server(server_cert(certs), port)
    response = fetch(data_dir, f"gemini://localhost:{port}/")
    server.stop()
    assert response.body == b"hello\r\n"
    assert response.clean_close is False


# -- malformed responses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"20 text/gemini\nhello\n", "closed the connection in the middle of the header"),
        (b"2 text/gemini\r\n", "invalid status"),
        (b"20 " + b"m" * 1100 + b"\r\n", "longer than"),
        (b"\x00\x01\xffgarbage\r\n", "invalid status"),
        (b"20text/gemini\r\n", "no space after the status"),
        (b"20 \xff\xfe\r\n", "not valid UTF-8"),
        (b"", "without a response"),
    ],
    ids=["no-crlf", "one-digit", "long-meta", "garbage", "no-space", "bad-utf8", "early-close"],
)
def test_malformed_responses(hold_port, s_server, certs, data_dir, response, message):
    port = hold_port()
    server = s_server(server_cert(certs), port, response)
    with pytest.raises(MalformedResponse, match=message):
        fetch(data_dir, f"gemini://localhost:{port}/", timeout=20)
    server.stop()


def test_an_overlong_header_fails_without_waiting_for_the_close(
    hold_port, s_server, certs, data_dir
):
    """The header limit is enforced as bytes arrive, not when the server gives up."""
    port = hold_port()
    server = s_server(server_cert(certs), port, b"20 " + b"m" * 1100, keep_open=True)
    with pytest.raises(MalformedResponse, match="longer than"):
        fetch(data_dir, f"gemini://localhost:{port}/", timeout=30)
    server.stop()


def test_silent_server_times_out(hold_port, s_server, certs, data_dir):
    port = hold_port()
    server = s_server(server_cert(certs), port, None)
    with pytest.raises(FetchTimeout, match="response header"):
        fetch(data_dir, f"gemini://localhost:{port}/", timeout=1)
    server.stop()


def test_cli_exit_codes_for_malformed_and_silent_servers(
    hold_port, s_server, certs, data_dir, capsys
):
    flags = ["--data-dir", str(data_dir)]
    port = hold_port()
    server = s_server(server_cert(certs), port, b"2 x\r\n")
    assert main(["get", *flags, f"gemini://localhost:{port}/"]) == 15
    server.stop()
    port = hold_port()
    server = s_server(server_cert(certs), port, None)
    assert main(["get", *flags, "--timeout", "1", f"gemini://localhost:{port}/"]) == 11
    server.stop()
    err = capsys.readouterr().err
    assert "malformed response header" in err
    assert "timed out" in err


def test_meta_is_escaped_on_stderr(hold_port, s_server, certs, data_dir, capsys):
    """A hostile meta is escaped by ``hospes get`` (hospes' own server refuses to send one)."""
    port = hold_port()
    server = s_server(server_cert(certs), port, b"20 text/gemini; note=\x1b]0;pwned\x07\r\nhi\n")
    assert main(["get", "--data-dir", str(data_dir), f"gemini://localhost:{port}/"]) == 0
    server.stop()
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\x07" not in err
    assert "\\x1b]0;pwned\\x07" in err


def test_not_tls_at_all(data_dir):
    """A plain TCP server that answers in clear text: a TLS failure, not a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"20 text/plain\r\nplain text, no TLS\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(TLSFailure, match="handshake"):
            fetch(data_dir, f"gemini://localhost:{port}/", timeout=10)
        thread.join(5)


# -- TLS ----------------------------------------------------------------------------------------


def test_server_name_indication_is_sent(hold_port, s_server, certs, data_dir):
    """s_server presents its second certificate only to a client that sent SNI "localhost"."""
    port = hold_port()
    default = server_cert(certs, "default.example")
    named = server_cert(certs)
    server = s_server(
        default,
        port,
        extra=("-servername", "localhost", "-cert2", str(named.cert), "-key2", str(named.key)),
    )
    response = fetch(data_dir, f"gemini://localhost:{port}/")
    server.stop()
    assert response.certificate.dns_names == ("localhost",)
    # An IP address is never sent as SNI (RFC 6066): the default certificate comes back.
    port = hold_port()
    server = s_server(
        default,
        port,
        extra=("-servername", "localhost", "-cert2", str(named.cert), "-key2", str(named.key)),
    )
    response = fetch(data_dir, f"gemini://127.0.0.1:{port}/")
    server.stop()
    assert response.certificate.dns_names == ("default.example",)


def test_tls_older_than_1_2_is_refused(hold_port, s_server, certs, data_dir):
    port = hold_port()
    server = s_server(server_cert(certs), port, extra=("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"))
    with pytest.raises(TLSFailure, match="protocol"):
        fetch(data_dir, f"gemini://localhost:{port}/")
    server.stop()
    assert not server.received_request()
