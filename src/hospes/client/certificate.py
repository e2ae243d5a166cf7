"""What the client tells its user about a server certificate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..gemini.escape import printable
from ..gemini.fingerprint import fingerprint
from ..gemini.identity import describe_key, key_fingerprint
from .hostname import certificate_names

__all__ = ["ServerCertificate"]


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """A server certificate as the client saw it.

    ``key_fingerprint`` (SHA-256 of the SubjectPublicKeyInfo) is what the TOFU
    store pins; ``fingerprint`` (of the whole certificate) changes on renewal.
    Names are as the certificate has them: untrusted text, see :attr:`label`.
    """

    fingerprint: str
    key_fingerprint: str
    key_type: str
    key_bits: int
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    self_signed: bool

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> ServerCertificate:
        """Summarise a parsed certificate."""
        der = cert.public_bytes(serialization.Encoding.DER)
        key = cert.public_key()
        key_type, bits = describe_key(key)
        dns, addresses, common_name = certificate_names(cert)
        return cls(
            fingerprint=fingerprint(der),
            key_fingerprint=key_fingerprint(key),
            key_type=key_type,
            key_bits=bits,
            common_name=common_name,
            dns_names=tuple(dns),
            ip_addresses=tuple(addresses),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            self_signed=cert.subject == cert.issuer,
        )

    def validity_problem(self, now: dt.datetime | None = None) -> str | None:
        """``"expired on …"`` or ``"not valid before …"`` when outside its dates, else None."""
        now = now or dt.datetime.now(dt.UTC)
        if now > self.not_after:
            return f"expired on {self.not_after:%Y-%m-%d %H:%M} UTC"
        if now < self.not_before:
            return f"not valid before {self.not_before:%Y-%m-%d %H:%M} UTC"
        return None

    @property
    def label(self) -> str:
        """The names of the certificate, escaped for a terminal: ``CN=x, DNS:a, IP:b``."""
        parts = []
        if self.common_name is not None:
            parts.append(f"CN={printable(self.common_name, 64)}")
        parts.extend(f"DNS:{printable(name, 64)}" for name in self.dns_names[:8])
        parts.extend(f"IP:{address}" for address in self.ip_addresses[:8])
        if len(self.dns_names) > 8 or len(self.ip_addresses) > 8:
            parts.append("…")
        return ", ".join(parts) or "(no names)"
