"""``hospes get`` as a person at a terminal meets it: escaping, progress, output files, help."""

from __future__ import annotations

import io
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import CertFiles
from hospes.app.request import Request
from hospes.app.response import Response
from hospes.cli import build_parser, main
from hospes.cli.get import EXIT_CODES
from hospes.gemini.escape import TerminalText, escape_for_terminal

DOCS = Path(__file__).resolve().parent.parent / "docs" / "client.md"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


class Terminal(io.TextIOWrapper):
    """A stdout that says it is a terminal, and keeps what was written."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def isatty(self) -> bool:
        return True

    def written(self) -> bytes:
        self.flush()
        assert isinstance(self.buffer, io.BytesIO)
        return self.buffer.getvalue()


def capsule(request: Request) -> Response:
    if request.path == "/escape":
        return Response.success("red \x1b[31mtext\x1b[0m\r\n\tindented\n\x9b2J\n")
    if request.path == "/latin1":
        return Response.success("café\n".encode("latin-1"), "text/plain; charset=iso-8859-1")
    if request.path == "/hex":  # a codec Python has, but not a text encoding
        return Response.success("café\x1b\n".encode(), "text/plain; charset=hex")
    return Response.success(b"\x89PNG\r\n\x1a\n", "image/png")


def test_help_documents_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["get", "--help"])
    text = capsys.readouterr().out
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning[:30])}", text, re.M), code


def test_docs_list_the_same_exit_codes():
    rows = re.findall(r"^\|\s*(\d+)\s*\|", DOCS.read_text(encoding="utf-8"), re.M)
    assert [int(code) for code in rows] == list(EXIT_CODES)


def test_text_to_a_terminal_is_escaped(serve, monkeypatch):
    running = serve(capsule)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["get", "-q", running.url("/escape")]) == 0
    out = terminal.written()
    assert out == b"red \\x1b[31mtext\\x1b[0m\n\tindented\n\\x9b2J\n"


def test_charset_is_honoured_on_a_terminal(serve, monkeypatch):
    running = serve(capsule)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["get", "-q", running.url("/latin1")]) == 0
    assert terminal.written() == "café\n".encode()


def test_a_charset_that_is_not_a_text_encoding_is_read_as_utf8(serve, monkeypatch):
    running = serve(capsule)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["get", "-q", running.url("/hex")]) == 0
    assert terminal.written() == "café\\x1b\n".encode()


def test_binary_is_not_written_to_a_terminal_unless_raw(serve, monkeypatch, capsys):
    running = serve(capsule)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["get", "-q", running.url("/image")]) == 1
    assert terminal.written() == b""
    assert "not writing a image/png body to the terminal" in capsys.readouterr().err
    assert main(["get", "-q", "--raw", running.url("/image")]) == 0
    assert terminal.written() == b"\x89PNG\r\n\x1a\n"


def test_bodies_are_raw_when_not_a_terminal(serve, capsysbinary):
    running = serve(capsule)
    assert main(["get", "-q", running.url("/escape")]) == 0
    assert (
        capsysbinary.readouterr().out == "red \x1b[31mtext\x1b[0m\r\n\tindented\n\x9b2J\n".encode()
    )


@given(st.text())
def test_escaped_text_cannot_drive_a_terminal(text):
    escaped = escape_for_terminal(text)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", escaped)
    if not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text):
        assert escaped == text


@given(st.text(st.sampled_from("ab\r\n\x1bé")), st.lists(st.integers(0, 40)))
def test_terminal_text_does_not_depend_on_chunking(text, cuts):
    data = text.encode("utf-8")
    whole = TerminalText("utf-8").feed(data, final=True)
    writer = TerminalText("utf-8")
    pieces, start = [], 0
    for cut in sorted(cut for cut in cuts if cut <= len(data)):
        pieces.append(writer.feed(data[start:cut]))
        start = cut
    pieces.append(writer.feed(data[start:], final=True))
    assert "".join(pieces) == whole == escape_for_terminal(text)


CHARSETS = ["utf-8", "latin-1", "utf-16", "utf-32-be", "shift_jis", "idna", "punycode", "hex"]


@given(st.sampled_from([*CHARSETS, "rot13", "zlib", "undefined", "nonsense"]), st.binary())
def test_any_charset_decodes_to_escaped_text(charset, data):
    """The charset is the server's choice: none of them may crash the client or reach the tty."""
    text = TerminalText(charset).feed(data[:7]) + TerminalText(charset).feed(data, final=True)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)


