"""The titan:// request line in the sans-I/O core: parameters, errors, and what follows the CRLF."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.gemini.protocol import (
    GeminiError,
    RequestReader,
    TitanRequest,
    parse_request,
    parse_titan,
)
from hospes.gemini.url import parse_url, quote_path
from strategies import mime_types


def titan(text: str) -> TitanRequest:
    return parse_titan(parse_request(text.encode(), titan=True))


def test_every_parameter():
    request = titan("titan://example.org:1966/wiki/page.gmi;size=12;mime=text/plain;token=abc")
    assert request == TitanRequest(
        parse_url("titan://example.org:1966/wiki/page.gmi"), 12, "text/plain", "abc"
    )


def test_defaults_and_order():
    request = titan("titan://example.org/a;token=t%20t;size=0")
    assert (request.size, request.mime, request.token) == (0, "text/gemini", "t t")
    assert str(request.url) == "titan://example.org/a"


def test_a_query_after_the_parameters_is_kept():
    request = titan("titan://example.org/a;size=3?x=1")
    assert (request.url.path, request.url.query, request.size) == ("/a", "x=1", 3)


def test_percent_encoded_mime_parameters():
    assert titan("titan://h/a;size=1;mime=text/plain%3Bcharset=utf-8").mime == (
        "text/plain;charset=utf-8"
    )


def test_unknown_parameters_are_ignored():
    assert titan("titan://h/a;size=1;colour=blue").size == 1


@pytest.mark.parametrize(
    ("text", "meta"),
    [
        ("titan://h/a", "a Titan upload needs a size"),
        ("titan://h/a;mime=text/plain", "a Titan upload needs a size"),
        ("titan://h/a;size=", "Titan size must be a number of bytes"),
        ("titan://h/a;size=+1", "Titan size must be a number of bytes"),
        ("titan://h/a;size=1e3", "Titan size must be a number of bytes"),
        ("titan://h/a;size=1234567890123456789", "Titan size must be a number of bytes"),
        ("titan://h/a;size=1;size=1", "Titan parameter 'size' is given twice"),
        ("titan://h/a;size=1;;", "malformed Titan parameter"),
        ("titan://h/a;size", "malformed Titan parameter"),
        ("titan://h/a;size=1;mime=text", "Titan mime must be a MIME type"),
        ("titan://h/a;size=1;token=%0a", "Titan token contains a control character"),
        ("titan://h/a;size=%ff", "Titan parameter 'size'"),
    ],
)
def test_malformed_parameters_are_59(text, meta):
    with pytest.raises(GeminiError) as caught:
        titan(text)
    assert caught.value.status == 59
    assert caught.value.meta.startswith(meta)


def test_titan_is_refused_unless_the_server_takes_uploads():
    with pytest.raises(GeminiError) as caught:
        parse_request(b"titan://h/a;size=1")
    assert (caught.value.status, caught.value.meta) == (53, "this server does not proxy titan:")
    assert parse_request(b"titan://h/a;size=1", titan=True).scheme == "titan"
    with pytest.raises(GeminiError):
        parse_request(b"https://h/", titan=True)


def test_the_reader_keeps_what_follows_the_line():
    reader = RequestReader()
    assert reader.feed(b"titan://h/a;size=5\r\nhel") == b"titan://h/a;size=5"
    assert reader.rest == b"hel"
    reader = RequestReader()
    assert reader.feed(b"gemini://h/\r\n") == b"gemini://h/"
    assert reader.rest == b""


SEGMENTS = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8)
    .filter(lambda text: text not in (".", ".."))
    .map(lambda text: quote_path(text).replace("/", "%2F").replace(";", "%3B")),
    max_size=3,
)
TOKENS = st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20
)


@given(SEGMENTS, st.integers(0, 10**18 - 1), mime_types(), TOKENS)
def test_parameters_round_trip(segments, size, mime, token):
    path = "/" + "/".join(segments)
    text = f"titan://example.org{path};size={size};mime={quote_path(mime).replace(';', '%3B')}"
    if token is not None:
        text += f";token={quote_path(token).replace(';', '%3B')}"
    if len(text.encode()) > 1024:
        return
    request = titan(text)
    assert (request.url.path, request.size, request.mime, request.token) == (
        path,
        size,
        mime,
        token,
    )


@given(st.binary(max_size=300))
def test_any_line_is_a_request_or_a_59_or_53(line):
    try:
        url = parse_request(line, titan=True)
        if url.scheme == "titan":
            parse_titan(url)
    except GeminiError as error:
        assert error.status in (53, 59)
