"""SCGI against a small SCGI application started by the test, over TCP and a Unix socket."""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import RunningServer, identity_of, raw_request
from hospes.app.access import AccessRule, Requirement
from hospes.config import Config, HostConfig
from hospes.gateways import SCGIMount
from hospes.gateways.scgi import netstring, parse_scgi_address
from hospes.policy.clock import ManualClock


def read_request(stream) -> tuple[list[tuple[str, str]], bytes]:
    """Parse an SCGI request: the variables in order, and the body."""
    length = b""
    while (byte := stream.read(1)) != b":":
        length += byte
    payload = stream.read(int(length))
    assert stream.read(1) == b","
    items = payload.split(b"\0")[:-1]
    variables = [(items[i].decode(), items[i + 1].decode()) for i in range(0, len(items), 2)]
    size = int(dict(variables)["CONTENT_LENGTH"])
    return variables, stream.read(size) if size else b""


class App:
    """An SCGI application: answers with what ``respond`` writes, remembers every request."""

    def __init__(self, respond: Callable[[dict[str, str], bytes, socket.socket], None]) -> None:
        self.respond = respond
        self.requests: list[tuple[list[tuple[str, str]], bytes]] = []
        app = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                variables, body = read_request(self.rfile)
                app.requests.append((variables, body))
                app.respond(dict(variables), body, self.connection)

        self.handler = Handler


def echo(variables: dict[str, str], body: bytes, connection: socket.socket) -> None:
    text = "".join(f"{name}={value}\n" for name, value in sorted(variables.items()))
    connection.sendall(b"20 text/plain\r\n" + text.encode() + b"body=" + body)


@pytest.fixture
def tcp_app() -> Iterator[tuple[App, str]]:
    app = App(echo)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), app.handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def scgi_server(serve, address: str, **options) -> RunningServer:
    clock = options.pop("clock", time.monotonic)
    config = Config(hosts=[HostConfig("localhost")], scgi=[SCGIMount("/app/", address, **options)])
    return serve(config=config, clock=clock)


def lines(body: bytes) -> dict[str, str]:
    text, _, rest = body.decode().partition("body=")
    variables = dict(line.split("=", 1) for line in text.splitlines())
    variables["body"] = rest
    return variables


def test_the_application_gets_the_variables_and_answers(serve, tcp_app, certs):
    app, address = tcp_app
    server = scgi_server(serve, address)
    cert = certs.make("alice")
    response = raw_request(
        server.port, f"gemini://localhost:{server.port}/app/x/y?hello%20there", cert=cert
    )
    assert (response.status, response.meta) == (20, "text/plain")
    seen = lines(response.body)
    order = [name for name, _ in app.requests[0][0]]
    assert order[:2] == ["CONTENT_LENGTH", "SCGI"]
    assert (seen["CONTENT_LENGTH"], seen["SCGI"]) == ("0", "1")
    assert seen["SCRIPT_NAME"] == "/app"
    assert seen["PATH_INFO"] == "/x/y"
    assert seen["QUERY_STRING"] == "hello%20there"
    assert seen["TLS_CLIENT_HASH"] == identity_of(cert).fingerprint
    assert seen["REMOTE_USER"] == "alice"
    assert seen["SERVER_PROTOCOL"] == "GEMINI"
    assert seen["body"] == ""


def test_an_encoded_nul_in_the_query_cannot_forge_variables(serve, tcp_app):
    # The attack: an anonymous visitor's search string, once decoded, would split the
    # netstring and read to the application as AUTH_TYPE=CERTIFICATE, REMOTE_USER=admin.
    app, address = tcp_app
    server = scgi_server(serve, address)
    query = "x%00AUTH_TYPE%00CERTIFICATE%00REMOTE_USER%00admin%00HOSPES_ACCOUNT%00admin"
    response = raw_request(server.port, f"gemini://localhost:{server.port}/app/?{query}")
    assert response.status == 20
    names = [name for name, _ in app.requests[0][0]]
    assert not {"AUTH_TYPE", "REMOTE_USER", "HOSPES_ACCOUNT", "GEMINI_SEARCH_STRING"} & set(names)
    assert len(names) == len(set(names))
    assert dict(app.requests[0][0])["QUERY_STRING"] == query  # still there, still encoded
    # Without the NUL the search string is passed on, decoded.
    raw_request(server.port, f"gemini://localhost:{server.port}/app/?hello%20there")
    assert dict(app.requests[1][0])["GEMINI_SEARCH_STRING"] == "hello there"


def test_an_access_rule_stands_before_the_application(serve, tcp_app, certs):
    app, address = tcp_app
    config = Config(
        hosts=[HostConfig("localhost")],
        scgi=[SCGIMount("/app/", address)],
        access=[AccessRule("/app/private/", Requirement.CERTIFICATE)],
    )
    server = serve(config=config)
    url = f"gemini://localhost:{server.port}/app/private/x"
    assert raw_request(server.port, url).status == 60
    assert app.requests == []  # never contacted
    assert lines(raw_request(server.port, url, cert=certs.make("ivy")).body)["REMOTE_USER"] == "ivy"
    assert len(app.requests) == 1


def test_a_unix_socket_application(serve, tmp_path):
    path = tmp_path / "app.sock"
    app = App(echo)
    server_socket = socketserver.ThreadingUnixStreamServer(str(path), app.handler)
    thread = threading.Thread(target=server_socket.serve_forever, daemon=True)
    thread.start()
    try:
        server = scgi_server(serve, f"unix:{path}")
        response = raw_request(server.port, f"gemini://localhost:{server.port}/app/")
        assert lines(response.body)["PATH_INFO"] == "/"
        assert "AUTH_TYPE" not in lines(response.body)
    finally:
        server_socket.shutdown()
        server_socket.server_close()


