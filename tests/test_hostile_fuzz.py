"""Fuzz targets, run briefly in the suite: the whole request path (reader → parser → dispatcher
with rate limits) on arbitrary bytes, and certificate → identity on mutated real certificates
and arbitrary common names.

Longer runs: ``HOSPES_FUZZ_EXAMPLES=50000 pytest tests/test_hostile_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata

from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hospes.app.dispatch import Dispatcher
from hospes.app.request import Request
from hospes.gemini.fingerprint import fingerprint
from hospes.gemini.identity import CertificateError, identify
from hospes.gemini.protocol import MAX_URL_BYTES, GeminiError, RequestReader, Status, parse_header
from hospes.policy.ratelimit import RateLimits, RateRule
from hospes.selfsigned import generate_key, self_signed_certificate
from hospes.server.accesslog import AccessLog
from hostile import odd_certificate

FUZZ = settings(
    max_examples=int(os.environ.get("HOSPES_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
KEY = generate_key("ecdsa")
CERTIFICATE = self_signed_certificate(KEY, "fuzz").public_bytes(Encoding.DER)
LOOP = asyncio.new_event_loop()


def echo(request: Request) -> str:
    return f"{request.path} {request.query!r} {request.identity and request.identity.name}\n"


DISPATCHER = Dispatcher(
    echo,
    hostnames=["localhost", "xn--bcher-kva.example"],
    ports=[1965],
    rate_limits=RateLimits([RateRule("/", per_address=1000, per_key=1000, burst=1000)]),
)

# Request lines: mostly near-valid URLs with hostile pieces, sometimes raw bytes.
pieces = st.sampled_from(
    [
        "gemini://localhost/",
        "gemini://localhost:1965/",
        "gemini://LOCALHOST./",
        "gemini://bücher.example/",
        "gemini://[::1]/",
        "https://localhost/",
        "/",
        "..",
        "%2e%2e/",
        "%00",
        "%0d%0a",
        "%1b[31m",
        "\x1b",
        "\u202e",
        "?",
        "#",
        "@",
        ":",
        "%",
        "%zz",
        "\ufeff",
        " ",
        "\t",
        "/./",
        "//",
    ]
)
lines = st.one_of(
    st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=12).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=1100),
)


@FUZZ
@given(
    lines,
    st.sampled_from([b"\r\n", b"\n", b"", b"\r\n\r\nGET / HTTP/1.0\r\n", b"\r"]),
    st.lists(st.integers(1, 64), max_size=8),
    st.one_of(st.none(), st.just(CERTIFICATE), st.binary(max_size=64)),
    st.integers(0, 2**128 - 1),
)
def test_request_path_never_fails_and_never_echoes_controls(line, end, cuts, cert, address):
    data = line + end
    reader = RequestReader()
    got: bytes | None = None
    error: GeminiError | None = None
    try:
        position = 0
        for size in [*cuts, len(data)]:
            got = reader.feed(data[position : position + size])
            position += size
            if got is not None or position >= len(data):
                break
    except GeminiError as exc:
        error = exc
    assert reader.buffered <= MAX_URL_BYTES + 1
    if error is not None:
        outcome = DISPATCHER.reject(error, "-", cert, address_key=address)
    elif got is not None:
        assert b"\n" not in got
        outcome = LOOP.run_until_complete(
            DISPATCHER.respond(got, cert, "192.0.2.1", 1234, address_key=address)
        )
    else:
        return  # still waiting for the end of the line: the server's deadline handles it
    header = outcome.response.header()  # a valid header, always
    status, meta = parse_header(header[:-2])
    assert status in set(Status)
    assert not {char for char in meta if unicodedata.category(char) in UNSAFE}
    logged: list[str] = []
    AccessLog(ListStream(logged)).record(
        remote="192.0.2.1:1234",
        fingerprint=outcome.fingerprint,
        target=outcome.target,
        status=status,
        size=0,
        seconds=0.001,
    )
    assert len(logged) == 1
    assert logged[0].endswith("ms\n")
    assert not {char for char in logged[0][:-1] if unicodedata.category(char) in UNSAFE}


def _answer(dispatcher: Dispatcher, line: bytes, sni: str | None) -> tuple[bytes, str, object]:
    outcome = LOOP.run_until_complete(
        dispatcher.respond(line, None, "192.0.2.1", 1234, server_name=sni)
    )
    return outcome.response.header(), outcome.target, outcome.response.body


@FUZZ
@given(
    st.lists(
        st.tuples(lines, st.sampled_from([None, "localhost", "xn--bcher-kva.example", "x.test"])),
        min_size=1,
        max_size=6,
    )
)
def test_a_remembered_request_line_is_answered_as_a_new_one(requests):
    """The dispatcher keeps what valid lines parsed to: a line asked again (under any TLS
    server name) gets exactly the answer a dispatcher that never saw it gives."""
    remembering = Dispatcher(echo, hostnames=["localhost", "xn--bcher-kva.example"], ports=[1965])
    for line, sni in [*requests, *requests]:
        if b"\n" in line:
            continue
        fresh = Dispatcher(echo, hostnames=["localhost", "xn--bcher-kva.example"], ports=[1965])
        assert _answer(remembering, line, sni) == _answer(fresh, line, sni)


def test_the_remembered_request_lines_are_bounded():
    dispatcher = Dispatcher(echo, hostnames=["localhost"], ports=[1965])
    for number in range(600):
        line = f"gemini://localhost/{number}".encode()
        assert _answer(dispatcher, line, "localhost")[0] == b"20 text/gemini\r\n"
    assert len(dispatcher._parsed) == 512
    assert b"gemini://localhost/599" in dispatcher._parsed
    assert b"gemini://localhost/0" not in dispatcher._parsed
    # An invalid line is never kept: it gets its refusal every time.
    for _ in range(2):
        assert _answer(dispatcher, b"gemini://localhost/%zz", None)[0].startswith(b"59 ")
    assert b"gemini://localhost/%zz" not in dispatcher._parsed
    long = b"gemini://localhost/" + b"a" * 300
    assert _answer(dispatcher, long, None)[0] == b"20 text/gemini\r\n"
    assert long not in dispatcher._parsed


class ListStream:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        return None


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real certificate with a few bytes replaced, inserted, deleted, or cut short."""
    data = bytearray(CERTIFICATE)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "replace":
            data[position : position + len(chunk)] = chunk
        elif action == "insert":
            data[position:position] = chunk
        elif action == "delete":
            del data[position : position + len(chunk)]
        else:
            del data[position:]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_certificates_parse_or_fail_cleanly(der):
    try:
        identity = identify(der)
    except CertificateError as exc:
        assert not {char for char in str(exc) if unicodedata.category(char) in UNSAFE}
        return
    assert identity.fingerprint == fingerprint(der)
    assert not {char for char in identity.name if unicodedata.category(char) in UNSAFE}
    # The key the rate limits use never fails either.
    assert DISPATCHER._client_key(der)


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@FUZZ
@given(names)
def test_any_common_name_is_shown_escaped_and_cut(common_name):
    der = odd_certificate(common_name, key=KEY)[0].public_bytes(Encoding.DER)
    identity = identify(der)
    assert identity.common_name == common_name
    shown = identity.name
    assert not {char for char in shown if unicodedata.category(char) in UNSAFE}
    assert len(shown) <= 64 * 6 + 1  # 64 characters, each at most "\uXXXX", and the ellipsis
