"""``hospes get`` as a person at a terminal meets it: help, escaping, progress, documentation."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.app.request import Request
from hospes.app.response import Response
from hospes.cli import build_parser, main
from hospes.cli.get import EXIT_CODES, _Progress, _TerminalText, escape_for_terminal

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
    whole = _TerminalText("utf-8").feed(data, final=True)
    writer = _TerminalText("utf-8")
    pieces, start = [], 0
    for cut in sorted(cut for cut in cuts if cut <= len(data)):
        pieces.append(writer.feed(data[start:cut]))
        start = cut
    pieces.append(writer.feed(data[start:], final=True))
    assert "".join(pieces) == whole == escape_for_terminal(text)


def test_carriage_returns():
    assert escape_for_terminal("a\r\nb\rc\r") == "a\nb\\x0dc\\x0d"


def test_progress_line(capsys):
    now = [0.0]
    progress = _Progress(enabled=True, clock=lambda: now[0])
    progress.update(1024)
    assert capsys.readouterr().err == ""  # nothing in the first second
    now[0] = 2.0
    progress.update(3 * 1024 * 1024)
    line = capsys.readouterr().err
    assert "3.0 MiB received" in line
    assert "1.5 MiB/s" in line
    progress.done()
    assert capsys.readouterr().err == "\r\x1b[K"
    quiet = _Progress(enabled=False, clock=lambda: now[0])
    now[0] = 10.0
    quiet.update(10)
    assert capsys.readouterr().err == ""


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
