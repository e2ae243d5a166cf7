"""Client-side TLS: the server's certificate is judged *during* the handshake.

OpenSSL calls the verification callback with the server's certificate before
the client sends its own certificate or a single byte of the request.  That
is where the TOFU pin (or, in CA mode, the chain and the hostname) is
checked: a refusal aborts the handshake there, so an impostor learns neither
the request nor which identity the user would have presented.

Sessions are never resumed (a resumed session skips the certificate, and so
the check), and TLS 1.2 is the minimum.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from OpenSSL import SSL, crypto

from ..gemini.identity import MIN_RSA_BITS, describe_key
from ..selfsigned import PrivateKey
from .certificate import ServerCertificate
from .errors import CertificateUntrusted, ClientError, TLSFailure
from .hostname import match_hostname
from .known_hosts import KnownHost, Verdict, judge

__all__ = ["PeerCheck", "TrustMode", "client_context", "credentials_problem"]

# X.509 verification errors a user is likely to meet in CA mode (OpenSSL's numbers).
_VERIFY_ERRORS = {
    2: "the issuer certificate could not be found",
    7: "the certificate signature is invalid",
    9: "the certificate is not yet valid",
    10: "the certificate has expired",
    18: "the certificate is self-signed",
    19: "a self-signed certificate is in the chain",
    20: "the issuer is not a trusted certificate authority",
    21: "the certificate cannot be verified (incomplete chain?)",
    24: "an issuer is not a certificate authority",
    26: "the certificate is not for a server",
}


class TrustMode(Enum):
    """How a server certificate is trusted."""

    TOFU = "tofu"
    """The key pinned on first use (the Gemini way)."""
    CA = "ca"
    """A chain to a certificate authority, and the hostname, like the web."""
    OBSERVE = "observe"
    """Accept anything and only record what was seen (``hospes known-hosts trust``)."""


@dataclass
class PeerCheck:
    """The judgement of one connection's server certificate, made in the verify callback.

    After a failed handshake, :attr:`failure` says why the callback refused
    (and :attr:`seen` what it saw); after a successful one, :attr:`seen`,
    :attr:`verdict` and :attr:`hostname_matches` describe the server.
    """

    host: str
    port: int
    mode: TrustMode
    pinned: KnownHost | None = None
    accept_key: str | None = None
    verify_hostname: bool = False
    seen: ServerCertificate | None = None
    certificate: x509.Certificate | None = None
    verdict: Verdict | None = None
    hostname_matches: bool | None = None
    failure: ClientError | None = None
    _decided: bool = field(default=False, repr=False)

    def callback(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """The verify callback given to pyOpenSSL: True lets the handshake go on."""
        try:
            return self._check(cert, errno, depth, ok)
        except Exception as exc:  # a bug or a certificate no parser expected: refuse
            self.failure = TLSFailure(f"cannot examine the server certificate: {exc}")
            return False

    def _check(self, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        if self.mode is TrustMode.CA and not ok:
            reason = _VERIFY_ERRORS.get(errno, f"verification error {errno}")
            where = "" if depth == 0 else f" (certificate {depth} of the chain)"
            self.failure = CertificateUntrusted(
                f"the certificate of {self._address} is not trusted: {reason}{where}"
            )
            return False
        if depth != 0:
            return True
        if self._decided:  # OpenSSL may call again for the same certificate
            return self.failure is None
        self._decided = True
        certificate = cert.to_cryptography()
        self.certificate = certificate
        self.seen = ServerCertificate.from_certificate(certificate)
        self.hostname_matches = match_hostname(
            certificate, self.host, common_name_fallback=self.mode is not TrustMode.CA
        )
        if not self.hostname_matches and (self.verify_hostname or self.mode is TrustMode.CA):
            self.failure = CertificateUntrusted(
                f"the certificate of {self._address} is not issued for {self.host} "
                f"(it names {self.seen.label})"
            )
            return False
        if self.mode is TrustMode.TOFU:
            try:
                self.verdict = judge(self.host, self.port, self.pinned, self.seen, self.accept_key)
            except ClientError as exc:
                self.failure = exc
                return False
        elif self.mode is TrustMode.CA:
            self.verdict = Verdict.CA_VERIFIED
        return True

    @property
    def _address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def validity_problem(self, now: dt.datetime | None = None) -> str | None:
        """Whether the certificate seen is outside its validity dates (reported, not fatal)."""
        return None if self.seen is None else self.seen.validity_problem(now)


def client_context(mode: TrustMode, ca_file: Path | None = None) -> SSL.Context:
    """A client context: TLS 1.2+, no session reuse; CA mode loads the trust store.

    The verify callback is set on each connection (:meth:`PeerCheck.callback`),
    since each connection judges its own host.
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if mode is TrustMode.CA:
        try:
            if ca_file is not None:
                context.load_verify_locations(str(ca_file))
            else:
                context.set_default_verify_paths()
        except SSL.Error as exc:
            raise CertificateUntrusted(f"cannot load the certificate authorities: {exc}") from None
    return context


