"""The sans-I/O protocol core: request lines, validation, response framing, header parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.gemini.protocol import (
    MAX_URL_BYTES,
    GeminiError,
    HeaderReader,
    RequestReader,
    ResponseHeaderError,
    Status,
    check_header,
    check_target,
    decode_path,
    format_header,
    parse_header,
    parse_request,
)
from hospes.gemini.url import parse_url
from strategies import CONTROLS, headers, mime_types

# -- RequestReader -----------------------------------------------------------------------------


def test_reader_returns_line_without_crlf():
    assert RequestReader().feed(b"gemini://a/\r\n") == b"gemini://a/"


def test_reader_waits_for_more_bytes_then_completes():
    reader = RequestReader()
    assert reader.feed(b"gemini://a") is None
    assert reader.buffered == len(b"gemini://a")
    assert reader.feed(b"/\r") is None
    assert reader.feed(b"\n") == b"gemini://a/"


def test_reader_ignores_bytes_after_crlf():
    assert RequestReader().feed(b"gemini://a/\r\nGET / HTTP/1.1\r\n\r\n") == b"gemini://a/"


def test_reader_accepts_exactly_1024_bytes():
    line = b"gemini://a/" + b"x" * (MAX_URL_BYTES - len(b"gemini://a/"))
    assert len(line) == MAX_URL_BYTES
    assert RequestReader().feed(line + b"\r\n") == line


def test_reader_accepts_1024_bytes_arriving_byte_by_byte():
    line = b"gemini://a/" + b"x" * (MAX_URL_BYTES - len(b"gemini://a/"))
    reader = RequestReader()
    results = [reader.feed(bytes([byte])) for byte in line + b"\r\n"]
    assert results[-1] == line
    assert all(result is None for result in results[:-1])


@pytest.mark.parametrize("chunked", [False, True])
def test_reader_refuses_1025_bytes_without_waiting_for_the_end(chunked):
    line = b"gemini://a/" + b"x" * (MAX_URL_BYTES + 1 - len(b"gemini://a/"))
    reader = RequestReader()
    with pytest.raises(GeminiError) as caught:
        if chunked:
            for byte in line:
                reader.feed(bytes([byte]))
        else:
            reader.feed(line)
    assert caught.value.status == Status.BAD_REQUEST
    assert "1024" in caught.value.meta


def test_reader_refuses_1025_bytes_even_with_crlf():
    line = b"gemini://a/" + b"x" * (MAX_URL_BYTES + 1 - len(b"gemini://a/"))
    with pytest.raises(GeminiError, match="longer than 1024"):
        RequestReader().feed(line + b"\r\n")


def test_reader_refuses_bare_lf():
    with pytest.raises(GeminiError, match="CRLF"):
        RequestReader().feed(b"gemini://a/\n")


def test_reader_refuses_lone_lf_at_start():
    with pytest.raises(GeminiError, match="CRLF"):
        RequestReader().feed(b"\n")


def test_reader_never_buffers_more_than_the_limit():
    reader = RequestReader()
    with pytest.raises(GeminiError):
        for _ in range(100):
            reader.feed(b"a" * 100)
    assert reader.buffered <= MAX_URL_BYTES + 1


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_reader_only_raises_gemini_errors(chunks):
    reader = RequestReader()
    try:
        for chunk in chunks:
            line = reader.feed(chunk)
            if line is not None:
                assert len(line) <= MAX_URL_BYTES
                assert b"\n" not in line
                break
    except GeminiError as exc:
        assert exc.status == Status.BAD_REQUEST


# -- parse_request -----------------------------------------------------------------------------


def test_parse_simple_request():
    url = parse_request(b"gemini://example.org/page.gmi?q=1")
    assert (url.scheme, url.host, url.port, url.path, url.query) == (
        "gemini",
        "example.org",
        None,
        "/page.gmi",
        "q=1",
    )


def test_parse_normalises_host_and_scheme():
    url = parse_request(b"GEMINI://Example.ORG.:1965/")
    assert url.scheme == "gemini"
    assert url.host == "example.org"
    assert url.port == 1965


def test_parse_idn_host_to_punycode():
    url = parse_request("gemini://bücher.example/".encode())
    assert url.host == "xn--bcher-kva.example"


def test_parse_ipv6_literal():
    url = parse_request(b"gemini://[::1]:1965/x")
    assert url.host == "::1"
    assert url.netloc == "[::1]:1965"


def test_parse_accepts_iri_path():
    url = parse_request("gemini://a/café/日本".encode())
    assert decode_path(url) == "/café/日本"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbfgemini://a/", "byte-order mark"),
        (b"gemini://a/\xff", "UTF-8"),
        (b"//a/", "no scheme"),
        (b"/just/a/path", "no scheme"),
        (b"a/relative", "no scheme"),
        (b"gemini://user@a/", "userinfo"),
        (b"gemini://user:pw@a/", "userinfo"),
        (b"gemini://a/#frag", "fragment"),
        (b"gemini://a/%zz", "percent"),
        (b"gemini://a/%4", "percent"),
        (b"gemini://a/x\x00", "U+0000"),
        (b"gemini://a/x\x1b[31m", "U+001B"),
        (b"gemini://a/\x7f", "U+007F"),
        (b"gemini://a/\r", "U+000D"),
        (b"gemini://a/ b", "space"),
        (b"gemini://a/\t", "U+0009"),
        ("gemini://a/\u202e".encode(), "U+202E"),
        ("gemini://a/\u0085".encode(), "U+0085"),
        (b"gemini://a/<script>", "U+003C"),
        (b"gemini:///path", "no host"),
        (b"gemini://", "no host"),
        (b"gemini://a:99999/", "port"),
        (b"gemini://a:12x/", "port"),
        (b"gemini://[::1/", "IPv6"),
        (b"gemini://[zz::1]/", "IPv6"),
        (b"gemini://a/[x]", "'['"),
        (b"gemini://a b/", "space"),
        (b"gemini://a%41/", "percent-encoding in the host"),
        (b"gemini://a{/", "U+007B"),
        (b"1gemini://a/", "scheme"),
    ],
)
def test_parse_rejects_with_59_and_a_reason(line, reason):
    with pytest.raises(GeminiError) as caught:
        parse_request(line)
    assert caught.value.status == Status.BAD_REQUEST
    assert reason.lower() in caught.value.meta.lower()


@pytest.mark.parametrize(
    "line", [b"https://example.org/", b"http://a/", b"gopher://a/", b"mailto:x@example.org"]
)
def test_other_schemes_get_53(line):
    with pytest.raises(GeminiError) as caught:
        parse_request(line)
    assert caught.value.status == Status.PROXY_REQUEST_REFUSED


def test_parse_request_too_long():
    with pytest.raises(GeminiError, match="1024"):
        parse_request(b"gemini://a/" + b"x" * 1100)


# -- check_target --------------------------------------------------------------------------------


def test_target_accepts_configured_host_and_default_port():
    check_target(parse_url("gemini://localhost/"), {"localhost"}, {1965})


def test_target_refuses_other_host():
    with pytest.raises(GeminiError) as caught:
        check_target(parse_url("gemini://elsewhere.example/"), {"localhost"}, {1965})
    assert caught.value.status == Status.PROXY_REQUEST_REFUSED
    assert "elsewhere.example" in caught.value.meta


def test_target_refuses_other_port():
    with pytest.raises(GeminiError) as caught:
        check_target(parse_url("gemini://localhost:1966/"), {"localhost"}, {1965})
    assert caught.value.status == Status.PROXY_REQUEST_REFUSED
    assert "1966" in caught.value.meta


def test_target_default_port_must_be_served():
    with pytest.raises(GeminiError):
        check_target(parse_url("gemini://localhost/"), {"localhost"}, {19650})


# -- decode_path -----------------------------------------------------------------------------------


def test_decode_path_decodes_utf8():
    assert decode_path(parse_url("gemini://a/caf%C3%A9")) == "/café"


def test_decode_path_empty_is_root():
    assert decode_path(parse_url("gemini://a")) == "/"


@pytest.mark.parametrize("path", ["/..", "/a/../../b", "/%2e%2e/", "/.%2E", "//../x"])
def test_decode_path_refuses_dot_segments_above_the_root(path):
    with pytest.raises(GeminiError) as caught:
        decode_path(parse_url(f"gemini://a{path}"))
    assert caught.value.status == Status.BAD_REQUEST
    assert "above the root" in caught.value.meta


@pytest.mark.parametrize("path", ["/a/..", "/a/../b", "/./x", "/a/.../..", "/..a/..b"])
def test_decode_path_keeps_dot_segments_that_stay_inside(path):
    assert decode_path(parse_url(f"gemini://a{path}")) == path


def test_target_refuses_another_host_than_the_tls_server_name():
    url = parse_url("gemini://b.example/")
    check_target(url, {"a.example", "b.example"}, {1965}, "b.example")
    check_target(url, {"a.example", "b.example"}, {1965}, None)
    with pytest.raises(GeminiError) as caught:
        check_target(url, {"a.example", "b.example"}, {1965}, "a.example")
    assert caught.value.status == Status.PROXY_REQUEST_REFUSED
    assert caught.value.meta == "this connection is for a.example (TLS server name), not b.example"
    with pytest.raises(GeminiError) as hostile:
        check_target(url, {"b.example"}, {1965}, "evil\x1b[2J\r\n")
    assert "\x1b" not in hostile.value.meta and "\n" not in hostile.value.meta


@pytest.mark.parametrize("path", ["/%00", "/a%2fb", "/a%2Fb", "/%ff"])
def test_decode_path_refuses_ambiguous_or_invalid(path):
    with pytest.raises(GeminiError) as caught:
        decode_path(parse_url(f"gemini://a{path}"))
    assert caught.value.status == Status.BAD_REQUEST


# -- format_header -------------------------------------------------------------------------------


def test_format_header():
    assert format_header(20, "text/gemini") == b"20 text/gemini\r\n"
    assert format_header(Status.INPUT, "Name?") == b"10 Name?\r\n"


def test_format_header_allows_1024_byte_meta():
    assert format_header(10, "x" * 1024).endswith(b"x\r\n")
    mime = "text/plain; x=" + "a" * (1024 - len("text/plain; x="))
    assert format_header(20, mime) == f"20 {mime}\r\n".encode()
    assert format_header(51, "é" * 512).endswith("é\r\n".encode())


@pytest.mark.parametrize(
    ("status", "meta"),
    [
        (9, "x"),
        (70, "x"),
        (100, "x"),
        (10, "x" * 1025),
        (20, "text/plain; x=" + "a" * 1011),
        (51, "é" * 513),
        (30, "a\r\nb"),
        (20, "\n"),
    ],
)
def test_format_header_refuses_invalid(status, meta):
    with pytest.raises(ValueError):
        format_header(status, meta)


@pytest.mark.parametrize(
    ("status", "meta", "message"),
    [
        (12, "x", "12 is not a Gemini status"),
        (29, "text/gemini", "29 is not a Gemini status"),
        (True, "x", "True is not a Gemini status"),
        (20.0, "text/gemini", "20.0 is not a Gemini status"),
        ("20", "text/gemini", "'20' is not a Gemini status"),
        (51, b"bytes", "meta must be a str, not bytes"),
        (51, "a\rb", "control character '\\r'"),
        (10, "tab\there", "control character '\\t'"),
        (51, "\x1b[2J", "control character '\\x1b'"),
        (51, "\x7f", "control character '\\x7f'"),
        (51, "\ud800", "control character '\\ud800'"),
        (40, "x" * 1025, "longer than 1024 bytes"),
        (20, "", "must be a MIME type"),
        (20, "gemtext", "must be a MIME type"),
        (20, "text/gemini; lang", "must be a MIME type"),
        (20, "text/gemini;", "must be a MIME type"),
        (20, "text /gemini", "must be a MIME type"),
        (20, 'text/plain; name="unterminated', "must be a MIME type"),
        (30, "", "must be the URL to redirect to"),
        (31, "", "must be the URL to redirect to"),
    ],
)
def test_check_header_says_what_is_wrong(status, meta, message):
    with pytest.raises(ValueError) as caught:
        check_header(status, meta)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("status", "meta"),
    [
        (Status.SUCCESS, "text/gemini"),
        (20, "text/gemini; charset=utf-8; lang=en"),
        (20, 'text/plain; title="a b; c \\"quoted\\""'),
        (20, "application/vnd.example+json;v=1"),
        (10, ""),
        (40, ""),
        (44, "30"),
        (51, "ünïcode is fine, and so are spaces"),
        (31, "/relative"),
    ],
)
def test_check_header_accepts(status, meta):
    check_header(status, meta)
    assert format_header(status, meta) == f"{int(status)} {meta}\r\n".encode()


@given(mime_types())
def test_generated_mime_types_are_accepted(mime):
    check_header(20, mime)


@given(st.sampled_from(list(Status)), st.text(max_size=300))
def test_check_header_agrees_with_its_rules(status, meta):
    """Accepts exactly what has no control character, fits 1024 bytes and suits the status."""
    try:
        check_header(status, meta)
    except ValueError:
        accepted = False
    else:
        accepted = True
    fits = (
        not any(char in CONTROLS or 0xD800 <= ord(char) <= 0xDFFF for char in meta)
        and len(meta.encode("utf-8", "surrogatepass")) <= 1024
        and (status // 10 != 3 or meta != "")
    )
    if status // 10 == 2:
        assert not accepted or "/" in meta  # and the rest of the MIME grammar
    else:
        assert accepted == fits


def test_gemini_error_carries_a_valid_status_and_meta():
    error = GeminiError(Status.NOT_FOUND, "no such page")
    assert (error.status, error.meta, str(error)) == (51, "no such page", "51 no such page")
    with pytest.raises(ValueError, match="not a Gemini status"):
        GeminiError(99, "x")
    with pytest.raises(ValueError, match="control character"):
        GeminiError(51, "a\r\n20 text/gemini")
    with pytest.raises(ValueError, match="return a Response"):
        GeminiError(Status.SUCCESS, "text/gemini")


# -- client side: HeaderReader, parse_header -------------------------------------------------------


def test_header_reader_splits_header_and_body_start():
    reader = HeaderReader()
    assert reader.feed(b"20 text/") is None
    assert reader.feed(b"plain\r\nhello") == (b"20 text/plain", b"hello")


def test_header_reader_gives_up_on_endless_header():
    reader = HeaderReader()
    with pytest.raises(ResponseHeaderError, match="longer"):
        for _ in range(20):
            reader.feed(b"x" * 100)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"20 text/gemini", (20, "text/gemini")),
        (b"51 not found", (51, "not found")),
        (b"20", (20, "")),
        (b"20 ", (20, "")),
        (b"10 Your name? ", (10, "Your name? ")),
        ("30 gemini://a/é".encode(), (30, "gemini://a/é")),
    ],
)
def test_parse_header(line, expected):
    assert parse_header(line) == expected


@pytest.mark.parametrize(
    "line",
    [b"", b"2", b"2 text", b"x0 ok", b"70 nope", b"00 zero", b"20text", b"20\ttext", b"20 \xff"],
)
def test_parse_header_refuses_garbage(line):
    with pytest.raises(ResponseHeaderError):
        parse_header(line)


def test_parse_header_refuses_long_meta():
    with pytest.raises(ResponseHeaderError, match="1024"):
        parse_header(b"20 " + b"x" * 1025)


@given(headers())
def test_header_round_trip(header):
    status, meta = header
    framed = format_header(status, meta)
    assert framed.endswith(b"\r\n")
    assert parse_header(framed[:-2]) == (status, meta)


@given(st.binary(max_size=1200))
def test_parse_header_only_raises_its_own_error(line):
    try:
        status, meta = parse_header(line)
    except ResponseHeaderError:
        return
    assert 10 <= status <= 69
    assert len(meta.encode()) <= 1024
