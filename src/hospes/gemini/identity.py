"""Client certificates to identities: fingerprints, names, dates, keys, and validity (status 62).

Under TOFU nobody vouches for a client certificate, so "valid" means only what
can be checked locally: it parses, it is inside its validity period (with some
clock-skew allowance), a self-signed certificate's signature verifies with its
own key, and the key is not too weak.  Who the identity *is* (an account, an
allow-list entry) is decided elsewhere.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from .escape import printable
from .fingerprint import fingerprint

__all__ = [
    "CertificateError",
    "ClientIdentity",
    "IdentityCache",
    "broken_signature_hash",
    "describe_key",
    "identify",
    "key_fingerprint",
]

MIN_RSA_BITS = 2048
# A 62 for dates names no "new certificate": a new key is a new identity to every server
# that knows its visitors by key, and following that advice would lose the account.
RENEW_ADVICE = (
    "renew it with the same key in your client (a new key is a stranger here and loses "
    "your account); with hospes: hospes id renew NAME"
)
MIN_DSA_BITS = 2048
MIN_EC_BITS = 224


class CertificateError(ValueError):
    """A certificate that cannot be used as an identity at all (it does not parse)."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Everything hospes knows about a client certificate.

    ``fingerprint`` hashes the whole certificate and changes on every renewal;
    ``key_fingerprint`` hashes the public key (SPKI) and survives a renewal
    with the same key, which is how a renewed certificate stays the same person.
    """

    fingerprint: str
    key_fingerprint: str
    common_name: str | None
    subject: str
    issuer: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_bits: int
    self_signed: bool
    defect: str | None
    """Why this certificate can never be valid (bad signature, weak key), else None."""

    @property
    def name(self) -> str:
        """The common name made safe to display (empty when there is none)."""
        return printable(self.common_name or "", 64)

    def problem(self, now: dt.datetime, skew: dt.timedelta) -> str | None:
        """Why the certificate is not valid at ``now`` (a 62 meta), or None if it is."""
        if self.defect is not None:
            return self.defect
        if now + skew < self.not_before:
            return (
                f"certificate is not valid before {_day(self.not_before)}; check your clock, "
                f"or {RENEW_ADVICE}"
            )
        if now - skew > self.not_after:
            return f"certificate expired on {_day(self.not_after)}; {RENEW_ADVICE}"
        return None


def _day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def key_fingerprint(key: CertificatePublicKeyTypes) -> str:
    """The fingerprint of a public key: SHA-256 of its DER SubjectPublicKeyInfo."""
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return fingerprint(spki)


def describe_key(key: CertificatePublicKeyTypes) -> tuple[str, int]:
    """A key's type as people name it (``ECDSA P-256``, ``RSA``, ``Ed25519``) and its bits."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            key.curve.name, key.curve.name
        )
        return f"ECDSA {curve}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _weakness(key_type: str, bits: int) -> str | None:
    if key_type == "RSA" and bits < MIN_RSA_BITS:
        return (
            f"RSA key of {bits} bits is too weak; create a certificate with at least "
            f"{MIN_RSA_BITS} bits, or ECDSA or Ed25519"
        )
    if key_type == "DSA" and bits < MIN_DSA_BITS:
        return f"DSA key of {bits} bits is too weak; create an ECDSA or Ed25519 certificate"
    if key_type.startswith("ECDSA") and bits < MIN_EC_BITS:
        return f"elliptic curve of {bits} bits is too weak; create a P-256 or Ed25519 certificate"
    return None


def identify(der: bytes) -> ClientIdentity:
    """Parse a DER certificate into a :class:`ClientIdentity`.

    Raises :class:`CertificateError` (whose message is a 62 meta) when the
    certificate cannot be parsed or its key type is not supported.
    """
    with warnings.catch_warnings():
        # Odd but parseable certificates (long names, negative serials) are the client's
        # business; they must not write warnings into the server's log.
        warnings.simplefilter("ignore")
        try:
            return _identify(der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError(
                f"certificate cannot be parsed ({printable(str(exc), 80)}); "
                "create a new certificate"
            ) from None


_BROKEN_HASHES = {"sha1": "SHA-1", "md5": "MD5"}


def broken_signature_hash(cert: x509.Certificate) -> str | None:
    """``SHA-1`` or ``MD5`` when the certificate is signed with that broken hash, else None."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return None if algorithm is None else _BROKEN_HASHES.get(algorithm.name)


def _unsupported_signature(cert: x509.Certificate) -> str:
    """Why a self-signature cannot be checked; for a broken hash, how to keep the identity."""
    broken = broken_signature_hash(cert)
    if broken is not None:
        # The key is fine: signed again with SHA-256 it is the same identity.
        return f"certificate is signed with {broken}, which is broken; {RENEW_ADVICE}"
    return "certificate's signature algorithm is not supported; create an ECDSA certificate"


def _identify(der: bytes) -> ClientIdentity:
    cert = x509.load_der_x509_certificate(der)
    key = cert.public_key()
    subject, issuer = cert.subject, cert.issuer
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = names[0].value if names else None
    key_type, bits = describe_key(key)
    defect = _weakness(key_type, bits)
    self_signed = subject == issuer
    if self_signed and defect is None:
        try:
            cert.verify_directly_issued_by(cert)
        except InvalidSignature:
            defect = "certificate's self-signature does not verify; create a new certificate"
        except (ValueError, TypeError, UnsupportedAlgorithm):
            defect = _unsupported_signature(cert)
    return ClientIdentity(
        fingerprint=fingerprint(der),
        key_fingerprint=key_fingerprint(key),
        common_name=common_name if isinstance(common_name, str) else None,
        subject=subject.rfc4514_string(),
        issuer=issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_bits=bits,
        self_signed=self_signed,
        defect=defect,
    )


class IdentityCache:
    """Remembers parsed certificates by their DER bytes, so a returning client costs one lookup.

    Parsing and the signature check cost tens of microseconds; Gemini clients
    present the same certificate on every request.  Failures are cached too, so
    a hostile certificate is not re-parsed on every connection.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._entries: OrderedDict[bytes, ClientIdentity | str] = OrderedDict()
        self._size = size

    def get(self, der: bytes) -> ClientIdentity:
        """The identity for ``der``; raises :class:`CertificateError` as :func:`identify` does."""
        entries = self._entries
        try:
            found = entries[der]
        except KeyError:
            try:
                found = identify(der)
            except CertificateError as exc:
                found = str(exc)
            entries[der] = found
            if len(entries) > self._size:
                entries.popitem(last=False)
        else:
            entries.move_to_end(der)
        if isinstance(found, str):
            raise CertificateError(found)
        return found
