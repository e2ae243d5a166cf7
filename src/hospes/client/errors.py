"""What can go wrong when fetching a Gemini URL, one exception class per thing a user can act on.

Every error says what happened in a sentence a person can read; the command
line maps each class to its own exit status (see :mod:`hospes.cli.get`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .certificate import ServerCertificate
    from .known_hosts import KnownHost

__all__ = [
    "CertificateUntrusted",
    "ClientError",
    "ClientFileError",
    "ConnectError",
    "FetchTimeout",
    "InvalidRequest",
    "KeyChanged",
    "MalformedResponse",
    "TLSFailure",
]


class ClientError(Exception):
    """Base class of every error the client reports instead of a response."""


class InvalidRequest(ClientError):
    """The URL (or the input to send) cannot be requested: not gemini:, too long, no host."""


class ClientFileError(ClientError):
    """A file of the client (known hosts, identities) cannot be read or written."""


class ConnectError(ClientError):
    """No TCP connection: the name does not resolve, the port is closed, the host unreachable."""


class FetchTimeout(ClientError):
    """The server did not answer in time (connection, handshake, header or body)."""


class TLSFailure(ClientError):
    """The TLS handshake or the TLS stream failed for a reason other than trust."""


class CertificateUntrusted(ClientError):
    """The server's certificate failed a check the user asked for (CA validation, hostname)."""


class MalformedResponse(ClientError):
    """The server sent something that is not a Gemini response, or closed before the header."""


class KeyChanged(ClientError):
    """The server presented another key than the pinned one: the handshake was aborted.

    Nothing was sent: not the request, not a client certificate.  ``pinned`` is
    what the known-hosts store had, ``presented`` what the server showed.
    """

    def __init__(
        self, host: str, port: int, pinned: KnownHost, presented: ServerCertificate
    ) -> None:
        self.host = host
        self.port = port
        self.pinned = pinned
        self.presented = presented
        super().__init__(
            f"the key of {pinned.address} changed from {pinned.key_fingerprint} "
            f"to {presented.key_fingerprint}; nothing was sent"
        )
