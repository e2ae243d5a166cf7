"""Strict URL parsing, path normalisation and relative resolution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.gemini.protocol import GeminiError, parse_request
from hospes.gemini.url import (
    URL,
    URLError,
    climbs_above_root,
    normalize_path,
    parse_url,
    percent_decode,
    quote_path,
)

LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
# A name whose last label is a number is an IPv4 address (WHATWG): see the IPv4 tests below.
TOP_LABEL = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
HOST = st.tuples(st.lists(LABEL, max_size=3), TOP_LABEL).map(
    lambda parts: ".".join([*parts[0], parts[1]])
)
UNRESERVED_AND_SUB_DELIMS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
)
SEGMENT_CHARS = st.sampled_from([*UNRESERVED_AND_SUB_DELIMS, "%20", "%C3%A9", "%2F", "é", "日"])
SEGMENT = st.lists(SEGMENT_CHARS, max_size=8).map("".join)
PATH = st.lists(SEGMENT, max_size=5).map(lambda parts: "/" + "/".join(parts))
QUERY = st.none() | st.lists(SEGMENT_CHARS | st.just("/") | st.just("?"), max_size=10).map("".join)
PORT = st.none() | st.integers(1, 65535)


@given(HOST, PORT, PATH, QUERY)
def test_valid_urls_round_trip(host, port, path, query):
    text = f"gemini://{host}" + (f":{port}" if port is not None else "") + path
    if query is not None:
        text += f"?{query}"
    url = parse_request(text.encode("utf-8"))
    assert str(url) == text
    assert (url.host, url.port, url.path, url.query) == (host, port, path, query)


@given(st.text(max_size=200))
def test_parser_only_raises_its_own_error(text):
    try:
        parse_request(text.encode("utf-8", "surrogatepass"))
    except GeminiError as exc:
        assert exc.status in (53, 59)
        assert "\r" not in exc.meta and "\n" not in exc.meta


@given(st.binary(max_size=300))
def test_parser_only_raises_its_own_error_on_bytes(data):
    try:
        url = parse_request(data)
    except GeminiError:
        return
    assert url.scheme == "gemini"
    assert url.host


def test_str_of_ipv6_url_has_brackets():
    assert str(parse_url("gemini://[2001:db8::1]:1966/x")) == "gemini://[2001:db8::1]:1966/x"


def test_effective_port_defaults_to_1965():
    assert parse_url("gemini://a/").effective_port == 1965
    assert parse_url("gemini://a:70/").effective_port == 70


def test_empty_port_is_default():
    assert parse_url("gemini://a:/").port is None


def test_fragment_and_userinfo_are_kept_by_the_general_parser():
    url = parse_url("gemini://u@a/p#f")
    assert (url.userinfo, url.fragment) == ("u", "f")
    assert str(url.without_fragment()) == "gemini://u@a/p"


def test_decoded_query():
    assert parse_url("gemini://a/?hello%20world%21").decoded_query() == "hello world!"
    assert parse_url("gemini://a/").decoded_query() is None
    assert parse_url("gemini://a/?").decoded_query() == ""
    assert parse_url("gemini://a/?a+b").decoded_query() == "a+b"


def test_decoded_query_refuses_invalid_utf8():
    with pytest.raises(URLError, match="UTF-8"):
        parse_url("gemini://a/?%ff").decoded_query()


def test_percent_decode():
    assert percent_decode("a%20b") == "a b"
    assert percent_decode("plain") == "plain"
    with pytest.raises(URLError):
        percent_decode("%g0")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("//private", "/private"),
        ("/a//../b", "/b"),
        ("/a/.../b", "/a/.../b"),
    ],
)
def test_normalize_path(path, expected):
    assert normalize_path(path) == expected


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "..."]), max_size=8))
def test_normalized_paths_are_fixed_points_without_dot_segments(parts):
    result = normalize_path("/" + "/".join(parts))
    assert result.startswith("/")
    assert "//" not in result
    assert all(segment not in (".", "..") for segment in result.split("/"))
    assert normalize_path(result) == result


DOT_PATHS = st.lists(st.sampled_from(["a", "b", ".", "..", "", "..."]), max_size=8).map(
    lambda parts: "/" + "/".join(parts)
)


@given(DOT_PATHS)
def test_a_path_climbs_above_the_root_exactly_when_it_leaves_any_base(path):
    """Under a base directory the path never names, resolving it stays inside iff it does not climb.

    ``normalize_path`` clamps at the root, so a path that climbs is only seen
    by putting it under a directory: it then resolves outside that directory.
    """
    base = "/base-dir"
    resolved = normalize_path(base + path)
    stays = resolved == base or resolved.startswith(base + "/")
    assert climbs_above_root(path) is not stays


@pytest.mark.parametrize(
    ("path", "climbs"),
    [
        ("/", False),
        ("/..", True),
        ("/../../", True),
        ("/a/..", False),
        ("/a/../..", True),
        ("/a//../..", True),
        ("/./../", True),
        ("/a/b/../../c", False),
        ("/.../..", False),
    ],
)
def test_climbs_above_root(path, climbs):
    assert climbs_above_root(path) is climbs


BASE = parse_url("gemini://a/b/c/d?q")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        # RFC 3986 section 5.4.1, adapted to the gemini scheme.
        ("g", "gemini://a/b/c/g"),
        ("./g", "gemini://a/b/c/g"),
        ("g/", "gemini://a/b/c/g/"),
        ("/g", "gemini://a/g"),
        ("//g", "gemini://g"),
        ("?y", "gemini://a/b/c/d?y"),
        ("g?y", "gemini://a/b/c/g?y"),
        ("#s", "gemini://a/b/c/d?q#s"),
        ("", "gemini://a/b/c/d?q"),
        (".", "gemini://a/b/c/"),
        ("..", "gemini://a/b/"),
        ("../g", "gemini://a/b/g"),
        ("../..", "gemini://a/"),
        ("../../../g", "gemini://a/g"),
        ("gemini://other:70/x", "gemini://other:70/x"),
        ("https://example.org/", "https://example.org/"),
    ],
)
def test_join(reference, expected):
    assert str(BASE.join(reference)) == expected


def test_join_on_url_without_path():
    assert str(parse_url("gemini://a").join("x")) == "gemini://a/x"


def test_quote_path_round_trips():
    path = "/café/a b/100%/x?y#z"
    assert percent_decode(quote_path(path)) == path
    assert " " not in quote_path(path)
    assert "?" not in quote_path(path) and "#" not in quote_path(path)


def test_with_path_drops_fragment():
    url = URL("gemini", "a", None, "/x", "q", "f")
    assert str(url.with_path("/y")) == "gemini://a/y"
