"""``hospes put``: a round trip through a real server, identities by scope, TOFU, early answers."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest

from hospes.cli import main
from hospes.client.titan import TitanClient, titan_request_line, upload_url
from hospes.config import Config, HostConfig
from hospes.gateways import TitanMount
from hospes.gemini.protocol import parse_request, parse_titan
from hospes.gemini.url import parse_url
from hospes.server.tls import ServerContexts, load_server_context


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    return directory


@pytest.fixture
def server(serve, tmp_path, uploads):
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# Home\n")
    config = Config(
        hosts=[HostConfig("localhost")],
        root=capsule,
        titan=[TitanMount("/uploads/", uploads, max_size=4 * 1024 * 1024)],
    )
    return serve(config=config)


def titan(server, path: str) -> str:
    return f"titan://localhost:{server.port}{path}"


def test_put_round_trip_with_a_gemini_scope(server, uploads, tmp_path, capsys):
    assert main(["id", "new", "alice"]) == 0
    assert main(["id", "scope", "alice", f"gemini://localhost:{server.port}/"]) == 0
    source = tmp_path / "note.gmi"
    source.write_text("# Hello from hospes put\n")
    capsys.readouterr()
    assert main(["put", str(source), titan(server, "/uploads/note.gmi")]) == 0
    captured = capsys.readouterr()
    location = f"gemini://localhost:{server.port}/uploads/note.gmi"
    assert captured.out.strip() == location
    assert f"30 {location}" in captured.err
    assert "sent as identity alice" in captured.err
    assert (uploads / "note.gmi").read_text() == "# Hello from hospes put\n"
    assert main(["get", "-q", location]) == 0
    assert capsys.readouterr().out == "# Hello from hospes put\n"


def test_put_from_stdin_with_a_titan_scope_and_a_mime_type(server, uploads, monkeypatch, capsys):
    assert main(["id", "new", "bob"]) == 0
    assert main(["id", "scope", "bob", titan(server, "/uploads/")]) == 0
    data = os.urandom(300 * 1024)  # several chunks
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert (
        main(
            [
                "put",
                "-q",
                "--mime",
                "application/octet-stream",
                "-",
                titan(server, "/uploads/random.bin"),
            ]
        )
        == 0
    )
    assert (uploads / "random.bin").read_bytes() == data
    assert capsys.readouterr().err == ""


def test_put_sends_the_token(serve, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    config = Config(
        hosts=[HostConfig("localhost")],
        root=locked,
        titan=[TitanMount("/locked/", locked, token="open sesame;now")],
    )
    server = serve(config=config)
    assert main(["id", "new", "tess"]) == 0
    source = tmp_path / "t.gmi"
    source.write_text("# behind a token\n")
    url = titan(server, "/locked/t.gmi")
    assert main(["put", "--identity", "tess", str(source), url]) == 6  # no token: 59
    assert "this upload needs a valid token" in capsys.readouterr().err
    assert not (locked / "t.gmi").exists()
    arguments = ["put", "--identity", "tess", "--token", "open sesame;now", str(source), url]
    assert main(arguments) == 0
    assert (locked / "t.gmi").read_text() == "# behind a token\n"


def test_put_without_an_identity_is_refused_60(server, uploads, tmp_path, capsys):
    source = tmp_path / "x.txt"
    source.write_bytes(b"x" * 1000)
    assert main(["put", str(source), titan(server, "/uploads/x.txt")]) == 7
    assert "uploads here need an identity" in capsys.readouterr().err
    assert not (uploads / "x.txt").exists()


def test_an_oversized_upload_stops_at_the_early_answer(server, uploads, tmp_path, capsys):
    assert main(["id", "new", "carol"]) == 0
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (8 * 1024 * 1024))
    code = main(["put", "--identity", "carol", str(big), titan(server, "/uploads/big.bin")])
    assert code == 6  # 59: a permanent failure
    assert "59 the upload is 8388608 bytes" in capsys.readouterr().err
    assert not (uploads / "big.bin").exists()

    async def upload():
        with big.open("rb") as body:
            client = TitanClient(timeout=10)
            return await client.upload(
                titan(server, "/uploads/big.bin"), body, 8 * 1024 * 1024, identity="carol"
            )

    result = asyncio.run(upload())
    assert result.status == 59
    assert result.sent < 8 * 1024 * 1024  # the rest of the body was not sent


def test_put_refuses_a_changed_server_key_before_sending(server, uploads, tmp_path, certs):
    assert main(["id", "new", "dave"]) == 0
    source = tmp_path / "a.gmi"
    source.write_text("first\n")
    url = titan(server, "/uploads/a.gmi")
    assert main(["put", "--identity", "dave", str(source), url]) == 0
    other = certs.make("localhost", hostnames=["localhost"])
    contexts = ServerContexts({"localhost": load_server_context(other.cert, other.key)})
    server.call(lambda: server.server.reconfigure(contexts=contexts))
    source.write_text("second\n")
    assert main(["put", "--identity", "dave", str(source), url]) == 13
    assert (uploads / "a.gmi").read_text() == "first\n"


def test_a_file_that_shrinks_uploads_nothing(server, uploads, tmp_path):
    assert main(["id", "new", "erin"]) == 0

    async def upload():
        client = TitanClient(timeout=10)
        return await client.upload(
            titan(server, "/uploads/s.txt"), io.BytesIO(b"short"), 10, identity="erin"
        )

    with pytest.raises(Exception, match="the file ended after 5 of 10 bytes"):
        asyncio.run(upload())
    assert not (uploads / "s.txt").exists()


def test_request_lines_the_server_parses_back():
    url = upload_url("titan://example.org/a%20b.gmi?x=1")
    line = titan_request_line(url, 42, "text/plain; charset=utf-8", "to;ken")
    request = parse_titan(parse_request(line[:-2], titan=True))
    assert request.url == parse_url("titan://example.org/a%20b.gmi?x=1")
    assert (request.size, request.mime, request.token) == (
        42,
        "text/plain; charset=utf-8",
        "to;ken",
    )


@pytest.mark.parametrize(
    "text", ["gemini://h/", "titan:///x", "titan://u@h/x", "titan://h/x;size=1", "not a url"]
)
def test_upload_urls_are_checked(text):
    from hospes.client import InvalidRequest  # noqa: PLC0415

    with pytest.raises(InvalidRequest):
        upload_url(text)


def test_titan_scopes_cover_uploads_only():
    from hospes.client import Scope  # noqa: PLC0415

    scope = Scope.parse("titan://example.org/wiki/")
    assert str(scope) == "titan://example.org/wiki/"
    assert scope.contains(parse_url("titan://example.org/wiki/page.gmi"))
    assert not scope.contains(parse_url("gemini://example.org/wiki/page.gmi"))
    assert scope.place != Scope.parse("gemini://example.org/wiki/").place
