"""The user's own client certificates ("identities"), and the URLs each may be sent to.

Layout of ``<data dir>/identities/``::

    NAME.crt      the certificate (PEM)
    NAME.key      its private key (PEM, unencrypted, mode 0600)
    NAME.scope    URL prefixes the identity is sent to, one per line

An identity is sent only to a URL inside one of its scopes: same scheme
(``gemini://``, or ``titan://`` for uploads), same host, same port, and a path
under the scope's path (compared after percent-decoding and
removing dot segments, on whole segments: ``/app`` covers ``/app/x`` but not
``/apple``).  With no scope it is sent nowhere unless named for one request.
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..files import write_atomically
from ..gemini.fingerprint import fingerprint
from ..gemini.identity import describe_key, key_fingerprint
from ..gemini.url import URL, URLError, normalize_path, parse_url, percent_decode, quote_path
from ..selfsigned import (
    KeyKind,
    PrivateKey,
    generate_key,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)
from .errors import ClientFileError

__all__ = [
    "DEFAULT_DAYS",
    "Identity",
    "IdentityError",
    "IdentityStore",
    "Scope",
    "check_name",
]

DEFAULT_DAYS = 3650
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)
_PEM_KEY = re.compile(
    rb"-----BEGIN (?:EC |RSA |ENCRYPTED )?PRIVATE KEY-----.+?"
    rb"-----END (?:EC |RSA |ENCRYPTED )?PRIVATE KEY-----\s*",
    re.S,
)


class IdentityError(ClientFileError):
    """An identity that does not exist, already exists, or cannot be read or used."""


def check_name(name: str) -> str:
    """Return ``name`` if it can name an identity (it becomes a file name), else raise."""
    if not _NAME.match(name):
        raise IdentityError(
            f"invalid identity name {name!r}: use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class Scope:
    """Where an identity may be sent: a host, a port and a path prefix (and the scheme)."""

    host: str
    port: int
    path: str
    """Decoded and normalised, always starting with ``/``."""
    scheme: str = "gemini"
    """``gemini``, or ``titan`` for a scope of uploads only."""

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse a ``gemini://`` (or ``titan://``) ``host[:port][/path]`` prefix.

        Raises :class:`IdentityError`.
        """
        try:
            url = parse_url(text.strip())
        except URLError as exc:
            raise IdentityError(f"invalid scope {text!r}: {exc}") from None
        if url.scheme not in ("gemini", "titan") or not url.host:
            raise IdentityError(f"invalid scope {text!r}: expected gemini://HOST[:PORT][/PATH]")
        if url.query is not None or url.fragment is not None or url.userinfo is not None:
            raise IdentityError(f"invalid scope {text!r}: a scope has no query or fragment")
        path = _decoded_path(url)
        if path is None:
            raise IdentityError(f"invalid scope {text!r}: the path is not valid UTF-8")
        return cls(url.host, url.effective_port, path, url.scheme)

    @classmethod
    def of(cls, url: URL) -> Scope | None:
        """The narrowest scope containing ``url`` (its host, port and path), if it has one."""
        path = _decoded_path(url)
        return None if path is None else cls(url.host, url.effective_port, path)

    def contains(self, url: URL) -> bool:
        """Whether ``url`` is inside this scope (host, port, and path on segment boundaries)."""
        if url.scheme != self.scheme or url.host != self.host or url.effective_port != self.port:
            return False
        path = _decoded_path(url)
        if path is None:
            return False
        prefix = self.path
        if prefix.endswith("/"):
            return path.startswith(prefix) or path == prefix[:-1]
        return path == prefix or path.startswith(prefix + "/")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 1965 else f":{self.port}"
        return f"{self.scheme}://{host}{port}{quote_path(self.path)}"


def _decoded_path(url: URL) -> str | None:
    """The path a server would route: percent-decoded, dot segments and ``//`` removed."""
    try:
        return normalize_path(percent_decode(url.path) or "/")
    except URLError:
        return None


