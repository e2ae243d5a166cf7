"""Titan uploads over real TLS: atomic writes, refusals before the body, disconnections, routes."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import ssl
import time
from pathlib import Path

import pytest

from helpers import CertFiles, RawResponse, RunningServer, identity_of, raw_request
from hospes.app.access import AccessRule, Requirement
from hospes.app.request import Request
from hospes.app.routing import Application
from hospes.config import Config, HostConfig
from hospes.gateways import TitanMount
from hospes.policy.clock import ManualClock
from hospes.server import Limits


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    (directory / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (directory / "away").symlink_to(tmp_path / "outside", target_is_directory=True)
    return directory


@pytest.fixture
def members(tmp_path: Path) -> Path:
    directory = tmp_path / "members"
    directory.mkdir()
    return directory


def config_for(tmp_path: Path, uploads: Path, members: Path) -> Config:
    capsule = tmp_path / "capsule"
    capsule.mkdir(exist_ok=True)
    (capsule / "index.gmi").write_text("# Home\n")
    return Config(
        hosts=[HostConfig("localhost")],
        root=capsule,
        titan=[
            TitanMount("/uploads/", uploads, max_size=1000, timeout=2.0),
            TitanMount("/members/", members, require=Requirement.ACCOUNT, token="sesame"),
        ],
        access=[AccessRule("/uploads/friends/", Requirement.ALLOWLIST, lists=("friends",))],
    )


@pytest.fixture
def server(serve, tmp_path, uploads, members) -> RunningServer:
    return serve(config=config_for(tmp_path, uploads, members))


def line(server: RunningServer, path: str, size: int, extra: str = "") -> bytes:
    return f"titan://localhost:{server.port}{path};size={size}{extra}\r\n".encode()


def upload(
    server: RunningServer, path: str, body: bytes, cert: CertFiles | None = None, extra: str = ""
) -> RawResponse:
    return raw_request(server.port, line(server, path, len(body), extra) + body, cert=cert)


def leftovers(directory: Path) -> list[str]:
    """Temporary files an atomic write would leave behind (``.NAME.xxxxxxxx``)."""
    return sorted(path.name for path in directory.rglob(".*"))


def connect(server: RunningServer, cert: CertFiles | None) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return context.wrap_socket(sock, server_hostname="localhost")


def read_all(tls: ssl.SSLSocket) -> bytes:
    chunks = []
    while data := tls.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def logged(server: RunningServer, fragment: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(fragment in entry for entry in server.log_lines):
            return True
        time.sleep(0.02)
    return False


def test_an_upload_is_written_and_redirects_to_its_gemini_url(server, uploads, certs):
    body = "# A note\n\nwritten over Titan ✓\n".encode()
    response = upload(server, "/uploads/note.gmi", body, certs.make(), ";mime=text/gemini")
    assert (response.status, response.meta) == (
        30,
        f"gemini://localhost:{server.port}/uploads/note.gmi",
    )
    assert (uploads / "note.gmi").read_bytes() == body
    assert leftovers(uploads) == []
    served = raw_request(server.port, response.meta)
    assert (served.status, served.body) == (20, body)


def test_an_upload_replaces_a_file_and_reaches_subdirectories(server, uploads, certs):
    cert = certs.make()
    (uploads / "sub" / "page.gmi").write_text("old\n")
    response = upload(server, "/uploads/sub/page.gmi", b"new\n", cert)
    assert response.status == 30
    assert (uploads / "sub" / "page.gmi").read_bytes() == b"new\n"
    empty = upload(server, "/uploads/empty.txt", b"", cert)
    assert empty.status == 30
    assert (uploads / "empty.txt").read_bytes() == b""


def test_the_uploaders_identity_is_logged(server, members, certs, caplog):
    cert = certs.make("gwen")
    identity = identity_of(cert)
    store = server.server.dispatcher.store
    assert store is not None
    server.call(lambda: store.register("gwendolyn", identity, dt.datetime.now(dt.UTC)))
    with caplog.at_level(logging.INFO, logger="hospes.gateways"):
        assert upload(server, "/members/log.gmi", b"hi", cert, ";token=sesame").status == 30
    [record] = [r for r in caplog.records if r.getMessage().startswith("upload of 2 bytes")]
    message = record.getMessage()
    assert "to /members/log.gmi" in message
    assert f"by {identity.fingerprint} (gwen, account gwendolyn)" in message
    assert message.endswith("from 127.0.0.1")


def test_over_size_is_refused_before_the_body_is_read(server, uploads, certs):
    # Only the request line is sent: an answer proves the server did not wait for the body.
    with connect(server, certs.make()) as tls:
        tls.sendall(line(server, "/uploads/big.bin", 10**6))
        started = time.monotonic()
        answer = read_all(tls)
    assert answer.startswith(b"59 the upload is 1000000 bytes; at most 1000 bytes")
    assert time.monotonic() - started < 1.0  # not the 2 s + size/rate an upload may take
    assert not (uploads / "big.bin").exists()
    assert leftovers(uploads) == []


@pytest.mark.parametrize(
    ("path", "extra", "meta"),
    [
        ("/uploads/x", ";mime=text/plain", "a Titan upload needs a size"),
        ("/uploads/x", ";size=-1", "Titan size must be a number of bytes"),
        ("/uploads/x", ";size=1;size=2", "Titan parameter 'size' is given twice"),
        ("/uploads/x", ";size=1;mime=nonsense", "Titan mime must be a MIME type"),
        ("/uploads/../x", ";size=1", "upload to the canonical path /x"),
    ],
)
def test_malformed_titan_requests_answer_59_unread(server, certs, path, extra, meta):
    with connect(server, certs.make()) as tls:
        tls.sendall(f"titan://localhost:{server.port}{path}{extra}\r\n".encode())
        answer = read_all(tls).decode()
    assert answer.startswith(f"59 {meta}")


def test_anonymous_upload_to_a_certificate_area_is_60_and_writes_nothing(server, uploads):
    with connect(server, None) as tls:
        tls.sendall(line(server, "/uploads/anonymous.gmi", 5))  # the body is never sent
        answer = read_all(tls)
    assert answer.startswith(b"60 ")
    assert not (uploads / "anonymous.gmi").exists()
    assert leftovers(uploads) == []


def test_access_rules_stand_before_an_upload(server, uploads, certs):
    (uploads / "friends").mkdir()
    response = upload(server, "/uploads/friends/x.gmi", b"hello", certs.make())
    assert response.status == 61
    assert not (uploads / "friends" / "x.gmi").exists()


def test_member_only_uploads_need_an_account_and_the_token(server, members, certs):
    cert = certs.make("carol")
    assert upload(server, "/members/page.gmi", b"hi", cert, ";token=sesame").status == 61
    store = server.server.dispatcher.store
    assert store is not None
    server.call(lambda: store.register("carol", identity_of(cert), dt.datetime.now(dt.UTC)))
    refused = upload(server, "/members/page.gmi", b"hi", cert, ";token=wrong")
    assert (refused.status, refused.meta) == (59, "this upload needs a valid token (;token=…)")
    assert upload(server, "/members/page.gmi", b"hi", cert, ";token=sesame").status == 30
    assert (members / "page.gmi").read_bytes() == b"hi"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/uploads/.hidden", 59),
        ("/uploads/away/escaped.gmi", 51),  # a symlink to a directory outside
        ("/uploads/missing/x.gmi", 51),
        ("/uploads/sub/", 59),
        ("/uploads/sub", 59),
        ("/index.gmi", 59),  # static files take no uploads
    ],
)
def test_uploads_never_land_outside_the_directory(server, uploads, tmp_path, certs, path, status):
    assert upload(server, path, b"data", certs.make()).status == status
    assert list((tmp_path / "outside").iterdir()) == []
    assert leftovers(uploads) == []


def test_a_disconnection_mid_body_leaves_nothing(server, uploads, certs):
    tls = connect(server, certs.make())
    tls.sendall(line(server, "/uploads/cut.bin", 1000) + b"x" * 400)
    time.sleep(0.1)
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    tls.close()  # a reset, mid-body
    assert logged(server, "/uploads/cut.bin")
    assert not (uploads / "cut.bin").exists()
    assert leftovers(uploads) == []


def test_a_short_body_answers_59_and_leaves_nothing(server, uploads, certs):
    tls = connect(server, certs.make())
    tls.sendall(line(server, "/uploads/short.bin", 10) + b"12345")
    # close_notify: the client will send nothing more.  The server answers at once, so
    # unwrap() meets that answer instead of the server's close_notify.
    with contextlib.suppress(ssl.SSLError):
        tls.unwrap()
    tls.close()
    assert logged(server, '/uploads/short.bin;size=10" 59')
    assert not (uploads / "short.bin").exists()
    assert leftovers(uploads) == []


def test_a_slow_body_is_dropped_at_its_deadline_and_leaves_nothing(
    serve, tmp_path, uploads, members, certs
):
    clock = ManualClock()
    server = serve(config=config_for(tmp_path, uploads, members), clock=clock, limits=Limits())
    tls = connect(server, certs.make())
    tls.sendall(line(server, "/uploads/slow.bin", 1000) + b"x" * 10)
    deadline = time.monotonic() + 5
    while "upload" not in server.call(lambda: [c.phase for c in server.server._connections]):
        assert time.monotonic() < deadline, "the server never started reading the body"
        time.sleep(0.01)
    server.advance(2.0 + 1000 / Limits().write_rate + 0.1)
    assert tls.recv(100) == b""  # dropped without a response
    tls.close()
    assert logged(server, "upload_timeout")
    assert not (uploads / "slow.bin").exists()
    assert leftovers(uploads) == []


# -- uploads to an application's routes --------------------------------------------------------


def notes_app() -> Application:
    app = Application()

    @app.route("/notes/{name}", requires="certificate", max_upload=100)
    async def note(request: Request) -> str:
        if request.upload is None:
            return "# a note\n"
        assert request.identity is not None
        body = await request.upload.read()
        return f"{request.identity.name} sent {request.upload.mime}: {body.decode()}\n"

    @app.route("/plain")
    def plain(request: Request) -> str:
        return "plain\n"

    return app


def test_an_application_route_receives_the_body_and_the_identity(serve, certs):
    server = serve(notes_app())
    response = upload(server, "/notes/a", b"hello there", certs.make("dora"), ";mime=text/plain")
    assert response.body == b"dora sent text/plain: hello there\n"
    assert upload(server, "/notes/a", b"x" * 101, certs.make()).status == 59
    assert upload(server, "/notes/a", b"hello", None).status == 60
    assert upload(server, "/plain", b"hello", certs.make()).status == 59
    read = raw_request(server.port, f"gemini://localhost:{server.port}/notes/a", cert=certs.make())
    assert read.body == b"# a note\n"


def test_a_titan_table_without_a_directory_guards_the_applications_route(serve, certs, tmp_path):
    config = Config(
        hosts=[HostConfig("localhost")],
        titan=[TitanMount("/notes/", None, max_size=5, require=Requirement.CERTIFICATE)],
    )
    server = serve(notes_app(), config=config)
    too_big = upload(server, "/notes/a", b"123456", certs.make())
    assert (too_big.status, too_big.meta) == (
        59,
        "the upload is 6 bytes; at most 5 bytes are accepted here",
    )
    assert upload(server, "/notes/a", b"12345", certs.make("eve")).body == (
        b"eve sent text/gemini: 12345\n"
    )
