"""The hospes client: fetch Gemini URLs with TOFU-pinned server keys and scoped identities.

>>> import asyncio
>>> from hospes.client import Client
>>> async def main() -> None:                               # doctest: +SKIP
...     response = await Client().fetch("gemini://example.org/")
...     print(response.status, response.meta, response.trust.verdict)
>>> asyncio.run(main())                                     # doctest: +SKIP

Plain scripts use :mod:`hospes.client.sync`.  Errors are
:class:`~hospes.client.errors.ClientError` subclasses, one per thing a user
can act on; :class:`KeyChanged` means the server showed a key other than the
pinned one and nothing was sent.
"""

from __future__ import annotations

from .certificate import ServerCertificate
from .errors import (
    CertificateUntrusted,
    ClientError,
    ClientFileError,
    ConnectError,
    FetchTimeout,
    InvalidRequest,
    KeyChanged,
    MalformedResponse,
    TLSFailure,
)
from .fetch import (
    DEFAULT_MAX_PROMPTS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_TIMEOUT,
    Client,
    ClientResponse,
    Hop,
    Redirect,
    Trust,
    request_url,
    typed_url,
)
from .identities import (
    Identity,
    IdentityError,
    IdentityStore,
    Renewal,
    Scope,
    load_identity_files,
)
from .known_hosts import KnownHost, KnownHosts, Verdict
from .paths import client_data_dir
from .sync import SyncClient, fetch
from .tls import TrustMode

__all__ = [
    "DEFAULT_MAX_PROMPTS",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TIMEOUT",
    "CertificateUntrusted",
    "Client",
    "ClientError",
    "ClientFileError",
    "ClientResponse",
    "ConnectError",
    "FetchTimeout",
    "Hop",
    "Identity",
    "IdentityError",
    "IdentityStore",
    "InvalidRequest",
    "KeyChanged",
    "KnownHost",
    "KnownHosts",
    "MalformedResponse",
    "Redirect",
    "Renewal",
    "Scope",
    "ServerCertificate",
    "SyncClient",
    "TLSFailure",
    "Trust",
    "TrustMode",
    "Verdict",
    "client_data_dir",
    "fetch",
    "load_identity_files",
    "request_url",
    "typed_url",
]