def test_a_response_is_streamed_as_it_comes(serve):
    sent_second = threading.Event()

    def slow(variables, body, connection):
        connection.sendall(b"20 text/plain\r\nfirst\n")
        time.sleep(0.3)
        connection.sendall(b"second\n")
        sent_second.set()

    app = App(slow)
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), app.handler) as tcp:
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
        server = scgi_server(serve, f"127.0.0.1:{tcp.server_address[1]}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", server.port)) as sock,
            context.wrap_socket(sock, server_hostname="localhost") as tls,
        ):
            tls.sendall(f"gemini://localhost:{server.port}/app/\r\n".encode())
            received = b""
            while b"first\n" not in received:
                received += tls.recv(100)
            assert not sent_second.is_set()  # the first part came before the second was written
            while data := tls.recv(100):
                received += data
        tcp.shutdown()
    assert received == b"20 text/plain\r\nfirst\nsecond\n"


def test_an_application_that_is_down_answers_43_and_is_logged_once_a_minute(serve, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"  # nobody listens there
    clock = ManualClock()
    server = scgi_server(serve, address, clock=clock)
    url = f"gemini://localhost:{server.port}/app/"
    with caplog.at_level(logging.ERROR, logger="hospes.gateways"):
        for _ in range(3):
            response = raw_request(server.port, url)
            assert (response.status, response.meta) == (
                43,
                "the application is unavailable; try again later",
            )
        records = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
        assert len(records) == 1
        clock.advance(61)
        assert raw_request(server.port, url).status == 43
    records = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(records) == 2
    assert "(2 more requests failed since)" in records[1].getMessage()


def test_an_application_that_does_not_accept_in_time_answers_43(serve, caplog):
    # A listening socket whose backlog is full: the kernel drops further SYNs, so a
    # connection attempt hangs until connect_timeout.
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        held = [socket.socket() for _ in range(4)]
        for sock in held:
            sock.setblocking(False)
            sock.connect_ex(listening.getsockname())
        try:
            time.sleep(0.2)
            address = f"127.0.0.1:{listening.getsockname()[1]}"
            server = scgi_server(serve, address, connect_timeout=0.3)
            started = time.monotonic()
            with caplog.at_level(logging.ERROR, logger="hospes.gateways"):
                response = raw_request(server.port, f"gemini://localhost:{server.port}/app/")
            elapsed = time.monotonic() - started
        finally:
            for sock in held:
                sock.close()
    assert (response.status, response.meta) == (
        43,
        "the application is unavailable; try again later",
    )
    assert 0.3 <= elapsed < 2
    assert "cannot be reached: timed out" in caplog.text


def test_an_invalid_header_answers_42(serve):
    app = App(lambda variables, body, connection: connection.sendall(b"hello\r\n"))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), app.handler) as tcp:
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
        server = scgi_server(serve, f"127.0.0.1:{tcp.server_address[1]}")
        response = raw_request(server.port, f"gemini://localhost:{server.port}/app/")
        tcp.shutdown()
    assert response.status == 42


def test_an_application_that_does_not_answer_in_time_answers_43(serve):
    release = threading.Event()
    app = App(lambda variables, body, connection: release.wait(10))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), app.handler) as tcp:
        tcp.daemon_threads = True
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
        server = scgi_server(serve, f"127.0.0.1:{tcp.server_address[1]}", timeout=0.3)
        started = time.monotonic()
        response = raw_request(server.port, f"gemini://localhost:{server.port}/app/")
        release.set()
        tcp.shutdown()
    assert (response.status, response.meta) == (43, "the application did not answer in time")
    assert time.monotonic() - started < 2


def test_titan_uploads_are_passed_on_where_the_mount_takes_them(serve, tcp_app, certs):
    app, address = tcp_app
    server = scgi_server(serve, address, max_upload=100)
    body = b"an uploaded page\n"
    line = f"titan://localhost:{server.port}/app/page;size={len(body)};mime=text/plain;token=t\r\n"
    response = raw_request(server.port, line.encode() + body, cert=certs.make())
    seen = lines(response.body)
    assert seen["body"] == body.decode()
    assert (seen["CONTENT_LENGTH"], seen["CONTENT_TYPE"], seen["TITAN_TOKEN"]) == (
        str(len(body)),
        "text/plain",
        "t",
    )
    assert seen["REQUEST_METHOD"] == "PUT"
    too_big = f"titan://localhost:{server.port}/app/page;size=101\r\n"
    assert raw_request(server.port, too_big, cert=certs.make()).status == 59
    assert len(app.requests) == 1  # the refused upload never reached the application


def test_netstring_and_addresses():
    assert (
        netstring({"CONTENT_LENGTH": "0", "SCGI": "1"})
        == b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,"
    )
    with pytest.raises(ValueError, match="NUL"):
        netstring({"CONTENT_LENGTH": "0", "Q": "a\0REMOTE_USER\0admin"})
    assert parse_scgi_address("127.0.0.1:4000") == ("127.0.0.1", 4000)
    assert parse_scgi_address("[::1]:4000") == ("::1", 4000)
    assert parse_scgi_address("unix:/run/app.sock") == Path("/run/app.sock")
    for bad in ("localhost", "unix:relative.sock", "host:0", "host:65536", ":80"):
        with pytest.raises(ValueError, match=r"expected|absolute"):
            parse_scgi_address(bad)
