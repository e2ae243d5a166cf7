"""Applications: routes with path parameters, per-route access requirements, and mounts.

An application is just something you call with a :class:`~hospes.app.request.Request`
and that returns a response, so applications, static directories and plain
functions mount inside each other freely::

    app = Application()

    @app.route("/hello/{name}")
    def hello(request):
        return f"# Hello, {request.params['name']}!\\n"

    @app.route("/me", requires="certificate")
    async def me(request):
        return f"You are {request.identity.name}\\n"

    app.mount("/files/", StaticFiles("capsule/files"))

A handler answers with an error from wherever it is by raising
:class:`~hospes.gemini.protocol.GeminiError`::

    @app.route("/notes/{id:int}")
    async def note(request):
        text = await load_note(int(request.params["id"]))
        if text is None:
            raise GeminiError(Status.NOT_FOUND, "no such note")
        return text

:func:`call_handler` turns it into that response, at the innermost handler
that raised it (so inside a mounted application too); any other exception
gives the client ``40`` and the log its traceback.  A streamed body that raises
after the header was sent cannot change the status: the connection is closed
without TLS close_notify, so the client sees the response as truncated.

The server looks up the visitor's account (``request.account``) before calling
a handler; a handler object that never reads it can say ``uses_accounts =
False`` (static files do) and spare the store that lookup.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import CoroutineType

from ..gemini.fingerprint import parse_fingerprint
from ..gemini.protocol import GeminiError
from ..gemini.url import quote_path
from .access import AccessRule, Requirement, check, path_matches
from .request import Request
from .response import Response, as_response
from .upload import check_upload, no_uploads

__all__ = ["Application", "Handler", "call_handler"]

HandlerResult = Response | str | bytes
Handler = Callable[[Request], HandlerResult | Awaitable[HandlerResult]]

_PARAMETER = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVERTERS = {"str": "[^/]+", "path": ".+", "int": "[0-9]+"}


async def call_handler(handler: Handler, request: Request) -> Response:
    """Call a sync or async handler and normalise its result.

    A :class:`~hospes.gemini.protocol.GeminiError` it raises becomes the
    response the error carries.
    """
    try:
        result = handler(request)
        if result.__class__ is CoroutineType or inspect.isawaitable(result):
            result = await result
    except GeminiError as error:
        return Response.from_error(error)
    return as_response(result)


def _compile(pattern: str) -> re.Pattern[str]:
    """The regular expression of a route pattern; :class:`ValueError` naming what is wrong."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    regex, position, names = "", 0, set()
    for match in _PARAMETER.finditer(pattern):
        regex += _literal(pattern, pattern[position : match.start()])
        name, colon, converter = match.group(1).partition(":")
        if _NAME.fullmatch(name) is None:
            raise ValueError(
                f"route pattern {pattern!r}: {{{match.group(1)}}} needs a parameter name "
                "(letters, digits, '_'; not starting with a digit)"
            )
        if name in names:
            raise ValueError(f"route pattern {pattern!r}: parameter {name!r} appears twice")
        names.add(name)
        if colon and converter not in _CONVERTERS:
            known = ", ".join(_CONVERTERS)
            raise ValueError(
                f"route pattern {pattern!r}: unknown converter {converter!r} in "
                f"{{{match.group(1)}}} (known: {known})"
            )
        regex += f"(?P<{name}>{_CONVERTERS[converter or 'str']})"
        position = match.end()
    regex += _literal(pattern, pattern[position:])
    return re.compile(regex + r"\Z")


def _literal(pattern: str, text: str) -> str:
    """``text`` (between parameters) escaped; a brace in it is an unbalanced one."""
    if "{" in text or "}" in text:
        raise ValueError(f"route pattern {pattern!r} has an unbalanced '{{' or '}}'")
    return re.escape(text)


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    rule: AccessRule | None
    max_upload: int | None = None


