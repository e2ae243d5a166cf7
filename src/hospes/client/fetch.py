"""Fetch Gemini URLs: one request per connection, redirects, input, identities and TOFU.

:class:`Client` is the asynchronous API; :mod:`hospes.client.sync` wraps it
for plain scripts.  Each hop of a fetch goes through the same steps:

1. choose the identity whose scope contains the URL (or none), and check
   that TLS can use it;
2. connect and handshake; the server certificate is judged in the handshake
   (:mod:`hospes.client.tls`), before anything of the user's is sent;
3. record the TOFU verdict atomically, then send the request line;
4. read the header, then (for 2x) stream the body to the end of the stream.

What the user gave for the URL they typed stays with its host and port: a
key accepted with ``accept_key`` and a text ``input`` apply only there,
never to a host reached through a redirect.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from ..gemini.protocol import MAX_URL_BYTES, HeaderReader, ResponseHeaderError, parse_header
from ..gemini.url import URL, URLError, parse_url
from .certificate import ServerCertificate
from .connection import TLSStream
from .errors import InvalidRequest, MalformedResponse, TLSFailure
from .identities import Identity, IdentityStore, Scope
from .known_hosts import KnownHost, KnownHosts, Verdict, format_address
from .paths import client_data_dir, identities_dir, known_hosts_path
from .tls import PeerCheck, TrustMode, client_context

__all__ = [
    "DEFAULT_MAX_PROMPTS",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TIMEOUT",
    "Client",
    "ClientResponse",
    "Hop",
    "IdentityChoice",
    "InputAnswer",
    "InputCallback",
    "Redirect",
    "Trust",
    "request_url",
    "typed_url",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_MAX_PROMPTS = 3

InputCallback = Callable[[str, bool, URL], "str | Awaitable[str | None] | None"]
"""Called with (prompt, sensitive, url) on a 1x status; returns the answer or None to stop."""
InputAnswer = str | InputCallback | None
IdentityChoice = str | Identity | bool | None
"""None or True: the identity whose scope contains the URL; False: none; a name: that one."""


@dataclass(frozen=True, slots=True)
class Trust:
    """Why the client trusted the server of a response."""

    verdict: Verdict
    certificate: ServerCertificate
    previous: KnownHost | None
    """The pin before this connection (None on first use and in CA mode)."""
    hostname_matches: bool
    """Whether the certificate names the host (not required under TOFU)."""
    validity_problem: str | None
    """``expired on …`` / ``not valid before …`` when the certificate is outside its dates."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One exchange of a fetch that led to another: a redirect, or a prompt that was answered."""

    url: URL
    status: int
    meta: str
    """As the server sent it: untrusted text."""
    trust: Trust
    identity: Identity | None


@dataclass(frozen=True, slots=True)
class Redirect:
    """One redirect that was followed."""

    source: URL
    target: URL
    status: int
    cross_host: bool
    """The target is another host or port: other pins, other identities."""


_SCHEME = re.compile(r"\A([A-Za-z][A-Za-z0-9+.\-]*):")
_PORT_AFTER_HOST = re.compile(r"\A[0-9]*(?:[/?#]|\Z)")


def typed_url(text: str) -> URL:
    """A URL as a person types it: ``HOST[:PORT][/PATH]`` without a scheme is ``gemini://``.

    ``example.org/page``, ``localhost:1965/``, ``[::1]:1965`` and ``//host/``
    are Gemini URLs, as in Amfora and AV-98.  A scheme other than gemini:, a
    path without a host (``/page``, ``./page``) and anything else that
    cannot be a Gemini URL raise :class:`InvalidRequest` saying what to type.
    """
    text = text.strip()
    if text.startswith("//"):
        return request_url("gemini:" + text)
    match = _SCHEME.match(text)
    rest = text[match.end() :] if match else ""
    if match and (rest.startswith("//") or not _PORT_AFTER_HOST.match(rest)):
        try:
            return request_url(text)  # a scheme: checked there (gemini: only)
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"{exc}; type gemini://HOST[:PORT]/PATH or HOST[:PORT]/PATH"
            ) from None
    if not text or text.startswith(("/", ".", "?", "#")):
        raise InvalidRequest(
            f"{text!r} has no host: type gemini://HOST[:PORT]/PATH or HOST[:PORT]/PATH"
            if text
            else "empty URL"
        )
    url = request_url("gemini://" + text)
    return url if url.path else url.with_path("/", url.query)


