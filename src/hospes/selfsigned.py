"""Create self-signed certificates and keys, and read and write them as PEM files.

Used for a server's first-run certificate, for the client's own identities,
and by the tests (expired, not-yet-valid, weak and renewed certificates).
Private keys are written with mode 0600, atomically: a crash never leaves a
half-written key behind.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from .files import write_atomically

__all__ = [
    "KeyKind",
    "PrivateKey",
    "generate_key",
    "load_certificate",
    "load_private_key",
    "self_signed_certificate",
    "write_certificate",
    "write_private_key",
]

KeyKind = Literal["ecdsa", "ed25519", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def generate_key(kind: KeyKind = "ecdsa", rsa_bits: int = 2048) -> PrivateKey:
    """A new private key: ECDSA P-256 (the default and the fastest to handshake), Ed25519 or RSA."""
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ValueError(f"unknown key kind {kind!r} (expected ecdsa, ed25519 or rsa)")


def self_signed_certificate(
    key: PrivateKey,
    common_name: str,
    *,
    days: float = 3650,
    not_before: dt.datetime | None = None,
    hostnames: Sequence[str] = (),
) -> x509.Certificate:
    """A self-signed certificate for ``key``, valid from ``not_before`` (default: an hour ago).

    ``hostnames`` become subjectAltName entries (DNS names or IP addresses),
    as a server certificate needs; a client identity has none.
    """
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if hostnames:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hostnames]),
            critical=False,
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_private_key(path: Path, key: PrivateKey, *, exclusive: bool = False) -> None:
    """Write an unencrypted PKCS#8 PEM key readable only by its owner (0600).

    ``exclusive``: raise :class:`FileExistsError` rather than replace a key.
    """
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(path, data, mode=0o600, exclusive=exclusive)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """Write a PEM certificate (0644: certificates are public)."""
    write_atomically(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def load_certificate(path: Path) -> x509.Certificate:
    """Read the first certificate of a PEM file; :class:`ValueError` says what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read certificate {path}: {exc.strerror}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError(f"{path} does not contain a PEM certificate") from None


def load_private_key(path: Path) -> PrivateKey:
    """Read an unencrypted PEM private key of a supported type."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read private key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{path} does not contain an unencrypted PEM private key") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ValueError(f"{path}: unsupported key type {type(key).__name__}")
    return key
