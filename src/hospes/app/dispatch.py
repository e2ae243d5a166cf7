"""From a request line and a client certificate to a response: the server's pipeline.

validate (59/53) → canonical path (31) → identity (cached parse) → rate
limits (44) → redirect table (30/31/52) → account → access rule (60/61/62) →
handler.  This layer knows no sockets and no TLS library: the server hands it
bytes, the certificate's DER and the remote address's group, and gets back an
:class:`Outcome` to send and to log.
Rate limits come before the store and the handler, so a flood costs neither;
malformed requests and redirects are counted too (under the rule for ``/``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Collection, Hashable
from dataclasses import dataclass

from ..gemini.escape import printable
from ..gemini.fingerprint import fingerprint
from ..gemini.identity import CertificateError, ClientIdentity, IdentityCache
from ..gemini.protocol import (
    GeminiError,
    Status,
    TitanRequest,
    check_target,
    decode_path,
    parse_request,
    parse_titan,
)
from ..gemini.url import URL, normalize_path, quote_path
from ..policy.clock import Clock
from ..policy.ratelimit import RateLimiter, RateLimits
from ..store import REFUSALS, Store, StoreError
from .access import STORE_UNAVAILABLE, AccessPolicy, AccessRule, Requirement, check
from .redirects import Redirects
from .request import Request
from .response import Response
from .routing import Handler, call_handler
from .upload import Channel, Upload

__all__ = ["Dispatcher", "Outcome"]

log = logging.getLogger("hospes.app")

INTERNAL_ERROR = "internal server error; the capsule's admin can find the details in the log"
STORE_RETRY = 2.0
"""Seconds after the store failed to recognise a visitor during which requests whose access
rule does not need the account are not made to wait for its timeout again: the account is
left unknown (a route that requires one answers 40, others are served without it)."""
_INTERNAL_ERROR = Response(Status.TEMPORARY_FAILURE, INTERNAL_ERROR)
"""What a request gets when its handler fails (responses are immutable: one serves all)."""
_PARSED_KEPT = 512
"""Request lines whose parsing :class:`Dispatcher` keeps (see :meth:`Dispatcher._remember`)."""
_PARSED_LINE_BYTES = 256
"""The longest request line kept: with every part of it up to 4 bytes per character once
decoded, the kept lines take at most about 2 MB."""
_Parsed = tuple[URL, str, str, str | None, str]
"""A valid request line's URL, decoded path, canonical path, decoded query and URL as text."""


@dataclass(slots=True)
class Outcome:
    """A response with what the access log says about the request."""

    response: Response
    target: str
    """The requested URL; the request line as received when it was not valid (unescaped)."""
    fingerprint: str | None
    """The client certificate's fingerprint, valid or not, or None."""
    slowed: float = 0.0
    """The wait told in a 44 of the rate limits (0.0 when they granted the request)."""


