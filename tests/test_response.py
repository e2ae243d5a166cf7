"""Response: checked when built, immutable, and framed without a second check."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given

from hospes.app.response import GEMTEXT, Response, as_response
from hospes.app.static import BUILTIN_TYPES, StaticFiles, guess_mime
from hospes.gemini.protocol import GeminiError, Status, format_header
from strategies import headers


async def _chunks():
    yield b"streamed"


def test_factories_build_valid_responses():
    assert Response.success("# hi\n").header() == b"20 text/gemini\r\n"
    assert Response.success(b"x", "text/plain; charset=utf-8").meta == "text/plain; charset=utf-8"
    assert Response.input("Name?").header() == b"10 Name?\r\n"
    assert Response.sensitive_input("Password").status == 11
    assert Response.redirect("/next").header() == b"30 /next\r\n"
    assert Response.redirect("/next", permanent=True).status == 31
    assert Response.temporary_failure().header() == b"40 temporary failure\r\n"
    assert Response.temporary_failure("busy", status=41).status == 41
    assert Response.slow_down(2.7).header() == b"44 2\r\n"
    assert Response.permanent_failure("gone", status=52).header() == b"52 gone\r\n"
    assert Response.not_found().header() == b"51 not found\r\n"
    assert Response.bad_request("no").header() == b"59 no\r\n"
    assert Response.success(_chunks()).status == 20


def test_is_immutable_and_comparable():
    response = Response.success(b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status = 51  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.meta = "text/plain\r\n20 injected"  # type: ignore[misc]
    # No other attribute either (a TypeError on Python 3.11: the frozen check of a
    # slotted dataclass refers to the class before slots were added).
    with pytest.raises((AttributeError, TypeError)):
        response.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(response, "extra")
    assert response == Response(Status.SUCCESS, GEMTEXT, b"x") == Response(20, GEMTEXT, b"x")
    assert hash(response) == hash(Response(20, GEMTEXT, b"x"))
    assert repr(response) == "Response(status=<Status.SUCCESS: 20>, meta='text/gemini', body=b'x')"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((20, "text/plain\r\n20 injected", b"x"), "control character '\\r'"),
        ((51, "line\nbreak"), "control character '\\n'"),
        ((51, "\x1b]0;title\x07"), "control character '\\x1b'"),
        ((70, "x"), "70 is not a Gemini status"),
        ((21, "text/gemini"), "21 is not a Gemini status"),
        ((51, "x" * 1025), "longer than 1024 bytes"),
        ((20, "gemtext", b"x"), "must be a MIME type"),
        ((20, "", b"x"), "must be a MIME type"),
        ((30, ""), "must be the URL to redirect to"),
        ((51, "not found", b"a body"), "a 51 response has no body"),
        ((10, "Name?", "a body"), "a 10 response has no body"),
    ],
)
def test_an_invalid_response_fails_where_it_is_built(arguments, message):
    with pytest.raises(ValueError) as caught:
        Response(*arguments)
    assert message in str(caught.value)


def test_a_body_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="not list"):
        Response.success([b"a", b"b"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        Response(20, GEMTEXT, 42)  # type: ignore[arg-type]


def test_the_shortcut_for_known_mime_types_checks_as_much():
    """A 20 whose MIME type passed before skips the grammar, never the body or status checks."""
    Response.success(b"x", "text/x-seen")
    with pytest.raises(TypeError):
        Response.success(42, "text/x-seen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no body"):
        Response(51, "text/x-seen", b"x")
    with pytest.raises(ValueError, match="MIME type"):
        Response.success(b"x", "text/x-seen; x")
    for _ in range(2):
        with pytest.raises(ValueError, match="MIME type"):
            Response.success(b"x", "not-a-mime-type")


def test_failures_keep_to_their_class_of_status():
    with pytest.raises(ValueError, match="4x, not 51"):
        Response.temporary_failure("x", status=51)
    with pytest.raises(ValueError, match="5x, not 44"):
        Response.permanent_failure("x", status=44)


def test_replace_checks_again():
    response = Response.not_found()
    assert dataclasses.replace(response, meta="gone").meta == "gone"
    with pytest.raises(ValueError, match="control character"):
        dataclasses.replace(response, meta="a\r\nb")
    with pytest.raises(ValueError, match="no body"):
        dataclasses.replace(response, body=b"x")


def test_from_error():
    response = Response.from_error(GeminiError(Status.GONE, "moved away"))
    assert response == Response(52, "moved away")


def test_as_response():
    assert as_response("# hi\n") == Response.success("# hi\n")
    assert as_response(b"raw") == Response(20, GEMTEXT, b"raw")
    with pytest.raises(TypeError, match="must return"):
        as_response(None)


@given(headers())
def test_header_frames_what_format_header_frames(header):
    status, meta = header
    assert Response(status, meta).header() == format_header(status, meta)


def test_every_mime_type_static_files_serve_is_accepted(tmp_path):
    types = {guess_mime(f"file{extension}") for extension in BUILTIN_TYPES}
    types.add(guess_mime("file.unknown"))
    assert {"text/gemini", "text/markdown", "image/png", "application/octet-stream"} <= types
    # With a language and a charset, as a capsule's configuration adds them.
    static = StaticFiles(tmp_path, lang="pt-BR", charset="iso-8859-1")
    types |= {static.mime_of(f"file{extension}") for extension in BUILTIN_TYPES}
    assert "text/gemini; charset=iso-8859-1; lang=pt-BR" in types
    for mime in types:
        assert Response.success(b"", mime).meta == mime
