"""Server-side TLS with pyOpenSSL: contexts that ask every client for a certificate and accept any.

The standard library's ``ssl`` module cannot accept an unknown self-signed
client certificate (its verification cannot be overridden), which is the
whole point of Gemini identities; pyOpenSSL lets a verification callback
accept every certificate of the chain.  hospes then judges the certificate
itself (see :mod:`hospes.gemini.identity`) and answers 62 instead of failing the
handshake, so the client learns *why*.

One :class:`OpenSSL.SSL.Context` is built per hostname at start-up (or
reload) and shared by every connection; SNI switches between them.

The TLS settings were chosen by measurement (docs/performance.md): TLS 1.3
tickets are stateful (``OP_NO_TICKET``: a ticket is a session id into the
server's cache instead of the whole session, client certificate included,
serialized and encrypted twice per handshake), which costs 15 % fewer
instructions per full handshake with a client certificate and 22 % fewer
per resumed one; and TLS 1.3 prefers AES-128-GCM with SHA-256.  The session
cache is bounded in entries (OpenSSL's 20,480) and, by :class:`SessionBudget`,
in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto

from ..gemini.fingerprint import fingerprint
from ..gemini.identity import key_fingerprint
from ..policy.clock import Clock

__all__ = [
    "SESSION_BUDGET",
    "SESSION_LIFETIME",
    "ServerContexts",
    "SessionBudget",
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
# TLS 1.3 suites, best first: all three are safe; AES-128-GCM-SHA256 is the cheapest
# here (AES-NI, and SHA-256 runs on the SHA extensions at 1.7x the speed of SHA-384).
_TLS13_CIPHERSUITES = b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

SESSION_LIFETIME = 300
"""Seconds a TLS session can be resumed (the tickets' lifetime); expired ones leave the cache."""
SESSION_BUDGET = 96 * 2**20
"""Bytes of memory the session cache may hold, by :class:`SessionBudget`'s estimate."""
# What a handshake leaves in the session cache, measured with bench/ (RSS growth over
# thousands of handshakes, docs/performance.md): 2.3 kB without a client certificate (two
# sessions), 6.4 kB with an ECDSA one of 430 bytes, 443 kB with one of 60 kB (3,000 names).
_HANDSHAKE_BYTES = 2_400
_CERTIFICATE_BYTES = 1_024
_CERTIFICATE_FACTOR = 8
"""Bytes of a parsed certificate per byte of DER (7.3 measured at 60 kB), on top of
_CERTIFICATE_BYTES."""
_HANDSHAKES_CACHED = 10_240
"""OpenSSL's cache holds 20,480 sessions (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT), two per
handshake."""


class TLSError(ValueError):
    """A certificate or key that cannot be used to serve TLS; the message says why."""


_CACHING = 1
"""Mark of a connection made on a context that stores its sessions."""
_SENT_CHAIN = 2
"""Mark of a connection whose client sent certificates (a full handshake)."""


def _accept_any(
    connection: SSL.Connection, certificate: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """Accept every certificate of the client's chain: under TOFU nobody signs them.

    OpenSSL calls this only when the client sends certificates, that is in a
    full handshake, never in a resumed one: the mark tells :class:`SessionBudget`
    that this session holds a freshly parsed certificate chain.
    """
    connection.set_app_data(connection.get_app_data() | _SENT_CHAIN)
    return True


class SessionBudget:
    """Keeps the memory of the TLS session cache within ``budget`` bytes.

    OpenSSL bounds its cache in entries only (20,480: the latest 10,240
    handshakes, two tickets each), and an entry holds the client's whole
    certificate chain: up to 100 kB of DER, several times that once parsed,
    so the chains of a hostile client would take gigabytes.  pyOpenSSL can
    neither size nor flush the cache, nor change a context once it is in use,
    so this estimates what each handshake stores (two sessions, plus the chain
    when the client sent one), sums it over the handshakes the cache can still
    hold (the latest 10,240 of the sessions' lifetime), and, while the sum is
    over budget, has new connections made on a twin context that stores
    nothing: those clients get full handshakes, slower but correct.  Storing
    resumes once the sum is below half the budget.
    """

    __slots__ = ("_clock", "_lifetime", "_recent", "_total", "budget", "storing")

    def __init__(self, budget: int, lifetime: float, clock: Clock = time.monotonic) -> None:
        self.budget = budget
        self._lifetime = lifetime
        self._clock = clock
        self._recent: deque[tuple[float, int]] = deque()
        """(time, estimated bytes) of the handshakes whose sessions may be cached."""
        self._total = 0
        self.storing = True
        """Whether new connections go on the context that stores sessions."""

    @property
    def estimate(self) -> int:
        """Bytes the cache is estimated to hold."""
        return self._total

    def handshake(self, connection: SSL.Connection, certificate: bytes | None) -> None:
        """Count what ``connection``'s handshake stored; ``certificate`` is its client's DER."""
        now = self._clock()
        recent = self._recent
        expired = now - self._lifetime
        while recent and recent[0][0] <= expired:
            self._total -= recent.popleft()[1]
        marks = connection.get_app_data()
        if marks & _CACHING:
            size = _HANDSHAKE_BYTES
            if certificate is not None and marks & _SENT_CHAIN:
                size += _CERTIFICATE_BYTES + _CERTIFICATE_FACTOR * len(certificate)
                for extra in connection.get_peer_cert_chain() or ():
                    der = crypto.dump_certificate(crypto.FILETYPE_ASN1, extra)
                    size += _CERTIFICATE_BYTES + _CERTIFICATE_FACTOR * len(der)
            recent.append((now, size))
            self._total += size
            if len(recent) > _HANDSHAKES_CACHED:  # OpenSSL evicted the oldest
                self._total -= recent.popleft()[1]
        self.storing = self._total <= (self.budget if self.storing else self.budget // 2)


@dataclass(frozen=True, slots=True)
class HostCertificate:
    """A loaded certificate with what the operator needs to see of it."""

    context: SSL.Context
    certificate: x509.Certificate
    fingerprint: str
    key_fingerprint: str
    uncached: SSL.Context
    """A twin of ``context`` that stores no sessions (see :class:`SessionBudget`)."""


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
    context = _context(cert_path, key_path)
    uncached = _context(cert_path, key_path)
    uncached.set_session_cache_mode(SSL.SESS_CACHE_SERVER | SSL.SESS_CACHE_NO_INTERNAL_STORE)
    return HostCertificate(
        context=context,
        certificate=certificate,
        fingerprint=fingerprint(certificate.public_bytes(serialization.Encoding.DER)),
        key_fingerprint=key_fingerprint(certificate.public_key()),
        uncached=uncached,
    )


def _context(cert_path: Path, key_path: Path) -> SSL.Context:
    """A server context with hospes' TLS settings for this certificate and key."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(SSL.TLS1_3_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_TICKET)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.set_cipher_list(_TLS12_CIPHERS)
    context.set_tls13_ciphersuites(_TLS13_CIPHERSUITES)
    try:
        context.use_certificate_chain_file(str(cert_path))
    except SSL.Error:
        raise TLSError(f"{cert_path} does not contain a usable certificate chain") from None
    try:
        # OpenSSL compares the key with the certificate here (and again in check_privatekey).
        context.use_privatekey(_load_private_key(key_path))
        context.check_privatekey()
    except SSL.Error:
        raise TLSError(
            f"{key_path} is not the private key of {cert_path} (their public keys differ: "
            "was one of them replaced?)"
        ) from None
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _accept_any)
    context.set_session_id(_SESSION_ID_CONTEXT)
    context.set_timeout(SESSION_LIFETIME)
    return context


_USABLE_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)
_UsableKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)


def _load_private_key(key_path: Path) -> _UsableKey:
    """The private key in ``key_path``; :class:`TLSError` saying why it cannot be used.

    Read here, with no password, rather than by OpenSSL: OpenSSL would ask for
    the pass phrase of an encrypted key on the terminal and wait for an answer
    nobody types (a service has no terminal; a person sees a start-up hang).
    """
    try:
        pem = key_path.read_bytes()
    except OSError as exc:
        raise TLSError(f"cannot read private key {key_path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        raise TLSError(
            f"{key_path} is encrypted (it needs a pass phrase), and a server starts unattended: "
            f"decrypt it with 'openssl pkey -in {key_path} -out KEY.pem', keep KEY.pem mode 0600, "
            "and use that"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSError(f"{key_path} does not contain a PEM private key") from None
    if not isinstance(key, _USABLE_KEYS):
        raise TLSError(f"{key_path} holds a {type(key).__name__}, which cannot sign for TLS")
    return key


class ServerContexts:
    """The TLS contexts of a server, one per hostname, chosen by SNI.

    Clients that send no SNI, or a name without a certificate of its own, get
    the default (first) hostname's certificate; the request's host is checked
    later, by the protocol layer (53).  Every connection starts on the default
    context, whose session cache holds every session (OpenSSL keeps the cache
    of the context a connection was created with, whatever SNI switches to),
    so one :class:`SessionBudget` watches it.
    """

    def __init__(
        self,
        certificates: Mapping[str, HostCertificate],
        *,
        session_budget: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """``session_budget``: bytes the session cache may hold (default :data:`SESSION_BUDGET`)."""
        if not certificates:
            raise ValueError("a server needs at least one certificate")
        self._by_name = {name: entry.context for name, entry in certificates.items()}
        first = next(iter(certificates.values()))
        self.default = first.context
        self._uncached = first.uncached
        budget = SESSION_BUDGET if session_budget is None else session_budget
        self.sessions = SessionBudget(budget, SESSION_LIFETIME, clock)
        distinct = {id(context) for context in self._by_name.values()}
        if len(distinct) > 1:
            for context in (*self._by_name.values(), self._uncached):
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
        if self.sessions.storing:
            connection = SSL.Connection(self.default, sock)  # type: ignore[arg-type]
            connection.set_app_data(_CACHING)
        else:
            connection = SSL.Connection(self._uncached, sock)  # type: ignore[arg-type]
            connection.set_app_data(0)
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