class Dispatcher:
    """Answers requests for one set of hostnames and ports with one handler."""

    def __init__(
        self,
        handler: Handler,
        *,
        hostnames: Collection[str],
        ports: Collection[int],
        policy: AccessPolicy | None = None,
        store: Store | None = None,
        clock_skew: dt.timedelta = dt.timedelta(minutes=5),
        identities: IdentityCache | None = None,
        rate_limits: RateLimits | None = None,
        clock: Clock = time.monotonic,
        redirects: Redirects | None = None,
    ) -> None:
        self.handler = handler
        self.hostnames = frozenset(hostnames)
        self.ports = frozenset(ports)
        self.policy = policy or AccessPolicy()
        self.store = store
        self.clock_skew = clock_skew
        self.identities = identities or IdentityCache()
        self.rate_limits = rate_limits
        self.resolve_accounts: bool = getattr(handler, "uses_accounts", True)
        """Whether handlers may read ``request.account`` (a static capsule does not)."""
        self.accepts_uploads: bool = getattr(handler, "accepts_uploads", False)
        """Whether Titan requests are read (else they get 53, as any other scheme)."""
        self.clock = clock
        """Monotonic seconds, for throttling the log (rate limits have their own clock)."""
        self._store_error_at = -math.inf
        self._store_down_until = -math.inf
        self._authoriser = self._authorise if self.policy else None
        self.redirects = redirects if redirects else None
        """The redirect table, applied before access rules (None when empty)."""
        self._parsed: dict[bytes, _Parsed] = {}
        """The last valid Gemini request lines, parsed (see :meth:`_remember`)."""

    async def respond(
        self,
        line: bytes,
        certificate: bytes | None,
        remote_address: str,
        remote_port: int,
        *,
        address_key: Hashable | None = None,
        server_name: str | None = None,
        channel: Channel | None = None,
    ) -> Outcome:
        """Answer one request line; never raises for anything the client or handler did.

        ``address_key`` is the remote address's group for the rate limits
        (:func:`hospes.policy.addresses.group`); None for a trusted address, which is
        not rate-limited.  ``server_name`` is the host the client named in the
        TLS handshake (SNI, normalised), None when it named none: a request for
        another host is refused (53).  ``channel`` is the connection: its TLS
        facts, and a Titan upload's body, read only if a handler asks for it.
        """
        titan: TitanRequest | None = None
        parsed = self._parsed.get(line)
        try:
            if parsed is not None:
                url, path, canonical, query, target = parsed
                # The one check that depends on more than the line: the connection's SNI.
                check_target(url, self.hostnames, self.ports, server_name)
            else:
                url = parse_request(line, titan=self.accepts_uploads)
                if url.scheme == "titan":
                    titan = parse_titan(url)
                    url = titan.url
                check_target(url, self.hostnames, self.ports, server_name)
                path = decode_path(url)
                canonical = normalize_path(path)
                query = _decoded_query(url)
                if titan is not None and canonical != path:
                    # No redirect: a client does not send a body again to where a 3x points.
                    raise GeminiError(
                        Status.BAD_REQUEST, f"upload to the canonical path {quote_path(canonical)}"
                    )
                target = str(url)
                if titan is None and len(line) <= _PARSED_LINE_BYTES:
                    self._remember(line, (url, path, canonical, query, target))
        except GeminiError as exc:
            # Unescaped: the access log escapes what it writes (and only it knows how).
            received = line.decode("utf-8", "replace")
            return self.reject(exc, received, certificate, address_key=address_key)
        identity, problem, presented = self._identify(certificate)
        if canonical != path:
            redirect = str(url.with_path(quote_path(canonical), url.query))
            outcome = Outcome(Response.redirect(redirect, permanent=True), target, presented)
            self._limit(outcome, canonical, address_key, certificate)
            return outcome
        request = Request(
            url=url,
            path=path,
            query=query,
            hostname=url.host,
            remote_address=remote_address,
            remote_port=remote_port,
            identity=identity,
            certificate_problem=problem,
            store=self.store,
            address_group=address_key,
            authoriser=self._authoriser,
            channel=channel,
        )
        if titan is not None:
            request.upload = Upload(titan.size, titan.mime, titan.token, channel)
            target = f"{target};size={titan.size}"
        outcome = Outcome(_INTERNAL_ERROR, target, presented)
        if self._limit(outcome, canonical, address_key, certificate):
            return outcome
        try:
            outcome.response = await self._handle(request)
        except StoreError as exc:
            if isinstance(exc, REFUSALS):  # a page that forgot to answer it: a bug
                log.exception("handler failed for %s", printable(str(url)))
                return outcome
            # The store cannot be used (a full disk, a lost database): the visitor is told
            # to come back, the operator once a minute, not a traceback per request on a
            # disk that may be the log's too.
            self._store_failed(exc)
            outcome.response = Response(Status.TEMPORARY_FAILURE, STORE_UNAVAILABLE)
        except Exception:
            log.exception("handler failed for %s", printable(str(url)))
        return outcome

    def _remember(self, line: bytes, parsed: _Parsed) -> None:
        """Keep what a valid request line parsed to: the next request for it skips the parsing.

        Parsing, validating and normalising a URL is a pure function of the
        line (the host check against the connection's SNI is not, and runs for
        every request), and a capsule's requests mostly ask for a few URLs:
        this saves the largest part of the dispatcher's work per request.  Only
        lines that passed every check are kept, so a bad one is refused with the
        same answer every time; at most :data:`_PARSED_KEPT` lines of up to
        :data:`_PARSED_LINE_BYTES`, the oldest dropped first (a client sending
        new URLs only costs an insertion).
        """
        kept = self._parsed
        if len(kept) >= _PARSED_KEPT:
            del kept[next(iter(kept))]
        kept[line] = parsed

    def reject(
        self,
        error: GeminiError,
        target: str,
        certificate: bytes | None,
        *,
        address_key: Hashable | None = None,
    ) -> Outcome:
        """The outcome of a request that cannot be read or parsed (59, 53), rate limits applied.

        Malformed requests count under the rule for ``/``, so a flood of them
        ends in 44 (and a block) like any other.
        """
        outcome = Outcome(
            Response.from_error(error),
            target,
            None if certificate is None else fingerprint(certificate),
        )
        self._limit(outcome, "/", address_key, certificate)
        return outcome

    def _limit(
        self, outcome: Outcome, path: str, address_key: Hashable | None, certificate: bytes | None
    ) -> bool:
        """Apply the rate limits; a refused request's outcome becomes ``44 <seconds>``."""
        if self.rate_limits is None or address_key is None:
            return False
        wait = self.rate_limits.take(path, address_key, self._client_key(certificate))
        if wait == 0.0:
            return False
        outcome.response = Response.slow_down(RateLimiter.seconds(wait))
        outcome.slowed = wait
        return True

    def _client_key(self, certificate: bytes | None) -> str | None:
        """The key a client is rate-limited by (None without a certificate).

        Its public key's fingerprint, which survives renewals, or the
        certificate's own fingerprint when the certificate does not parse.
        """
        if certificate is None:
            return None
        try:
            return self.identities.get(certificate).key_fingerprint
        except CertificateError:
            return fingerprint(certificate)

    def _identify(
        self, certificate: bytes | None
    ) -> tuple[ClientIdentity | None, str | None, str | None]:
        """The valid identity, or why the certificate is not valid; and its fingerprint."""
        if certificate is None:
            return None, None, None
        try:
            identity = self.identities.get(certificate)
        except CertificateError as exc:
            return None, str(exc), fingerprint(certificate)
        problem = identity.problem(dt.datetime.now(dt.UTC), self.clock_skew)
        if problem is not None:
            return None, problem, identity.fingerprint
        return identity, None, identity.fingerprint

    def _store_failed(self, error: StoreError) -> None:
        """Log a store failure, once a minute at most: an outage must not flood the log."""
        now = self.clock()
        if now - self._store_error_at >= 60:
            self._store_error_at = now
            log.error("identity store unavailable: %s", error)

    async def _handle(self, request: Request) -> Response:
        if self.redirects is not None:
            moved = self.redirects.response(request.hostname, request.path, request.url.query)
            if moved is not None:
                return moved
        rule = self.policy.rule_for(request.path, request.hostname) if self.policy else None
        needs_account = self.resolve_accounts or (
            rule is not None and rule.require is not Requirement.CERTIFICATE
        )
        if not needs_account and rule is None:
            return await call_handler(self.handler, request)  # a public page of a static capsule
        now = dt.datetime.now(dt.UTC)
        if needs_account:
            unavailable = await self._recognise(request, rule, now)
            if unavailable is not None:
                return unavailable
        if rule is not None:
            denied = await check(rule, request, now)
            if denied is not None:
                return denied
        return await call_handler(self.handler, request)

    async def _recognise(
        self, request: Request, rule: AccessRule | None, now: dt.datetime
    ) -> Response | None:
        """Look up ``request.account``; a 40 if the store fails and ``rule`` needs it."""
        if self.store is None or request.identity is None:
            return None
        needed = rule is not None and rule.require is not Requirement.CERTIFICATE
        if not needed and self.clock() < self._store_down_until:
            # The store just failed: a page that can do without the account does, at once;
            # pages that need it keep asking, and find out first when it is back.
            request.account_unknown = True
            return None
        try:
            request.account = await self.store.recognise(request.identity, now)
            self._store_down_until = -math.inf
        except StoreError as exc:
            # Public pages stay up when the store is unavailable; pages that need it wait.
            self._store_failed(exc)
            self._store_down_until = self.clock() + STORE_RETRY
            request.account_unknown = True
            if needed:
                return Response(Status.TEMPORARY_FAILURE, STORE_UNAVAILABLE)
        return None

    async def _authorise(self, request: Request, path: str) -> Response | None:
        """The access decision for ``path`` on behalf of ``request`` (:attr:`Request.authoriser`).

        A handler asks it for where a resource really is (a file behind a
        symlink); the rule of the requested path was applied already, so only
        another rule is checked.
        """
        rule = self.policy.rule_for(path, request.hostname)
        if rule is None or rule is self.policy.rule_for(request.path, request.hostname):
            return None
        now = dt.datetime.now(dt.UTC)
        if rule.require is not Requirement.CERTIFICATE and request.account is None:
            unavailable = await self._recognise(request, rule, now)
            if unavailable is not None:
                return unavailable
        return await check(rule, request, now)


def _decoded_query(url: URL) -> str | None:
    try:
        return url.decoded_query()
    except ValueError as exc:
        raise GeminiError(Status.BAD_REQUEST, f"query: {exc}") from None