class Application:
    """A set of routes and mounts, itself a handler."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._mounts: list[tuple[str, Handler]] = []

    def route(
        self,
        pattern: str,
        *,
        requires: Requirement | str | None = None,
        allow: Iterable[str] = (),
        lists: Iterable[str] = (),
        register_url: str | None = None,
        max_upload: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for ``pattern`` (see :meth:`add_route`)."""
        _compile(pattern)  # an invalid pattern fails here, not when the decorator is applied

        def decorator(handler: Handler) -> Handler:
            self.add_route(
                pattern,
                handler,
                requires=requires,
                allow=allow,
                lists=lists,
                register_url=register_url,
                max_upload=max_upload,
            )
            return handler

        return decorator

    def add_route(
        self,
        pattern: str,
        handler: Handler,
        *,
        requires: Requirement | str | None = None,
        allow: Iterable[str] = (),
        lists: Iterable[str] = (),
        register_url: str | None = None,
        max_upload: int | None = None,
    ) -> None:
        """Serve ``pattern`` with ``handler``.

        ``{name}`` matches one path segment, ``{name:int}`` digits and
        ``{name:path}`` the rest of the path; values land in
        ``request.params``.  An unknown converter, a name used twice or an
        unbalanced brace is a :class:`ValueError` here.  ``requires``
        (``"certificate"``, ``"allowlist"`` with ``allow`` fingerprints and/or
        store ``lists``, or ``"account"``) applies the same 60/61/62 rules as
        the server's configuration.  ``max_upload`` lets the route receive
        Titan uploads of at most that many bytes (``request.upload``); a
        larger one, or any upload to a route without it, is answered 59
        before the handler runs or a byte of the body is read.
        """
        if max_upload is not None and max_upload < 0:
            raise ValueError(f"max_upload must not be negative, got {max_upload}")
        rule = None
        if requires is not None:
            rule = AccessRule(
                path=pattern,
                require=Requirement(requires),
                fingerprints=frozenset(parse_fingerprint(value) for value in allow),
                lists=tuple(lists),
                register_url=register_url,
            )
        self._routes.append(_Route(pattern, _compile(pattern), handler, rule, max_upload))

    def mount(self, prefix: str, handler: Handler) -> None:
        """Serve every path under ``prefix`` with ``handler`` (an app, static files, a function).

        The handler sees ``request.base`` set to the prefix and
        ``request.relative_path`` relative to it.  Longer prefixes win.
        """
        if not prefix.startswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start with '/'")
        self._mounts.append((prefix.rstrip("/"), handler))
        self._mounts.sort(key=lambda mount: len(mount[0]), reverse=True)

    @property
    def accepts_uploads(self) -> bool:
        """Whether a route or a mounted handler takes Titan uploads (the server reads them)."""
        return any(route.max_upload is not None for route in self._routes) or any(
            getattr(handler, "accepts_uploads", False) for _, handler in self._mounts
        )

    async def __call__(self, request: Request) -> Response:
        """Answer ``request`` with the first matching route, else the longest matching mount."""
        path = request.relative_path
        upload = request.upload
        for route in self._routes:
            match = route.regex.match(path)
            if match is None:
                continue
            if route.rule is not None:
                denied = await check(route.rule, request, dt.datetime.now(dt.UTC))
                if denied is not None:
                    return denied
            if upload is not None:
                if route.max_upload is None:
                    return no_uploads(request.path)
                refused = check_upload(upload, route.max_upload)
                if refused is not None:
                    return refused
            request.params = match.groupdict()
            return await call_handler(route.handler, request)
        for prefix, handler in self._mounts:
            if path_matches(prefix, path):
                if upload is not None and not getattr(handler, "accepts_uploads", False):
                    return no_uploads(request.path)
                request.base += prefix
                return await call_handler(handler, request)
        if upload is not None:
            return no_uploads(request.path)
        if not path.endswith("/") and any(route.regex.match(path + "/") for route in self._routes):
            return Response.redirect(quote_path(request.path + "/"), permanent=True)
        return Response.not_found()