def test_carriage_returns():
    assert escape_for_terminal("a\r\nb\rc\r") == "a\nb\\x0dc\\x0d"


def test_usage_errors(capsys):
    assert main(["get", "--accept-key", "nonsense", "gemini://localhost/"]) == 2
    assert main(["get", "--timeout", "0", "gemini://localhost/"]) == 2
    assert main(["get", "gemini://user@localhost/"]) == 2
    assert main(["known-hosts", "trust", "bad host"]) == 2
    err = capsys.readouterr().err
    assert "not a SHA-256 fingerprint" in err
    assert "user name" in err


def refusals(request: Request) -> Response:
    if request.path == "/gone":
        return Response.permanent_failure("gone for good", 52)
    return Response(61, "banned: testing bans")


def test_quiet_still_says_why_a_request_failed(serve, capsys, certs, tmp_path):
    server = serve(refusals)
    assert main(["get", "-q", server.url("/gone")]) == 6
    assert "52 gone for good" in capsys.readouterr().err
    key = certs.make("bob")
    assert main(["id", "import", "bob", str(key.cert), str(key.key)]) == 0
    assert main(["get", "-q", "--identity", "bob", server.url("/club")]) == 8
    error = capsys.readouterr().err
    assert "not authorised here (banned: testing bans)" in error


def test_ctrl_c_is_reported_like_any_error(certs, monkeypatch, capsys):
    key = certs.make("carol")
    assert main(["id", "import", "carol", str(key.cert), str(key.key)]) == 0

    class Interrupted(io.StringIO):
        def isatty(self) -> bool:
            return True

        def readline(self, size: int | None = -1) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", Interrupted())
    assert main(["id", "delete", "carol"]) == 130
    assert capsys.readouterr().err.endswith("hospes: interrupted\n")
    assert main(["id", "show", "carol"]) == 0  # not deleted


# -- -o FILE --------------------------------------------------------------------------------


def test_output_file_is_created_as_any_new_file_without_touching_the_umask(
    serve, tmp_path, monkeypatch
):
    running = serve(capsule)
    (tmp_path / "plain").touch()
    expected = (tmp_path / "plain").stat().st_mode & 0o777

    def forbidden(mask: int) -> int:
        raise AssertionError("os.umask is process-wide: reading it by setting it races")

    monkeypatch.setattr(os, "umask", forbidden)
    assert main(["get", "-q", "-o", str(tmp_path / "image.png"), running.url("/image")]) == 0
    assert (tmp_path / "image.png").read_bytes() == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "image.png").stat().st_mode & 0o777 == expected


@pytest.mark.parametrize(("mask", "expected"), [(0o027, 0o640), (0o077, 0o600)])
def test_output_file_honours_the_users_umask(serve, tmp_path, data_dir, mask, expected):
    running = serve(capsule)
    target = tmp_path / "image.png"
    result = subprocess.run(
        [sys.executable, "-m", "hospes", "get", "-q", "-o", str(target), running.url("/image")],
        umask=mask,
        env={**os.environ, "HOSPES_DATA_DIR": str(data_dir)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_mode & 0o777 == expected


class BrokenBodyServer:
    """A stdlib TLS server that sends a header and part of a body, then breaks the stream.

    It waits until ``ready()`` is true (the client is mid-body), then writes
    a forged TLS record that the client cannot decrypt, and closes.
    """

    def __init__(self, cert: CertFiles, ready: Callable[[], bool]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert.cert, cert.key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ready = ready
        self.was_ready = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with self.context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(1026)
            tls.sendall(b"20 application/octet-stream\r\n" + b"x" * 65536)
            deadline = time.monotonic() + 30
            while not self.ready() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.was_ready = self.ready()
            os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + bytes(32))

    def stop(self) -> None:
        self.thread.join(30)
        self.listener.close()


def test_output_file_broken_mid_stream_leaves_nothing(certs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    server = BrokenBodyServer(
        certs.make("localhost", hostnames=["localhost"]), lambda: any(out.iterdir())
    )
    url = f"gemini://localhost:{server.port}/"
    try:
        assert main(["get", "-q", "-o", str(out / "body"), url]) == 15
    finally:
        server.stop()
    assert server.was_ready  # the body was being written when the stream broke
    assert "the connection broke during the body" in capsys.readouterr().err
    assert list(out.iterdir()) == []
