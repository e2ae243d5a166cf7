"""What a handler returns: a status, a meta, and for 2x a body.

Handlers may also return a plain ``str`` (a gemtext page) or ``bytes``
(served as ``text/gemini``); :func:`as_response` turns those into a
:class:`Response`.  To answer with an error from anywhere below a handler,
raise :class:`~hospes.gemini.protocol.GeminiError` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

from ..gemini.protocol import GeminiError, Status, check_header

__all__ = ["GEMTEXT", "Body", "BodyAborted", "Response", "as_response"]

GEMTEXT = "text/gemini"
Body = bytes | str | AsyncIterable[bytes] | None

_SUCCESS = Status.SUCCESS
_PLAIN_BODIES = frozenset({bytes, str, type(None)})
_CHECKED: set[str] = set()
"""MIME types of 20 responses that passed the checks: most responses reuse a handful."""
_CHECKED_KEPT = 256


class BodyAborted(Exception):
    """Raised by a streamed body that stops on purpose (a gateway's cap or timeout).

    The server closes the connection without TLS close_notify, so the client
    sees a truncated response, and logs the message without a traceback.
    """


@dataclass(frozen=True, slots=True, init=False)
class Response:
    """A Gemini response, valid by construction and immutable.

    Building one checks it (:func:`~hospes.gemini.protocol.check_header`: a
    defined status, a meta of at most 1024 bytes without control characters, a
    MIME type for 2x, a URL for 3x) and raises :class:`ValueError` saying what
    is wrong, so a bad response fails in the handler that writes it.  ``body``
    belongs to 2x only: ``bytes``, ``str`` (sent as UTF-8) or an async iterable
    of ``bytes`` for streaming large content.  A streamed body runs after the
    header has gone: if it raises, the server logs the traceback and closes the
    connection without TLS close_notify, so the client sees a truncated
    response, not a complete one.
    """

    status: int
    meta: str
    body: Body = None

    def __init__(self, status: int, meta: str, body: Body = None) -> None:
        # The slots' own setters: a frozen dataclass's object.__setattr__ would
        # double the cost of the most common object of a request.
        _set_status(self, status)
        _set_meta(self, meta)
        _set_body(self, body)
        if status is _SUCCESS and meta in _CHECKED and body.__class__ in _PLAIN_BODIES:
            return  # a 20 with a MIME type that passed the checks before
        self._check()

    def _check(self) -> None:
        """Check the response (see the class docstring); remember a 20's MIME type that passed."""
        status, meta, body = self.status, self.meta, self.body
        check_header(status, meta)
        if body is not None:
            if status // 10 != 2:
                raise ValueError(f"a {status} response has no body: only 2x responses do")
            if not isinstance(body, bytes | str) and not hasattr(body, "__aiter__"):
                raise TypeError(
                    f"a body is bytes, str or an async iterable of bytes, not {type(body).__name__}"
                )
        if status == _SUCCESS and len(_CHECKED) < _CHECKED_KEPT:
            _CHECKED.add(meta)

    def header(self) -> bytes:
        """The framed header line ``<status> <meta>\\r\\n``, checked when the response was built."""
        return b"%d %s\r\n" % (self.status, self.meta.encode("utf-8"))

    @classmethod
    def from_error(cls, error: GeminiError) -> Response:
        """The answer an error carries (raised by a handler or by the protocol core)."""
        return cls(error.status, error.meta)

    @classmethod
    def success(cls, body: Body, mime: str = GEMTEXT) -> Response:
        """20 with a body of the given MIME type (gemtext by default)."""
        return cls(_SUCCESS, mime, body)

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
        if status // 10 != 4:
            raise ValueError(f"a temporary failure is 4x, not {status}")
        return cls(status, meta)

    @classmethod
    def slow_down(cls, seconds: int) -> Response:
        """44 with the number of seconds to wait, the only meta the specification allows."""
        return cls(Status.SLOW_DOWN, str(max(1, int(seconds))))

    @classmethod
    def permanent_failure(cls, meta: str = "permanent failure", status: int = 50) -> Response:
        """A 5x answer: do not retry."""
        if status // 10 != 5:
            raise ValueError(f"a permanent failure is 5x, not {status}")
        return cls(status, meta)

    @classmethod
    def not_found(cls, meta: str = "not found") -> Response:
        """51."""
        return cls(Status.NOT_FOUND, meta)

    @classmethod
    def bad_request(cls, meta: str) -> Response:
        """59."""
        return cls(Status.BAD_REQUEST, meta)


_set_status: Callable[[Response, int], None] = Response.__dict__["status"].__set__
_set_meta: Callable[[Response, str], None] = Response.__dict__["meta"].__set__
_set_body: Callable[[Response, Body], None] = Response.__dict__["body"].__set__


def as_response(result: object) -> Response:
    """Normalise what a handler returned; :class:`TypeError` for anything else."""
    if isinstance(result, Response):
        return result
    if isinstance(result, str | bytes):
        return Response(_SUCCESS, GEMTEXT, result)
    raise TypeError(f"a handler must return a Response, str or bytes, not {type(result).__name__}")