def request_url(text: str | URL) -> URL:
    """Validate a URL the client can request (gemini:, a host, no userinfo); drop the fragment."""
    try:
        url = text if isinstance(text, URL) else parse_url(text)
    except URLError as exc:
        raise InvalidRequest(f"invalid URL: {exc}") from None
    if url.scheme != "gemini":
        raise InvalidRequest(f"not a gemini: URL ({url.scheme}:)")
    if not url.host:
        raise InvalidRequest("the URL has no host")
    if url.userinfo is not None:
        raise InvalidRequest("a gemini: URL cannot contain a user name")
    url = url.without_fragment()
    if len(str(url).encode("utf-8")) > MAX_URL_BYTES:
        raise InvalidRequest(f"the URL is longer than {MAX_URL_BYTES} bytes")
    return url


class ClientResponse:
    """A response: status, meta, the server's certificate, and (for 2x) a body to read once.

    Use it as an async context manager, or call :meth:`close`, when the body is
    not read to the end.  After :meth:`read`, the body is in :attr:`body`.
    """

    def __init__(
        self,
        url: URL,
        *,
        status: int,
        meta: str,
        trust: Trust,
        identity: Identity | None,
        stream: TLSStream,
        first: bytes,
        timeout: float,
    ) -> None:
        self.url = url
        """The URL that gave this response (after redirects and input)."""
        self.status = status
        self.meta = meta
        """As the server sent it: untrusted text, escape it before printing."""
        self.trust = trust
        self.identity = identity
        """The identity presented on the final request, if any."""
        self.redirects: tuple[Redirect, ...] = ()
        self.hops: tuple[Hop, ...] = ()
        """The exchanges before this one (redirects, answered prompts), each with its trust."""
        self.unanswered: str | None = None
        """For a 1x: why the given input was not sent (another host, asked again, too often)."""
        self.stopped: str | None = None
        """Why a redirect was not followed (the response is then the 3x)."""
        self.withheld: Identity | None = None
        """An identity named for this fetch but not sent, because the final URL is outside it."""
        self.body: bytes | None = None
        self._stream: TLSStream | None = stream
        self._first = first
        self._timeout = timeout
        self._clean: bool | None = None
        if not 20 <= status <= 29:
            self.close()

    @property
    def certificate(self) -> ServerCertificate:
        """The certificate the server presented."""
        return self.trust.certificate

    @property
    def mime_type(self) -> str | None:
        """For 2x, the MIME type without parameters, lower case (``text/gemini`` if empty)."""
        if not 20 <= self.status <= 29:
            return None
        return (self.meta.split(";", 1)[0].strip() or "text/gemini").lower()

    @property
    def charset(self) -> str:
        """For text, the ``charset`` parameter of the meta (UTF-8 by default)."""
        for parameter in self.meta.split(";")[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return "utf-8"

    @property
    def clean_close(self) -> bool | None:
        """How the body ended: True with TLS close_notify, False without (maybe truncated).

        None before the end of the body, and for responses without one.
        """
        return self._clean

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body, chunk by chunk as it arrives (empty for anything but 2x).

        Each chunk must arrive within the timeout of the previous one.
        """
        stream = self._stream
        if stream is None:
            return
        try:
            if self._first:
                first, self._first = self._first, b""
                yield first
            loop = asyncio.get_running_loop()
            while True:
                data = await stream.recv(loop.time() + self._timeout, "the body")
                if not data:
                    self._clean = stream.clean_close
                    break
                yield data
        finally:
            self.close()

    async def read(self) -> bytes:
        """The whole body (kept in :attr:`body`)."""
        if self.body is None:
            self.body = b"".join([chunk async for chunk in self.chunks()])
        return self.body

    def close(self) -> None:
        """Close the connection (a body not read to the end is abandoned)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Client:
    """Fetches Gemini URLs with one trust policy, one known-hosts file and one identity store.

    ``mode`` is :attr:`TrustMode.TOFU` (pins in ``known_hosts``) or
    :attr:`TrustMode.CA` (the system's certificate authorities, or
    ``ca_file``).  ``verify_hostname`` makes a certificate that does not name
    the host fatal under TOFU too.  ``timeout`` bounds connecting, the
    handshake and the header together, and then each wait for body data.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        known_hosts: KnownHosts | None = None,
        identities: IdentityStore | None = None,
        mode: TrustMode = TrustMode.TOFU,
        ca_file: Path | None = None,
        verify_hostname: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        follow_cross_host: bool = True,
        max_prompts: int = DEFAULT_MAX_PROMPTS,
    ) -> None:
        if mode is TrustMode.OBSERVE:
            raise ValueError("observe mode is for probe(), not for fetching")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must not be negative")
        if max_prompts < 0:
            raise ValueError("max_prompts must not be negative")
        directory = client_data_dir(data_dir)
        self.known_hosts = known_hosts or KnownHosts(known_hosts_path(directory))
        self.identities = identities or IdentityStore(identities_dir(directory))
        self.mode = mode
        self.verify_hostname = verify_hostname
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.follow_cross_host = follow_cross_host
        self.max_prompts = max_prompts
        self._context = client_context(mode, ca_file)

    async def fetch(
        self,
        url: str | URL,
        *,
        identity: IdentityChoice = None,
        input: InputAnswer = None,
        accept_key: str | None = None,
    ) -> ClientResponse:
        """Like :meth:`open`, with the body read into :attr:`ClientResponse.body`."""
        response = await self.open(url, identity=identity, input=input, accept_key=accept_key)
        await response.read()
        return response

    async def open(
        self,
        url: str | URL,
        *,
        identity: IdentityChoice = None,
        input: InputAnswer = None,
        accept_key: str | None = None,
    ) -> ClientResponse:
        """Request ``url``, following redirects and answering input; the body is left to read.

        ``identity``: see :data:`IdentityChoice`.  A named identity is sent to
        ``url`` and to redirect targets under it, or inside its scopes; never
        elsewhere.  ``input`` answers 1x prompts: a string answers the first
        prompt of the host and port of ``url`` only (another host never gets
        it); a callback answers up to ``max_prompts`` prompts, from any host
        (it is given the URL, to show who asks).  ``accept_key`` accepts (and
        pins) a changed server key for the host and port of ``url`` only, if
        it is exactly this fingerprint.  Raises
        :class:`~hospes.client.errors.ClientError`.
        """
        current = request_url(url)
        origin = (current.host, current.effective_port)
        named = self._named_identity(identity)
        granted = Scope.of(current) if named is not None else None
        redirects: list[Redirect] = []
        hops: list[Hop] = []
        visited = {str(current)}
        text_sent = False
        prompts = 0
        withheld: Identity | None = None
        while True:
            chosen: Identity | None
            if named is not None:
                inside = named.match(current) is not None or (
                    granted is not None and granted.contains(current)
                )
                chosen, withheld = (named, None) if inside else (None, named)
            elif identity is False:
                chosen = None
            else:
                chosen = await asyncio.to_thread(self.identities.for_url, current)
            here = (current.host, current.effective_port)
            response = await self._exchange(current, chosen, accept_key if here == origin else None)
            response.redirects = tuple(redirects)
            response.hops = tuple(hops)
            response.withheld = withheld
            status = response.status
            hop = Hop(current, status, response.meta, response.trust, chosen)
            if 10 <= status <= 19:
                answer: str | None = None
                if isinstance(input, str):
                    if here != origin:
                        response.unanswered = (
                            f"the input given is only sent to {format_address(*origin)}, "
                            f"the host of the URL typed, not to {format_address(*here)}"
                        )
                    elif text_sent:
                        response.unanswered = "the server asked again after the input given"
                    else:
                        text_sent, answer = True, input
                elif input is not None:
                    if prompts >= self.max_prompts:
                        response.unanswered = (
                            f"the server asked again after {prompts} answers: giving up"
                        )
                    else:
                        prompts += 1
                        answer = await _answer(input, response.meta, status == 11, current)
                if answer is None:
                    return response
                hops.append(hop)
                current = _with_input(current, answer)
                continue
            if 30 <= status <= 39:
                target, stopped = self._redirect_target(current, response.meta, redirects, visited)
                if stopped is not None:
                    response.stopped = stopped
                    return response
                assert target is not None
                cross = (target.host, target.effective_port) != here
                redirects.append(Redirect(current, target, status, cross))
                hops.append(hop)
                visited.add(str(target))
                current = target
                continue
            return response

    def _named_identity(self, identity: IdentityChoice) -> Identity | None:
        if isinstance(identity, Identity):
            return identity
        if isinstance(identity, str):
            return self.identities.get(identity)
        return None

    def _redirect_target(
        self, current: URL, meta: str, redirects: list[Redirect], visited: set[str]
    ) -> tuple[URL | None, str | None]:
        """The URL to follow, or why not."""
        try:
            target = current.join(meta.strip())
        except URLError as exc:
            return None, f"the redirect target is not a valid URL ({exc})"
        if target.scheme != "gemini":
            return None, f"the redirect goes to a {target.scheme}: URL, which is not followed"
        try:
            target = request_url(target)
        except InvalidRequest as exc:
            return None, f"the redirect target cannot be requested ({exc})"
        if len(redirects) >= self.max_redirects:
            return None, f"more than {self.max_redirects} redirects"
        if str(target) in visited:
            return None, "the redirects form a loop"
        cross = (target.host, target.effective_port) != (current.host, current.effective_port)
        if cross and not self.follow_cross_host:
            where = format_address(target.host, target.effective_port)
            return None, f"the redirect goes to another host ({where})"
        return target, None

    async def _exchange(
        self, url: URL, identity: Identity | None, accept_key: str | None
    ) -> ClientResponse:
        """One request on one connection, up to the end of the header."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        stream, trust = await self._connect(url, identity, accept_key, deadline)
        try:
            await stream.send_all(str(url).encode("utf-8") + b"\r\n", deadline)
            status, meta, rest = await _read_header(stream, deadline)
        except BaseException:
            stream.close()
            raise
        return ClientResponse(
            url,
            status=status,
            meta=meta,
            trust=trust,
            identity=identity,
            stream=stream,
            first=rest,
            timeout=self.timeout,
        )

    async def _connect(
        self, url: URL, identity: Identity | None, accept_key: str | None, deadline: float
    ) -> tuple[TLSStream, Trust]:
        """Open a TLS connection to the URL's host and judge its key: nothing is sent yet.

        The pin is checked inside the handshake (a changed key ends it before
        the identity or the request leaves), then the verdict is recorded.
        Fetches and uploads share this one path, so they trust alike.
        """
        host, port = url.host, url.effective_port
        pinned = None
        if self.mode is TrustMode.TOFU:
            pinned = await asyncio.to_thread(self.known_hosts.get, host, port)
        check = PeerCheck(
            host,
            port,
            self.mode,
            pinned=pinned,
            accept_key=accept_key,
            verify_hostname=self.verify_hostname,
        )
        credentials = None
        if identity is not None:
            credentials = await asyncio.to_thread(identity.credentials)
        stream = await TLSStream.open(
            host, port, self._context, check, identity=credentials, deadline=deadline
        )
        try:
            seen = check.seen
            if seen is None:  # pragma: no cover - OpenSSL always verifies a server certificate
                raise TLSFailure(f"{format_address(host, port)} presented no certificate")
            previous: KnownHost | None = None
            verdict = Verdict.CA_VERIFIED
            if self.mode is TrustMode.TOFU:
                verdict, previous = await asyncio.to_thread(
                    self.known_hosts.record, host, port, seen, accept_key=accept_key
                )
        except BaseException:
            stream.close()
            raise
        trust = Trust(
            verdict=verdict,
            certificate=seen,
            previous=previous,
            hostname_matches=bool(check.hostname_matches),
            validity_problem=check.validity_problem(),
        )
        return stream, trust

    async def probe(self, host: str, port: int) -> ServerCertificate:
        """Handshake with ``host:port`` and return its certificate; nothing is sent or recorded."""
        loop = asyncio.get_running_loop()
        check = PeerCheck(host, port, TrustMode.OBSERVE)
        context = client_context(TrustMode.OBSERVE)
        stream = await TLSStream.open(
            host, port, context, check, identity=None, deadline=loop.time() + self.timeout
        )
        stream.close()
        if check.seen is None:  # pragma: no cover - OpenSSL always verifies a server certificate
            raise TLSFailure(f"{format_address(host, port)} presented no certificate")
        return check.seen


async def _read_header(stream: TLSStream, deadline: float) -> tuple[int, str, bytes]:
    reader = HeaderReader()
    received = 0
    while True:
        data = await stream.recv(deadline, "the response header")
        if not data:
            if received == 0:
                raise MalformedResponse("the server closed the connection without a response")
            raise MalformedResponse(
                f"the server closed the connection in the middle of the header "
                f"({received} bytes, no CRLF)"
            )
        received += len(data)
        try:
            complete = reader.feed(data)
        except ResponseHeaderError as exc:
            raise MalformedResponse(f"malformed response header: {exc}") from None
        if complete is not None:
            header, rest = complete
            try:
                status, meta = parse_header(header)
            except ResponseHeaderError as exc:
                raise MalformedResponse(f"malformed response header: {exc}") from None
            return status, meta, rest


async def _answer(input: InputAnswer, prompt: str, sensitive: bool, url: URL) -> str | None:
    if input is None or isinstance(input, str):
        return input
    result = input(prompt, sensitive, url)
    if inspect.isawaitable(result):
        result = await result
    return result


def _with_input(url: URL, answer: str) -> URL:
    """``url`` with ``answer`` as its (percent-encoded) query."""
    target = url.with_path(url.path, quote(answer, safe=""))
    size = len(str(target).encode("utf-8"))
    if size > MAX_URL_BYTES:
        raise InvalidRequest(
            f"the answer is too long: the request would be {size} bytes, "
            f"the limit is {MAX_URL_BYTES}"
        )
    return target
