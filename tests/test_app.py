"""The application API over a real server: routes, parameters, requirements, mounts, errors."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time

import pytest

from helpers import raw_request
from hospes import Application, GeminiError, Request, Response, StaticFiles, Status
from hospes.app.access import STORE_UNAVAILABLE
from hospes.app.dispatch import INTERNAL_ERROR
from hospes.app.routing import call_handler
from hospes.gemini.url import parse_url
from hospes.store import NameTaken, StoreError


def _look_up(name: str) -> None:
    """A helper deep in a handler: it answers with an error by raising it."""
    raise GeminiError(Status.GONE, f"{name} has left")


def _sub_missing(request: Request) -> str:
    raise GeminiError(Status.NOT_FOUND, f"nothing at {request.base}{request.relative_path}")


async def _plain_mount(request: Request) -> str:
    if request.query is None:
        raise GeminiError(Status.INPUT, "Which one?")
    return f"you chose {request.query}\n"


def build_app(tmp_path) -> Application:
    app = Application()

    @app.route("/")
    def home(request: Request) -> str:
        return "# Home\n"

    @app.route("/hello/{name}")
    def hello(request: Request) -> str:
        return f"Hello, {request.params['name']}!\n"

    @app.route("/items/{number:int}")
    async def item(request: Request) -> Response:
        await asyncio.sleep(0)
        return Response.success(f"item {int(request.params['number']) * 2}\n", "text/plain")

    @app.route("/files/{rest:path}")
    def rest(request: Request) -> str:
        return request.params["rest"]

    @app.route("/search")
    def search(request: Request) -> Response:
        if request.query is None:
            return Response.input("What are you looking for?")
        return Response.success(f"You searched for: {request.query}\n")

    @app.route("/password")
    def password(request: Request) -> Response:
        return Response.sensitive_input("Password")

    @app.route("/old")
    def old(request: Request) -> Response:
        return Response.redirect("/new", permanent=True)

    @app.route("/bytes")
    def raw(request: Request) -> bytes:
        return b"\x00\x01binary"

    @app.route("/stream")
    def stream(request: Request) -> Response:
        async def chunks():
            for index in range(100):
                yield f"line {index}\n".encode()

        return Response.success(chunks(), "text/plain")

    @app.route("/boom")
    def boom(request: Request) -> str:
        raise RuntimeError("kaboom")

    @app.route("/bad-meta")
    def bad_meta(request: Request) -> Response:
        return Response(20, "text/plain\r\n20 injected")

    @app.route("/wrong-type")
    def wrong_type(request: Request) -> object:
        return 42

    @app.route("/slow-down")
    def slow(request: Request) -> Response:
        return Response.slow_down(7.2)

    @app.route("/me", requires="certificate")
    def me(request: Request) -> str:
        assert request.identity is not None
        return request.identity.fingerprint

    @app.route("/dir/")
    def directory(request: Request) -> str:
        return "dir\n"

    @app.route("/where")
    def where(request: Request) -> str:
        return f"{request.hostname} {request.remote_address} {request.path} {request.base}\n"

    @app.route("/gone/{name}")
    async def gone(request: Request) -> str:
        await asyncio.sleep(0)
        _look_up(request.params["name"])
        return "never\n"

    @app.route("/bad-error")
    def bad_error(request: Request) -> str:
        raise GeminiError(Status.NOT_FOUND, "line\r\n20 text/gemini")

    @app.route("/store-refusal")
    def store_refusal(request: Request) -> str:
        raise NameTaken("the name 'alice' is taken")  # a page that forgot to answer it

    @app.route("/store-down")
    def store_down(request: Request) -> str:
        raise StoreError("database or disk is full")

    @app.route("/stream-error")
    def stream_error(request: Request) -> Response:
        async def chunks():
            yield b"first part\n"
            raise GeminiError(Status.NOT_FOUND, "too late for a status")

        return Response.success(chunks(), "text/plain")

    sub = Application()
    sub.add_route("/info", lambda request: f"sub {request.base} {request.relative_path}\n")
    sub.add_route("/missing", _sub_missing)
    app.mount("/sub/", sub)
    app.mount("/plain/", _plain_mount)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "file.gmi").write_text("static file\n")
    app.mount("/static/", StaticFiles(tmp_path / "static"))
    return app


@pytest.fixture
def app_server(serve, tmp_path):
    return serve(build_app(tmp_path))


def get(server, path, **kwargs):
    return raw_request(server.port, server.url(path), **kwargs)


def test_plain_string_is_gemtext(app_server):
    response = get(app_server, "/")
    assert (response.status, response.meta, response.body) == (20, "text/gemini", b"# Home\n")


def test_path_parameter(app_server):
    assert get(app_server, "/hello/world").body == b"Hello, world!\n"
    assert get(app_server, "/hello/w%C3%B6rld").body == "Hello, wörld!\n".encode()
    assert get(app_server, "/hello/a/b").status == 51


def test_int_parameter_and_async_handler(app_server):
    response = get(app_server, "/items/21")
    assert (response.meta, response.body) == ("text/plain", b"item 42\n")
    assert get(app_server, "/items/x").status == 51


def test_path_parameter_takes_the_rest(app_server):
    assert get(app_server, "/files/a/b/c.txt").body == b"a/b/c.txt"


def test_input_round_trip(app_server):
    response = get(app_server, "/search")
    assert (response.status, response.meta) == (10, "What are you looking for?")
    answer = get(app_server, "/search?caf%C3%A9%20au%20lait")
    assert answer.body == "You searched for: café au lait\n".encode()


def test_sensitive_input(app_server):
    assert get(app_server, "/password").status == 11


def test_redirect(app_server):
    response = get(app_server, "/old")
    assert (response.status, response.meta) == (31, "/new")


def test_bytes_body(app_server):
    assert get(app_server, "/bytes").body == b"\x00\x01binary"


def test_streamed_body(app_server):
    response = get(app_server, "/stream")
    assert response.body == b"".join(f"line {index}\n".encode() for index in range(100))


def test_uncaught_exception_gives_40_and_a_logged_traceback(app_server, caplog):
    with caplog.at_level(logging.ERROR, logger="hospes.app"):
        response = get(app_server, "/boom")
        assert response.status == 40
        assert "kaboom" not in response.meta
        deadline = time.monotonic() + 2
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any("kaboom" in (record.exc_text or "") for record in caplog.records)
    assert get(app_server, "/").status == 20


def test_invalid_meta_from_a_handler_cannot_inject_a_header(app_server):
    response = get(app_server, "/bad-meta")
    assert response.status == 40
    assert b"injected" not in response.body


def _logged(caplog, text: str, timeout: float = 2.0) -> bool:
    """Whether an ERROR record with ``text`` in its message or traceback arrives in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.levelno >= logging.ERROR and text in record.getMessage() + (
                record.exc_text or ""
            ):
                return True
        time.sleep(0.01)
    return False