@dataclass(frozen=True, slots=True)
class Identity:
    """A client certificate of the user's, with its key file and scopes."""

    name: str
    certificate: x509.Certificate
    cert_path: Path
    key_path: Path
    scopes: tuple[Scope, ...]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (what most servers and allow-lists show)."""
        return fingerprint(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def key_fingerprint(self) -> str:
        """SHA-256 of the public key (survives a renewal)."""
        return key_fingerprint(self.certificate.public_key())

    @property
    def common_name(self) -> str | None:
        """The certificate's common name, if it has one."""
        names = self.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        value = names[0].value if names else None
        return value if isinstance(value, str) else None

    @property
    def key_description(self) -> str:
        """``ECDSA P-256 (256 bits)`` and the like."""
        kind, bits = describe_key(self.certificate.public_key())
        return f"{kind} ({bits} bits)"

    @property
    def not_after(self) -> dt.datetime:
        """When the certificate expires."""
        return self.certificate.not_valid_after_utc

    def match(self, url: URL) -> Scope | None:
        """The most specific scope containing ``url``, or None."""
        inside = [scope for scope in self.scopes if scope.contains(url)]
        return max(inside, key=lambda scope: len(scope.path), default=None)

    def load_key(self) -> PrivateKey:
        """Read the private key, refusing a key file other users can read (as ssh does)."""
        try:
            mode = self.key_path.stat().st_mode
        except OSError as exc:
            raise IdentityError(
                f"cannot read the key of identity {self.name}: {exc.strerror}"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(
                f"the key of identity {self.name} ({self.key_path}) is readable by other users; "
                f"fix it with: chmod 600 {self.key_path}"
            )
        return _load_key(self.key_path.read_bytes(), str(self.key_path))


def _load_key(data: bytes, origin: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise IdentityError(f"{origin}: encrypted private keys are not supported") from None
    except ValueError:
        raise IdentityError(f"{origin} does not contain a PEM private key") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise IdentityError(f"{origin}: unsupported key type {type(key).__name__}")
    return key


class IdentityStore:
    """The identities directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        check_name(name)
        directory = self.directory
        return directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.scope"

    def names(self) -> list[str]:
        """Names of every identity, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            path.stem
            for path in self.directory.glob("*.crt")
            if _NAME.match(path.stem) and path.with_suffix(".key").exists()
        )

    def exists(self, name: str) -> bool:
        """Whether an identity of this name exists."""
        cert, key, _ = self._paths(name)
        return cert.exists() or key.exists()

    def get(self, name: str) -> Identity:
        """Load an identity; :class:`IdentityError` says why it cannot be."""
        cert_path, key_path, scope_path = self._paths(name)
        if not cert_path.exists() or not key_path.exists():
            raise IdentityError(f"no identity named {name!r}; create it with: hospes id new {name}")
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except OSError as exc:
            raise IdentityError(f"cannot read {cert_path}: {exc.strerror}") from None
        except ValueError:
            raise IdentityError(f"{cert_path} does not contain a PEM certificate") from None
        return Identity(name, certificate, cert_path, key_path, self._read_scopes(scope_path))

    def all(self) -> list[Identity]:
        """Every identity that can be loaded, sorted by name."""
        return [self.get(name) for name in self.names()]

    def for_url(self, url: URL) -> Identity | None:
        """The identity whose scope contains ``url`` most specifically (ties: first by name)."""
        best: tuple[int, Identity] | None = None
        for identity in self.all():
            scope = identity.match(url)
            if scope is not None and (best is None or len(scope.path) > best[0]):
                best = (len(scope.path), identity)
        return None if best is None else best[1]

    # -- changing -------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        common_name: str | None = None,
        days: int = DEFAULT_DAYS,
        kind: KeyKind = "ecdsa",
    ) -> Identity:
        """Generate a key and a self-signed certificate (CN defaults to the name)."""
        check_name(name)
        if days < 1:
            raise IdentityError("an identity must be valid for at least one day")
        if self.exists(name):
            raise IdentityError(f"an identity named {name!r} already exists")
        key = generate_key(kind)
        try:
            certificate = self_signed_certificate(key, common_name or name, days=days)
        except ValueError as exc:  # the common name: empty, too long, or unencodable
            raise IdentityError(f"cannot create the certificate: {exc}") from None
        return self._add(name, certificate, key)

    def import_pem(self, name: str, data: bytes, key_data: bytes | None = None) -> Identity:
        """Add an identity from PEM: a certificate and its key, in one blob or two."""
        check_name(name)
        match = _PEM_CERT.search(data)
        if match is None:
            raise IdentityError("no PEM certificate found")
        try:
            certificate = x509.load_pem_x509_certificate(match.group())
        except ValueError:
            raise IdentityError("the PEM certificate cannot be parsed") from None
        key_match = _PEM_KEY.search(data if key_data is None else key_data)
        if key_match is None:
            raise IdentityError("no PEM private key found")
        key = _load_key(key_match.group(), "the private key")
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        cert_public = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public != cert_public:
            raise IdentityError("the private key does not belong to the certificate")
        return self._add(name, certificate, key)

    def _add(self, name: str, certificate: x509.Certificate, key: PrivateKey) -> Identity:
        cert_path, key_path, _ = self._paths(name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if cert_path.exists():
                raise IdentityError(f"an identity named {name!r} already exists")
            # Of two processes creating the same name, exactly one publishes its key.
            try:
                write_private_key(key_path, key, exclusive=True)
            except FileExistsError:
                raise IdentityError(f"an identity named {name!r} already exists") from None
            write_certificate(cert_path, certificate)
        except OSError as exc:
            raise IdentityError(f"cannot write identity {name}: {exc}") from None
        return self.get(name)

    def export_pem(self, name: str, *, include_key: bool) -> bytes:
        """The certificate (and, when asked, the private key) as PEM."""
        identity = self.get(name)
        data = identity.certificate.public_bytes(serialization.Encoding.PEM)
        if include_key:
            key = identity.load_key()
            data += key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        return data

    def delete(self, name: str) -> None:
        """Remove an identity's key, certificate and scopes."""
        cert_path, key_path, scope_path = self._paths(name)
        if not cert_path.exists() and not key_path.exists():
            raise IdentityError(f"no identity named {name!r}")
        try:
            for path in (key_path, cert_path, scope_path):
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise IdentityError(f"cannot delete identity {name}: {exc}") from None

    def add_scope(self, name: str, scope: Scope) -> bool:
        """Let ``name`` be sent to ``scope``; False if it already was."""
        identity = self.get(name)
        if scope in identity.scopes:
            return False
        self._write_scopes(name, (*identity.scopes, scope))
        return True

    def remove_scope(self, name: str, scope: Scope | None) -> int:
        """Withdraw one scope (or all with None); returns how many were removed."""
        identity = self.get(name)
        kept = () if scope is None else tuple(s for s in identity.scopes if s != scope)
        removed = len(identity.scopes) - len(kept)
        if removed:
            self._write_scopes(name, kept)
        return removed

    def _read_scopes(self, path: Path) -> tuple[Scope, ...]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ()
        except (OSError, UnicodeDecodeError) as exc:
            raise IdentityError(f"cannot read {path}: {exc}") from None
        scopes = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                scopes.append(Scope.parse(line))
            except IdentityError as exc:
                raise IdentityError(f"{path}, line {number}: {exc}") from None
        return tuple(scopes)

    def _write_scopes(self, name: str, scopes: tuple[Scope, ...]) -> None:
        _, _, path = self._paths(name)
        data = "".join(f"{scope}\n" for scope in scopes).encode("utf-8")
        try:
            write_atomically(path, data, mode=0o600)
        except OSError as exc:
            raise IdentityError(f"cannot write {path}: {exc}") from None
