"""What a handler returns: a status, a meta, and for 2x a body.

Handlers may also return a plain ``str`` (a gemtext page) or ``bytes``
(served as ``text/gemini``); :func:`as_response` turns those into a
:class:`Response`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass

from ..gemini.protocol import Status, format_header

__all__ = ["GEMTEXT", "Body", "Response", "as_response"]

GEMTEXT = "text/gemini"
Body = bytes | str | AsyncIterable[bytes] | None


@dataclass(slots=True)
class Response:
    """A Gemini response.

    ``body`` is sent only for 2x statuses: ``bytes``, ``str`` (encoded as
    UTF-8) or an async iterable of ``bytes`` for streaming large content.
    """

    status: int
    meta: str
    body: Body = None

    def header(self) -> bytes:
        """The framed header line; :class:`ValueError` if the status or meta is invalid."""
        return format_header(self.status, self.meta)

    @classmethod
    def success(cls, body: Body, mime: str = GEMTEXT) -> Response:
        """20 with a body of the given MIME type (gemtext by default)."""
        return cls(Status.SUCCESS, mime, body)

    @classmethod
    def input(cls, prompt: str) -> Response:
        """10: ask the user for a line of text; it comes back as the query."""
        return cls(Status.INPUT, prompt)

    @classmethod
    def sensitive_input(cls, prompt: str) -> Response:
        """11: like :meth:`input`, for text the client should not echo (a password)."""
        return cls(Status.SENSITIVE_INPUT, prompt)

    @classmethod
    def redirect(cls, target: str, *, permanent: bool = False) -> Response:
        """30 (or 31 when ``permanent``) to an absolute or relative URL."""
        return cls(Status.REDIRECT_PERMANENT if permanent else Status.REDIRECT_TEMPORARY, target)

    @classmethod
    def temporary_failure(cls, meta: str = "temporary failure", status: int = 40) -> Response:
        """A 4x answer: try again later."""
        return cls(status, meta)

    @classmethod
    def slow_down(cls, seconds: int) -> Response:
        """44 with the number of seconds to wait, the only meta the specification allows."""
        return cls(Status.SLOW_DOWN, str(max(1, int(seconds))))

    @classmethod
    def permanent_failure(cls, meta: str = "permanent failure", status: int = 50) -> Response:
        """A 5x answer: do not retry."""
        return cls(status, meta)

    @classmethod
    def not_found(cls, meta: str = "not found") -> Response:
        """51."""
        return cls(Status.NOT_FOUND, meta)

    @classmethod
    def bad_request(cls, meta: str) -> Response:
        """59."""
        return cls(Status.BAD_REQUEST, meta)


def as_response(result: object) -> Response:
    """Normalise what a handler returned; :class:`TypeError` for anything else."""
    if isinstance(result, Response):
        return result
    if isinstance(result, str | bytes):
        return Response(Status.SUCCESS, GEMTEXT, result)
    raise TypeError(f"a handler must return a Response, str or bytes, not {type(result).__name__}")