def test_building_an_invalid_response_gives_40_and_a_logged_traceback(app_server, caplog):
    """The ValueError is raised in the handler, where the bad response is written."""
    with caplog.at_level(logging.ERROR, logger="hospes.app"):
        response = get(app_server, "/bad-meta")
        assert (response.status, response.meta) == (40, INTERNAL_ERROR)
        assert _logged(caplog, "contains the control character '\\r'")
    traceback = next(record.exc_text for record in caplog.records if record.exc_text)
    assert "in bad_meta" in traceback


def test_a_raised_gemini_error_answers_its_status(app_server, caplog):
    with caplog.at_level(logging.INFO, logger="hospes"):
        response = get(app_server, "/gone/bob")
        assert (response.status, response.meta, response.body) == (52, "bob has left", b"")
        assert get(app_server, "/sub/missing").header == "51 nothing at /sub/missing"
        assert get(app_server, "/plain/x").header == "10 Which one?"
        assert get(app_server, "/plain/x?blue").body == b"you chose blue\n"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_an_invalid_gemini_error_is_a_bug_of_the_handler(app_server, caplog):
    with caplog.at_level(logging.ERROR, logger="hospes.app"):
        response = get(app_server, "/bad-error")
        assert (response.status, response.meta) == (40, INTERNAL_ERROR)
        assert _logged(caplog, "contains the control character")


def test_a_store_that_cannot_be_used_is_a_40_to_come_back_to(app_server, caplog):
    """Down, full, closed: the visitor is told to come back, the log says why once a minute."""
    with caplog.at_level(logging.ERROR, logger="hospes.app"):
        for _ in range(3):
            response = get(app_server, "/store-down")
            assert (response.status, response.meta) == (40, STORE_UNAVAILABLE)
        assert _logged(caplog, "database or disk is full")
    assert len([r for r in caplog.records if "disk is full" in r.getMessage()]) == 1
    assert not [record for record in caplog.records if record.exc_text]


def test_a_store_refusal_a_page_let_through_is_a_bug_not_an_outage(app_server, caplog):
    """NameTaken escaping a handler says nothing about the store: a logged traceback."""
    with caplog.at_level(logging.ERROR, logger="hospes.app"):
        response = get(app_server, "/store-refusal")
        assert (response.status, response.meta) == (40, INTERNAL_ERROR)
        assert _logged(caplog, "in store_refusal")


