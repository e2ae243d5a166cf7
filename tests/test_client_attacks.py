"""The client-side findings of the security review (issue 9: items 4, 5, 6, 7, 9, 12, 15).

Each test performs the attack against the real client (``hospes get``) and a real
server (hospes in-process, or a small TLS server that records what it received),
and fails without the fix.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from helpers import CertFiles, RunningServer, identity_of, raw_request
from hospes.app.request import Request
from hospes.app.response import Response
from hospes.cli import main
from hospes.client import IdentityStore, KnownHosts, Scope
from hospes.config import Config, HostConfig, parse_config
from hospes.gemini.escape import printable, shell_word
from hospes.gemini.fingerprint import fingerprint
from hospes.gemini.url import URLError, parse_url
from hospes.server.tls import ServerContexts, load_server_context
from test_client_hospes import Recorder, reload_certificate, server_files


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


def hospes(capsys, *argv: object) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def pins(data_dir: Path) -> KnownHosts:
    return KnownHosts(data_dir / "known_hosts.sqlite3")


def redirecting(target: Callable[[], str]) -> Callable[[Request], Response]:
    """A capsule whose /start redirects to ``target()``, answering everything else."""

    def handler(request: Request) -> Response:
        if request.path == "/start":
            return Response.redirect(target())
        return Response.success(f"{request.path}\n")

    return handler


def two_hosts(serve, certs, other: Recorder) -> tuple[RunningServer, RunningServer, list[str]]:
    """Host A (localhost) whose /start redirects to ``where[0]`` on host B (127.0.0.1)."""
    second = serve(
        other,
        config=Config(hosts=[HostConfig("127.0.0.1", *_files(server_files(certs, "127.0.0.1")))]),
    )
    where = [second.url("/", hostname="127.0.0.1")]
    first = serve(redirecting(lambda: where[0]))
    return first, second, where


def _files(files: CertFiles) -> tuple[Path, Path]:
    return files.cert, files.key


# -- 4. --accept-key applies only to the host typed ---------------------------------------------


def test_4_accept_key_does_not_follow_a_redirect_to_another_host(serve, certs, data_dir, capsys):
    target = Recorder()
    first, second, where = two_hosts(serve, certs, target)
    b = second.url("/page", hostname="127.0.0.1")
    where[0] = b
    assert hospes(capsys, "get", "-q", b)[0] == 0  # B is pinned
    pinned = pins(data_dir).get("127.0.0.1", second.port)
    assert pinned is not None
    # B's key changes (an impostor, or a new key). The user accepts a key for A only.
    impostor = server_files(certs, "127.0.0.1")
    new_key = identity_of(impostor).key_fingerprint
    contexts = ServerContexts({"127.0.0.1": load_server_context(impostor.cert, impostor.key)})
    second.call(lambda: second.server.reconfigure(contexts=contexts))
    answered = len(target.requests)
    status, _, err = hospes(capsys, "get", "--accept-key", new_key, first.url("/start"))
    assert status == 13
    assert f"REFUSED: 127.0.0.1:{second.port}" in err
    assert f"was reached through a redirect from localhost:{first.port}" in err
    assert "--accept-key" not in err.split("REFUSED", 1)[1]  # no suggestion that cannot work
    assert len(target.requests) == answered  # B got nothing
    assert pins(data_dir).get("127.0.0.1", second.port).key_fingerprint == pinned.key_fingerprint
    # Typed for B itself, the same flag does what it says.
    assert hospes(capsys, "get", "-q", "--accept-key", new_key, b)[0] == 0
    assert pins(data_dir).get("127.0.0.1", second.port).key_fingerprint == new_key


# -- 5. scopes are matched as servers route ------------------------------------------------------


class RecordingServer:
    """A TLS server that accepts any client certificate and records what each request sent.

    It plays a server that routes paths as RFC 3986 says (``//`` kept): it only
    records the request line and the fingerprint of the certificate presented, and
    answers ``respond(request_line)``.
    """

    def __init__(self, cert: CertFiles, respond: Callable[[str], bytes]) -> None:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate_file(str(cert.cert))
        context.use_privatekey_file(str(cert.key))
        # Ask for a certificate, accept any (self-signed) one, do not require one.
        context.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        self.context = context
        self.respond = respond
        self.received: list[tuple[str, str | None]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"gemini://localhost:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with contextlib.suppress(SSL.Error, OSError), sock:
                sock.setblocking(True)  # pyOpenSSL wants a blocking socket
                tls = SSL.Connection(self.context, sock)
                tls.set_accept_state()
                tls.do_handshake()
                data = b""
                while b"\r\n" not in data:
                    chunk = tls.recv(1026)
                    if not chunk:
                        break
                    data += chunk
                line = data.split(b"\r\n")[0].decode("utf-8")
                peer = tls.get_peer_certificate(as_cryptography=True)
                presented = None
                if peer is not None:
                    presented = fingerprint(peer.public_bytes(Encoding.DER))
                self.received.append((line, presented))
                tls.sendall(self.respond(line))
                tls.shutdown()

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def recording(certs):
    started: list[RecordingServer] = []

    def start(respond: Callable[[str], bytes]) -> RecordingServer:
        server = RecordingServer(server_files(certs), respond)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_5_a_dot_dot_after_a_double_slash_does_not_get_anothers_certificate(
    recording, data_dir, capsys
):
    attack: list[str] = []

    def respond(line: str) -> bytes:
        if line.endswith("/~mallory/"):
            return f"30 {attack[0]}\r\n".encode()
        return b"20 text/gemini\r\nok\r\n"

    server = recording(respond)
    attack.append(server.url("/~mallory//../~alice/"))
    alice = IdentityStore(data_dir / "identities").create("alice")
    IdentityStore(data_dir / "identities").add_scope("alice", Scope.parse(server.url("/~alice/")))

    # Mallory's page sends the visitor on to a path that is /~mallory/~alice/ to this server.
    assert hospes(capsys, "get", "-q", server.url("/~mallory/"))[0] == 0
    assert server.received == [(server.url("/~mallory/"), None), (attack[0], None)]
    # The other way round: /~alice//../x is /~alice/x here but /x to a server merging //.
    assert hospes(capsys, "get", "-q", server.url("/~alice//../x"))[0] == 0
    assert server.received[-1] == (server.url("/~alice//../x"), None)
    # An encoded slash is never a separator.
    assert hospes(capsys, "get", "-q", server.url("/~alice%2F..%2F~bob/x"))[0] == 0
    assert server.received[-1][1] is None
    # Inside the scope, whichever way a server routes: sent.
    for path in ("/~alice/", "/~alice/notes/x", "/~alice//notes", "/~bob/../~alice/x"):
        assert hospes(capsys, "get", "-q", server.url(path))[0] == 0
        assert server.received[-1] == (server.url(path), alice.fingerprint), path


# -- 6. input stays with the host typed; the prompt says who asks ------------------------------


def asking(request: Request) -> Response:
    if request.query is None:
        return Response.input("Password please")
    return Response.success(f"got {request.query}\n")


def test_6_input_is_not_sent_to_the_host_of_a_redirect(serve, certs, capsys):
    target = Recorder()
    first, second, where = two_hosts(serve, certs, target)
    where[0] = second.url("/ask", hostname="127.0.0.1")
    status, _, err = hospes(capsys, "get", "--input", "hunter2", first.url("/start"))
    assert status == 3
    assert target.requests == [("/ask", None, None)]  # the answer never reached B
    assert f"only sent to localhost:{first.port}" in err
    assert f"not to 127.0.0.1:{second.port}" in err


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_6_the_prompt_names_the_host_that_asks(serve, certs, monkeypatch, capsys):
    other = serve(asking, config=Config(hosts=[HostConfig("127.0.0.1")]))
    where = other.url("/ask", hostname="127.0.0.1")
    first = serve(redirecting(lambda: where))
    monkeypatch.setattr(sys, "stdin", TerminalInput("typed\n"))
    err = TerminalInput()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["get", first.url("/start")]) == 0
    assert capsys.readouterr().out == "got typed\n"
    assert f"[127.0.0.1:{other.port}] Password please: " in err.getvalue()


# -- 7. trust events of every hop are reported --------------------------------------------------


def test_7_first_use_of_every_hop_is_reported(serve, certs, capsys, data_dir):
    first, second, where = two_hosts(serve, certs, Recorder())
    where[0] = second.url("/there", hostname="127.0.0.1")
    status, _, err = hospes(capsys, "get", first.url("/start"))
    assert status == 0
    assert f"first contact with localhost:{first.port}: trusting key" in err
    assert f"first contact with 127.0.0.1:{second.port}: trusting key" in err
    assert len(pins(data_dir).all()) == 2
    # A renewed certificate on the first hop is told too.
    original = server_files(certs)
    renewing = serve(
        redirecting(lambda: where[0]),
        config=Config(hosts=[HostConfig("localhost", original.cert, original.key)]),
    )
    assert hospes(capsys, "get", renewing.url("/start"))[0] == 0
    reload_certificate(renewing, certs.renewal(original, name="localhost"))
    status, _, err = hospes(capsys, "get", renewing.url("/start"))
    assert status == 0
    assert f"localhost:{renewing.port} renewed its certificate (same key)" in err


# -- 9. a charset that is not a text encoding: UTF-8, and the user is told ---------------------


class Terminal(io.TextIOWrapper):
    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def isatty(self) -> bool:
        return True

    def written(self) -> bytes:
        self.flush()
        assert isinstance(self.buffer, io.BytesIO)
        return self.buffer.getvalue()


@pytest.mark.parametrize("charset", ["hex", "zlib", "base64", "rot13", "unicode_escape", "idna"])
def test_9_a_charset_that_is_not_a_text_encoding_is_said(serve, monkeypatch, capsys, charset):
    def handler(request: Request) -> Response:
        return Response.success("caf\\u00e9 é\n".encode(), f"text/plain; charset={charset}")

    running = serve(handler)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    status, _, err = hospes(capsys, "get", running.url("/"))
    assert status == 0
    assert terminal.written() == "caf\\u00e9 é\n".encode()  # as UTF-8, escapes not decoded
    assert f"the server says charset={charset}, which is not a text encoding: shown as UTF-8" in err


# -- 12. one host, one name: IP notations and IDNA 2008 ----------------------------------------


def test_12_odd_ip_notations_share_the_pin_of_the_address(serve, capsys, data_dir):
    running = serve(Recorder(), config=Config(hosts=[HostConfig("127.0.0.1")]))
    port = running.port
    status, _, err = hospes(capsys, "get", f"gemini://127.0.0.1:{port}/")
    assert (status, "first contact" in err) == (0, True)
    for host in ("127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "[::ffff:127.0.0.1]"):
        status, _, err = hospes(capsys, "get", f"gemini://{host}:{port}/")
        assert status == 0, err
        assert "first contact" not in err, host
    [pin] = pins(data_dir).all()
    assert (pin.host, pin.port, pin.times_seen) == ("127.0.0.1", port, 6)
    # Scopes and known-hosts commands name the same host.
    assert Scope.parse(f"gemini://2130706433:{port}/") == Scope.parse(f"gemini://127.0.0.1:{port}/")
    assert hospes(capsys, "known-hosts", "remove", f"127.1:{port}")[0] == 0
    assert pins(data_dir).all() == []


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2003 made it fass.de: another domain
        ("FAß.DE.", "xn--fa-hia.de"),
        # UTS 46 mapping: fullwidth letters and dot
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\u3002org", "example.org"),
        ("βόλος.com", "xn--nxasmm1c.com"),  # final sigma kept (IDNA 2003 maps it)
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7F.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("[::FFFF:7F00:1]", "127.0.0.1"),
        ("[2001:DB8:0::1]", "2001:db8::1"),
        ("example.org", "example.org"),
        ("a_b.example", "a_b.example"),
    ],
)
def test_12_hosts_are_canonical(host, canonical):
    assert parse_url(f"gemini://{host}/").host == canonical


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.0.0.1", "127.09", "4294967296", "a.1", "0x1g.1", "💩.la", "xn--ß.de"]
)
def test_12_hosts_that_are_neither_names_nor_addresses_are_refused(host):
    with pytest.raises(URLError):
        parse_url(f"gemini://{host}/")


def test_12_the_server_normalises_request_hosts_the_same_way(serve):
    # As an operator writes them: the configured names go through the same normalisation.
    config = parse_config({"hostnames": ["localhost", "127.1", "FAß.de"]})
    assert config.hostnames == ["localhost", "127.0.0.1", "xn--fa-hia.de"]
    running = serve(Recorder(), config=config)
    port = running.port

    def status(host: str, sni: str | None) -> int:
        return raw_request(port, f"gemini://{host}:{port}/", server_name=sni).status  # type: ignore[arg-type]

    assert status("127.0.0.1", None) == 20  # configured as 127.1
    assert status("2130706433", None) == 20
    assert status("[::ffff:127.0.0.1]", None) == 20
    assert status("faß.de", "xn--fa-hia.de") == 20
    assert status("xn--fa-hia.de", "xn--fa-hia.de") == 20
    assert status("fass.de", "fass.de") == 53  # IDNA 2003's answer is another host


# -- 15. nothing hidden in a suggested command line ---------------------------------------------

HIDDEN = "\u200b\u2060\u00ad\u3164\u00a0\u034f"


def test_15_invisible_characters_are_visible_in_suggested_commands(serve, capsys):
    def handler(request: Request) -> Response:
        if request.path == "/start":
            return Response.redirect(f"/a{HIDDEN}b/page")
        return Response(60, "certificate required")

    running = serve(handler)
    status, _, err = hospes(capsys, "get", running.url("/start"))
    assert status == 7
    assert "hospes id scope NAME" in err
    assert not any(char in err for char in HIDDEN)
    encoded = "a%E2%80%8B%E2%81%A0%C2%AD%E3%85%A4%C2%A0%CD%8Fb"
    assert f"hospes id scope NAME gemini://localhost:{running.port}/{encoded}/" in err
    assert f"hospes get --identity NAME gemini://localhost:{running.port}/{encoded}/page" in err


def test_15_the_arabic_letter_mark_is_forbidden_in_urls_like_the_other_bidi_controls(serve, capsys):
    running = serve(redirecting(lambda: "/\u061cpage"))
    status, _, err = hospes(capsys, "get", running.url("/start"))
    assert status == 4
    assert "U+061C" in err
    with pytest.raises(URLError, match="U\\+061C"):
        parse_url("gemini://example.org/\u061c")


@pytest.mark.parametrize("char", [*HIDDEN, "\u061c", "\u202e", "\x1b", "\u2028", "\U000e0041"])
def test_15_shell_words_and_printable_text_hide_nothing(char):
    word = shell_word(f"gemini://h/x{char}y", url=True)
    assert char not in word
    assert parse_url(word.strip("'")).host == "h"
    assert char not in shell_word(f"/home/x{char}y")
    if char not in "\u00a0\u034f":  # printable keeps what a terminal shows
        assert char not in printable(f"x{char}y")
