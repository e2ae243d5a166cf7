"""Server-side TLS with pyOpenSSL: contexts that ask every client for a certificate and accept any.

The standard library's ``ssl`` module cannot accept an unknown self-signed
client certificate (its verification cannot be overridden), which is the
whole point of Gemini identities; pyOpenSSL lets a verification callback
accept every certificate of the chain.  hospes then judges the certificate
itself (see :mod:`hospes.gemini.identity`) and answers 62 instead of failing the
handshake, so the client learns *why*.

One :class:`OpenSSL.SSL.Context` is built per hostname at start-up (or
reload) and shared by every connection; SNI switches between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from ..gemini.fingerprint import fingerprint
from ..gemini.identity import key_fingerprint

__all__ = [
    "ServerContexts",
    "TLSError",
    "load_server_context",
    "peer_certificate_der",
    "server_name",
]

# TLS 1.2 suites: forward secret AEAD only.  "@SECLEVEL=0" does not weaken what
# the server offers (the list does that); it stops OpenSSL from rejecting a
# *client's* small RSA key during the handshake, so hospes can answer 62 instead.
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!SHA1:@SECLEVEL=0"
_SESSION_ID_CONTEXT = b"hospes"


class TLSError(ValueError):
    """A certificate or key that cannot be used to serve TLS; the message says why."""


def _accept_any(
    connection: SSL.Connection, certificate: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """Accept every certificate of the client's chain: under TOFU nobody signs them."""
    return True


@dataclass(frozen=True, slots=True)
class HostCertificate:
    """A loaded certificate with what the operator needs to see of it."""

    context: SSL.Context
    certificate: x509.Certificate
    fingerprint: str
    key_fingerprint: str


def load_server_context(cert_path: Path, key_path: Path) -> HostCertificate:
    """Build the TLS context serving ``cert_path`` (PEM, chain allowed) with ``key_path``.

    Raises :class:`TLSError` naming the file and the problem when the files are
    missing, unreadable, malformed, or do not match each other.
    """
    try:
        pem = cert_path.read_bytes()
    except OSError as exc:
        raise TLSError(f"cannot read certificate {cert_path}: {exc.strerror}") from None
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise TLSError(f"{cert_path} does not contain a PEM certificate") from None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(SSL.TLS1_3_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.set_cipher_list(_TLS12_CIPHERS)
    try:
        context.use_certificate_chain_file(str(cert_path))
    except SSL.Error:
        raise TLSError(f"{cert_path} does not contain a usable certificate chain") from None
    try:
        context.use_privatekey_file(str(key_path))
    except OSError as exc:
        raise TLSError(f"cannot read private key {key_path}: {exc.strerror}") from None
    except SSL.Error:
        raise TLSError(f"{key_path} does not contain an unencrypted PEM private key") from None
    try:
        context.check_privatekey()
    except SSL.Error:
        raise TLSError(f"{key_path} is not the private key of {cert_path}") from None
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _accept_any)
    context.set_session_id(_SESSION_ID_CONTEXT)
    return HostCertificate(
        context=context,
        certificate=certificate,
        fingerprint=fingerprint(certificate.public_bytes(serialization.Encoding.DER)),
        key_fingerprint=key_fingerprint(certificate.public_key()),
    )


class ServerContexts:
    """The TLS contexts of a server, one per hostname, chosen by SNI.

    Clients that send no SNI, or a name without a certificate of its own, get
    the default (first) hostname's certificate; the request's host is checked
    later, by the protocol layer (53).
    """

    def __init__(self, certificates: Mapping[str, HostCertificate]) -> None:
        if not certificates:
            raise ValueError("a server needs at least one certificate")
        self._by_name = {name: entry.context for name, entry in certificates.items()}
        self.default = next(iter(certificates.values())).context
        distinct = {id(context) for context in self._by_name.values()}
        if len(distinct) > 1:
            for context in self._by_name.values():
                context.set_tlsext_servername_callback(self._on_server_name)

    def _on_server_name(self, connection: SSL.Connection) -> None:
        name = server_name(connection)
        if name is None:
            return
        context = self._by_name.get(name)
        if context is not None and context is not connection.get_context():
            connection.set_context(context)

    def connection(self, sock: object) -> SSL.Connection:
        """A server-side TLS connection over a connected, non-blocking socket."""
        connection = SSL.Connection(self.default, sock)  # type: ignore[arg-type]
        connection.set_accept_state()
        return connection


def server_name(connection: SSL.Connection) -> str | None:
    """The host name the client sent in SNI, normalised as request hosts are; None without SNI.

    Lower case, without a trailing dot; a name that is not ASCII (never a
    valid SNI name) keeps replacement characters, so it matches no host.
    """
    name = connection.get_servername()
    if name is None:
        return None
    return name.decode("ascii", "replace").lower().rstrip(".")


def peer_certificate_der(connection: SSL.Connection) -> bytes | None:
    """The DER bytes of the client's certificate, or None when it sent none."""
    certificate = connection.get_peer_certificate()
    if certificate is None:
        return None
    return crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate)