def test_an_error_in_a_streamed_body_truncates_the_response(app_server, caplog):
    """The header has gone: the connection ends without close_notify, the log says why."""
    with caplog.at_level(logging.ERROR, logger="hospes"):
        with pytest.raises(ssl.SSLEOFError):
            get(app_server, "/stream-error")
        assert _logged(caplog, "too late for a status")
    received = _read_until_eof(app_server.port, app_server.url("/stream-error"))
    assert received == b"20 text/plain\r\nfirst part\n"
    assert get(app_server, "/").status == 20


def _read_until_eof(port: int, url: str) -> bytes:
    """Everything the server sent before it closed, close_notify or not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    chunks = []
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=True) as tls,
    ):
        tls.sendall(url.encode() + b"\r\n")
        while data := tls.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_wrong_return_type_gives_40(app_server):
    assert get(app_server, "/wrong-type").status == 40


def test_slow_down_meta_is_an_integer(app_server):
    response = get(app_server, "/slow-down")
    assert (response.status, response.meta) == (44, "7")


def test_route_requirement(app_server, certs):
    assert get(app_server, "/me").status == 60
    assert get(app_server, "/me", cert=certs.expired()).status == 62
    response = get(app_server, "/me", cert=certs.make())
    assert response.status == 20
    assert response.body.startswith(b"SHA256:")


def test_missing_trailing_slash_on_a_route_redirects(app_server):
    response = get(app_server, "/dir")
    assert (response.status, response.meta) == (31, "/dir/")


def test_request_fields(app_server):
    response = get(app_server, "/where")
    assert response.body == b"localhost 127.0.0.1 /where \n"


def test_mounted_application_sees_its_base(app_server):
    assert get(app_server, "/sub/info").body == b"sub /sub /info\n"


def test_mounted_static_files(app_server):
    assert get(app_server, "/static/file.gmi").body == b"static file\n"


def test_unknown_path(app_server):
    assert get(app_server, "/nothing/here").status == 51


def test_route_pattern_must_be_absolute():
    with pytest.raises(ValueError, match="must start with"):
        Application().add_route("relative", lambda request: "")
    with pytest.raises(ValueError, match="must start with"):
        Application().mount("relative", lambda request: "")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/a/{id:float}", "unknown converter 'float' in {id:float} (known: str, path, int)"),
        ("/a/{id:}", "unknown converter '' in {id:}"),
        ("/a/{x}/{x}", "parameter 'x' appears twice"),
        ("/a/{x}/{x:int}", "parameter 'x' appears twice"),
        ("/a/{x", "unbalanced"),
        ("/a/x}", "unbalanced"),
        ("/a/{x}}", "unbalanced"),
        ("/a/{{x}}", "unbalanced"),
        ("/a/{}", "{} needs a parameter name"),
        ("/a/{1x}", "{1x} needs a parameter name"),
        ("/a/{x-y}", "{x-y} needs a parameter name"),
    ],
)
def test_an_invalid_route_pattern_is_refused_at_registration(pattern, message):
    app = Application()
    with pytest.raises(ValueError) as caught:
        app.route(pattern)  # before any handler is decorated
    assert message in str(caught.value)
    assert repr(pattern) in str(caught.value)
    with pytest.raises(ValueError, match="route pattern"):
        app.add_route(pattern, lambda request: "")


def test_valid_route_patterns_compile():
    app = Application()
    app.add_route("/a/{x}/{y:int}/{rest:path}", lambda request: repr(sorted(request.params)))
    app.add_route("/b/{x:str}.gmi", lambda request: request.params["x"])

    def answer(path: str) -> Response:
        request = Request(parse_url(f"gemini://a{path}"), path, None, "a", "127.0.0.1", 1)
        return asyncio.run(app(request))

    assert answer("/a/1/2/3/4").body == "['rest', 'x', 'y']"
    assert answer("/a/1/two/3").status == 51
    assert answer("/b/page.gmi").body == "page"


def test_call_handler_turns_a_gemini_error_into_its_response():
    request = Request(parse_url("gemini://a/"), "/", None, "a", "127.0.0.1", 1)

    def refuse(request: Request) -> str:
        raise GeminiError(Status.CERTIFICATE_NOT_AUTHORISED, "not you")

    async def refuse_later(request: Request) -> str:
        await asyncio.sleep(0)
        raise GeminiError(Status.PROXY_REQUEST_REFUSED, "no proxying")

    assert asyncio.run(call_handler(refuse, request)) == Response(61, "not you")
    assert asyncio.run(call_handler(refuse_later, request)) == Response(53, "no proxying")


def test_unknown_requirement_is_refused():
    with pytest.raises(ValueError):
        Application().add_route("/x", lambda request: "", requires="everyone")


def test_call_handler_normalises_results():
    request = Request(parse_url("gemini://a/"), "/", None, "a", "127.0.0.1", 1)
    assert asyncio.run(call_handler(lambda r: "x", request)).body == "x"
    with pytest.raises(TypeError, match="must return"):
        asyncio.run(call_handler(lambda r: 1, request))