# The curves TLS 1.3 has ECDSA signature schemes for (RFC 8446, 4.2.3), which every server
# offers: a certificate on another curve cannot sign a TLS 1.3 handshake, and in TLS 1.2
# servers refuse it (an "illegal parameter" alert for P-224).
_TLS_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_CURVE_NAMES = {"secp192r1": "P-192", "secp224r1": "P-224"}
# OpenSSL's reasons for refusing a certificate, as a person can act on them.
_REFUSALS = {
    "ee key too small": "its key is too small for the TLS library",
    "ca md too weak": "it is signed with a digest the TLS library refuses (such as SHA-1 or MD5)",
    "ee md too weak": "it is signed with a digest the TLS library refuses (such as SHA-1 or MD5)",
    "key values mismatch": "the private key does not belong to the certificate",
}


def credentials_problem(certificate: x509.Certificate, key: PrivateKey) -> str | None:
    """Why a client certificate and key cannot be presented, or None if they can.

    Checked before connecting, so that the user learns the reason instead of
    a failed handshake: the key types servers accept (RSA of at least 2048
    bits, ECDSA on P-256, P-384 or P-521, Ed25519), then the TLS library's
    own checks at the security level the client uses.
    """
    public = certificate.public_key()
    kind, bits = describe_key(public)
    if isinstance(public, rsa.RSAPublicKey) and bits < MIN_RSA_BITS:
        return (
            f"its RSA key of {bits} bits is refused by the TLS library and by servers "
            f"(at least {MIN_RSA_BITS} bits); create a new identity (ECDSA P-256 by default)"
        )
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name not in _TLS_CURVES:
        curve = _CURVE_NAMES.get(public.curve.name, public.curve.name)
        return (
            f"its key is on the curve {curve}, which TLS 1.3 cannot sign "
            "with and servers refuse; use P-256, P-384, P-521, Ed25519 or RSA"
        )
    if not isinstance(
        public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    ):
        return f"its key type ({kind}) is not supported; use ECDSA P-256, Ed25519 or RSA"
    context = client_context(TrustMode.TOFU)
    try:
        context.use_certificate(certificate)
        context.use_privatekey(key)
        context.check_privatekey()
    except SSL.Error as exc:
        reasons = _error_reasons(exc)
        known = [_REFUSALS[reason] for reason in reasons if reason in _REFUSALS]
        return known[0] if known else "the TLS library refuses it: " + ", ".join(reasons)
    return None


def _error_reasons(exc: SSL.Error) -> list[str]:
    details = exc.args[0] if exc.args else None
    if isinstance(details, list):
        return [str(item[2]) for item in details if isinstance(item, tuple) and len(item) == 3]
    return [str(exc) or type(exc).__name__]
