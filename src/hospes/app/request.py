"""What a handler receives: the request URL, its decoded parts, and who is asking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..gemini.identity import ClientIdentity
from ..gemini.url import URL
from .upload import Channel, Upload

if TYPE_CHECKING:
    from ..store import Account, Store
    from .response import Response

__all__ = ["Authoriser", "Request"]

Authoriser = Callable[["Request", str], Awaitable["Response | None"]]
"""The access decision for another path of the server: the 6x to answer, or None to go on."""


@dataclass(slots=True)
class Request:
    """One Gemini request, validated.

    ``identity`` is set only for a client certificate that is valid (it parses,
    is within its dates, has a strong enough key and a good self-signature);
    when a certificate was presented but is not valid, ``identity`` is None and
    ``certificate_problem`` says why.  ``account`` is the store's account for
    the identity, when the server has a store.
    """

    url: URL
    path: str
    """The percent-decoded, canonical path (dot segments resolved), starting with ``/``."""
    query: str | None
    """The percent-decoded query (user input after a 10/11), None when the URL has none."""
    hostname: str
    remote_address: str
    remote_port: int
    identity: ClientIdentity | None = None
    certificate_problem: str | None = None
    account: Account | None = None
    account_unknown: bool = False
    """The store could not be asked for ``account`` (it is down): None means unknown, not none."""
    store: Store | None = None
    params: dict[str, str] = field(default_factory=dict)
    """Values of the route's ``{parameters}``."""
    base: str = ""
    """The prefix under which the handler was mounted (``/docs`` for a mount at ``/docs/``)."""
    address_group: Hashable | None = None
    """The remote address's group, as the rate limits count it (an IPv6 address by its
    prefix, :func:`hospes.policy.addresses.group`); None for a trusted address (a proxy),
    which is not limited by address."""
    authoriser: Authoriser | None = None
    """The server's access rules for other paths (set by the dispatcher; None: no rules)."""
    upload: Upload | None = None
    """A Titan upload's size, type, token and body (None for a Gemini request)."""
    channel: Channel | None = None
    """The connection's TLS facts, computed when asked (None outside a server)."""

    @property
    def relative_path(self) -> str:
        """The path below the handler's mount point, starting with ``/``."""
        return self.path[len(self.base) :] or "/"

    async def authorise(self, path: str) -> Response | None:
        """The 6x the server's access rules give this request for ``path``; None: allowed.

        For a handler that serves something found at another path than the one
        requested (a file behind a symlink): see :func:`hospes.app.resolve.authorise`.
        """
        if self.authoriser is None:
            return None
        return await self.authoriser(self, path)

    @property
    def tls_version(self) -> str | None:
        """The negotiated TLS version (``TLSv1.3``), or None outside a server."""
        return None if self.channel is None else self.channel.tls_version()

    @property
    def tls_cipher(self) -> tuple[str, int] | None:
        """The negotiated cipher suite and its secret bits, or None outside a server."""
        return None if self.channel is None else self.channel.tls_cipher()

    @property
    def fingerprint(self) -> str | None:
        """The valid client certificate's fingerprint, or None."""
        return None if self.identity is None else self.identity.fingerprint
