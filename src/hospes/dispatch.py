"""From a request line and a client certificate to a response: the server's pipeline.

validate (59/53) → canonical path (31) → identity (cached parse) → account →
access rule (60/61/62) → handler.  This layer knows no sockets and no TLS
library: the server hands it bytes and the certificate's DER, and gets back an
:class:`Outcome` to send and to log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass

from .access import AccessPolicy, Requirement, check
from .fingerprint import fingerprint
from .identity import CertificateError, ClientIdentity, IdentityCache
from .protocol import GeminiError, Status, check_target, decode_path, parse_request
from .request import Request
from .response import Response
from .routing import Handler, call_handler
from .sanitize import printable
from .store import Store, StoreError
from .url import URL, normalize_path, quote_path

__all__ = ["Dispatcher", "Outcome"]

log = logging.getLogger("hospes.app")

INTERNAL_ERROR = "internal server error; the capsule's admin can find the details in the log"
STORE_UNAVAILABLE = "the identity store is unavailable; try again in a minute"


@dataclass(slots=True)
class Outcome:
    """A response with what the access log says about the request."""

    response: Response
    target: str
    """The requested URL (escaped when the request was not valid)."""
    fingerprint: str | None
    """The client certificate's fingerprint, valid or not, or None."""
    request: Request | None = None


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
    ) -> None:
        self.handler = handler
        self.hostnames = frozenset(hostnames)
        self.ports = frozenset(ports)
        self.policy = policy or AccessPolicy()
        self.store = store
        self.clock_skew = clock_skew
        self.identities = identities or IdentityCache()

    async def respond(
        self, line: bytes, certificate: bytes | None, remote_address: str, remote_port: int
    ) -> Outcome:
        """Answer one request line; never raises for anything the client or handler did."""
        presented = None if certificate is None else fingerprint(certificate)
        try:
            url = parse_request(line)
            check_target(url, self.hostnames, self.ports)
            path = decode_path(url)
            canonical = normalize_path(path)
            query = _decoded_query(url)
        except GeminiError as exc:
            target = printable(line.decode("utf-8", "replace"), 1024)
            return Outcome(Response(exc.status, exc.meta), target, presented)
        if canonical != path:
            redirect = str(url.with_path(quote_path(canonical), url.query))
            return Outcome(Response.redirect(redirect, permanent=True), str(url), presented)
        identity, problem = self._identify(certificate)
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
        )
        outcome = Outcome(
            Response(Status.TEMPORARY_FAILURE, INTERNAL_ERROR), str(url), presented, request
        )
        try:
            outcome.response = await self._handle(request)
        except Exception:
            log.exception("handler failed for %s", printable(str(url)))
        return outcome

    def _identify(self, certificate: bytes | None) -> tuple[ClientIdentity | None, str | None]:
        if certificate is None:
            return None, None
        try:
            identity = self.identities.get(certificate)
        except CertificateError as exc:
            return None, str(exc)
        problem = identity.problem(dt.datetime.now(dt.UTC), self.clock_skew)
        return (identity, None) if problem is None else (None, problem)

    async def _handle(self, request: Request) -> Response:
        now = dt.datetime.now(dt.UTC)
        rule = self.policy.rule_for(request.path) if self.policy else None
        if self.store is not None and request.identity is not None:
            try:
                request.account = await self.store.recognise(request.identity, now)
            except StoreError as exc:
                # Public pages stay up when the store is unavailable; pages that need it wait.
                log.error("identity store unavailable: %s", exc)
                if rule is not None and rule.require is not Requirement.CERTIFICATE:
                    return Response(Status.TEMPORARY_FAILURE, STORE_UNAVAILABLE)
        if rule is not None:
            denied = await check(rule, request, now)
            if denied is not None:
                return denied
        return await call_handler(self.handler, request)


def _decoded_query(url: URL) -> str | None:
    try:
        return url.decoded_query()
    except ValueError as exc:
        raise GeminiError(Status.BAD_REQUEST, f"query: {exc}") from None
