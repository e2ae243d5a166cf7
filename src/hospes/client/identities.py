"""The user's own client certificates ("identities"), and the URLs each may be sent to.

Layout of ``<data dir>/identities/``::

    NAME.crt      the certificate (PEM)
    NAME.key      its private key (PEM, unencrypted, mode 0600)
    NAME.scope    URL prefixes the identity is sent to, one per line

    NAME.crt.N    an earlier certificate of the same key, kept by ``renew`` until pruned

An identity is sent only to a URL inside one of its scopes: same scheme
(``gemini://``, or ``titan://`` for uploads only), same host, same port, and
a path under the scope's path, on whole segments (``/app`` covers ``/app/x``
but not ``/apple``).  Paths are compared as a server routes them, and since
servers do not all route alike, a URL is inside a scope only if it is inside
under both common ways (see :func:`route`).  The most specific
scope wins; no two identities may have the same scope.  With no scope an
identity is sent nowhere unless named for one request.
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID

from ..files import write_atomically
from ..gemini.fingerprint import fingerprint
from ..gemini.identity import describe_key, key_fingerprint
from ..gemini.url import URL, URLError, parse_url, percent_decode
from ..selfsigned import (
    KeyKind,
    PrivateKey,
    generate_key,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)
from .errors import ClientFileError
from .tls import credentials_problem

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "Identity",
    "IdentityError",
    "IdentityStore",
    "Renewal",
    "Scope",
    "check_name",
    "load_identity_files",
    "route",
]

DEFAULT_DAYS = 3650
MAX_DAYS = 100 * 366
_BACKUP = re.compile(r"\.crt\.([0-9]{1,9})\Z")
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
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


def route(path: str, *, merge_slashes: bool) -> tuple[str, ...] | None:
    """The decoded segments a server routes a raw URL ``path`` to; None if it cannot be decoded.

    Segments are split on the ``/`` written in the URL only: an encoded
    ``%2F`` stays inside its segment, and ``%2E%2E`` is a dot segment as
    ``..`` is.  Dot segments are then removed as RFC 3986 (5.2.4) says.
    ``merge_slashes`` first drops empty segments, as servers that merge
    ``//`` do (hospes among them); RFC 3986 keeps them, so that
    ``/a//../b`` is ``/a/b`` there and ``/b`` here.  A trailing ``/`` leaves
    a final empty segment.
    """
    parts = (path or "/").split("/")
    if parts[0] == "":
        parts = parts[1:]
    decoded: list[str] = []
    for part in parts:
        try:
            decoded.append(percent_decode(part))
        except URLError:
            return None
    if merge_slashes:
        last = decoded[-1:]
        decoded = [part for part in decoded if part] + ([""] if last == [""] else [])
    out: list[str] = []
    for index, part in enumerate(decoded):
        final = index == len(decoded) - 1
        if part in (".", ".."):
            if part == ".." and out:
                out.pop()
            if final:
                out.append("")
        else:
            out.append(part)
    return tuple(out)


def _key(segments: tuple[str, ...]) -> tuple[str, ...]:
    """Segments without the empty one a trailing slash leaves: ``/app/`` is ``/app``."""
    return segments[:-1] if segments[-1:] == ("",) else segments


@dataclass(frozen=True, slots=True)
class Scope:
    """Where an identity may be sent: a host, a port and a path prefix.

    Build it with :meth:`parse` or :meth:`of`: ``path`` is the canonical
    encoded path (dot segments removed, every segment percent-encoded one
    way), so two spellings of one prefix make equal scopes, and printing a
    scope never shows a character that is not there.
    """

    host: str
    port: int
    path: str
    """Canonical, percent-encoded, always starting with ``/``."""
    scheme: str = "gemini"
    """``gemini``, or ``titan`` for a scope of uploads only (``hospes put``)."""

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
        scope = cls.of(url)
        if scope is None:
            raise IdentityError(f"invalid scope {text!r}: the path is not valid UTF-8")
        return scope

    @classmethod
    def of(cls, url: URL) -> Scope | None:
        """The narrowest scope containing ``url`` (its host, port and path), if it has one."""
        segments = route(url.path, merge_slashes=False)
        if segments is None:
            return None
        path = "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in segments)
        scheme = "titan" if url.scheme == "titan" else "gemini"
        return cls(url.host, url.effective_port, path, scheme)

    @property
    def segments(self) -> tuple[str, ...]:
        """The decoded segments of the prefix, without the trailing empty one."""
        return _key(route(self.path, merge_slashes=False) or ())

    @property
    def place(self) -> tuple[str, str, int, tuple[str, ...]]:
        """What the scope covers: two scopes with the same place are the same scope."""
        return self.scheme, self.host, self.port, self.segments

    def contains(self, url: URL) -> bool:
        """Whether ``url`` is inside this scope: host, port, and path on segment boundaries.

        The path must be inside whether the server merges ``//`` or not, so
        that ``/~mallory//../~alice/`` (``/~mallory/~alice/`` to one server,
        ``/~alice/`` to the other) is in neither user's scope.
        """
        if url.scheme != self.scheme or url.host != self.host or url.effective_port != self.port:
            return False
        for merge in (False, True):
            prefix = _key(route(self.path, merge_slashes=merge) or ())
            routed = route(url.path, merge_slashes=merge)
            if routed is None or _key(routed)[: len(prefix)] != prefix:
                return False
        return True

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 1965 else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


@dataclass(frozen=True, slots=True)
class Identity:
    """A client certificate of the user's, with its key file and scopes."""

    name: str
    certificate: x509.Certificate
    cert_path: Path
    key_path: Path
    scopes: tuple[Scope, ...]
    stored: bool = True
    """False for certificate files given for one request (``hospes get --cert``)."""

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

    @property
    def not_before(self) -> dt.datetime:
        """When the certificate becomes valid."""
        return self.certificate.not_valid_before_utc

    def validity_problem(self, now: dt.datetime | None = None) -> str | None:
        """``expired on …`` or ``not valid before …`` when outside its dates, else None."""
        now = now or dt.datetime.now(dt.UTC)
        if now > self.not_after:
            return f"expired on {self.not_after:%Y-%m-%d %H:%M} UTC"
        if now < self.not_before:
            return f"not valid before {self.not_before:%Y-%m-%d %H:%M} UTC"
        return None

    def match(self, url: URL) -> Scope | None:
        """The most specific scope containing ``url``, or None."""
        inside = [scope for scope in self.scopes if scope.contains(url)]
        return max(inside, key=lambda scope: len(scope.segments), default=None)

    def credentials(self) -> tuple[x509.Certificate, PrivateKey]:
        """The certificate and key to present; :class:`IdentityError` if TLS cannot use them."""
        key = self.load_key()
        problem = credentials_problem(self.certificate, key)
        if problem is not None:
            what = f"identity {self.name}" if self.stored else str(self.cert_path)
            raise IdentityError(f"{what} cannot be used: {problem}")
        return self.certificate, key

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
        what = f"identity {self.name}" if self.stored else str(self.key_path)
        try:
            data = self.key_path.read_bytes()
        except OSError as exc:
            raise IdentityError(f"cannot read the key of {what}: {exc.strerror}") from None
        found = _PEM_KEY.search(data)
        return _load_key(data if found is None else found.group(), str(self.key_path))


def load_identity_files(cert_path: Path, key_path: Path | None = None) -> Identity:
    """An identity for one request from PEM files (the key in ``cert_path`` when not given).

    Checked at once, before any connection: the files parse, the key belongs
    to the certificate, it is private to the user, and TLS can use it.
    """
    try:
        data = cert_path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read {cert_path}: {exc.strerror}") from None
    match = _PEM_CERT.search(data)
    if match is None:
        raise IdentityError(f"{cert_path} does not contain a PEM certificate")
    try:
        certificate = x509.load_pem_x509_certificate(match.group())
    except ValueError:
        raise IdentityError(f"the certificate in {cert_path} cannot be parsed") from None
    source = key_path or cert_path
    identity = Identity(cert_path.name, certificate, cert_path, source, (), stored=False)
    key = identity.load_key()
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        raise IdentityError(f"the private key in {source} does not belong to {cert_path}")
    identity.credentials()
    return identity


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True)
class Renewal:
    """What :meth:`IdentityStore.renew` did."""

    identity: Identity
    """The identity with its new certificate."""
    previous: x509.Certificate
    backup: Path
    """Where the previous certificate is kept."""


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
        """The identity whose scope contains ``url`` most specifically, or None.

        Two identities with the same scope (scope files edited by hand) are an
        error rather than a guess.
        """
        best: list[tuple[Scope, Identity]] = []
        for identity in self.all():
            scope = identity.match(url)
            if scope is None:
                continue
            if best and len(scope.segments) < len(best[0][0].segments):
                continue
            if best and len(scope.segments) > len(best[0][0].segments):
                best = []
            best.append((scope, identity))
        if len(best) > 1:
            names = " and ".join(identity.name for _, identity in best)
            scope = best[0][0]
            raise IdentityError(
                f"identities {names} are both scoped to {scope}; keep one with: "
                f"hospes id scope {best[0][1].name} {scope} --replace"
            )
        return best[0][1] if best else None

    def scope_owners(self, scope: Scope) -> list[str]:
        """The identities that have ``scope`` (the same place, however it was written)."""
        return [
            identity.name
            for identity in self.all()
            if any(own.place == scope.place for own in identity.scopes)
        ]

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
        _check_days(days)
        if self.exists(name):
            raise IdentityError(f"an identity named {name!r} already exists")
        key = generate_key(kind)
        try:
            certificate = self_signed_certificate(key, common_name or name, days=days)
        except ValueError as exc:  # the common name: empty, too long, or unencodable
            raise IdentityError(f"cannot create the certificate: {exc}") from None
        return self._add(name, certificate, key)

    def import_pem(self, name: str, data: bytes, key_data: bytes | None = None) -> Identity:
        """Add an identity from PEM: a certificate and its key, in one blob or two.

        Refuses a key the TLS library or servers would refuse (RSA under 2048
        bits, an elliptic curve TLS 1.3 does not sign with), saying why.
        """
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
        if _public_der(key.public_key()) != _public_der(certificate.public_key()):
            raise IdentityError("the private key does not belong to the certificate")
        return self._add(name, certificate, key)

    def _add(self, name: str, certificate: x509.Certificate, key: PrivateKey) -> Identity:
        problem = credentials_problem(certificate, key)
        if problem is not None:
            raise IdentityError(f"this certificate cannot be used as an identity: {problem}")
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

    def renew(
        self, name: str, *, days: int | None = None, common_name: str | None = None
    ) -> Renewal:
        """A new certificate over the same key: same key fingerprint, new serial and dates.

        Servers that know the identity by its key (hospes, and any that
        follows the Gemini convention of key fingerprints) keep treating it as
        the same person; a new key would be a stranger.  The subject stays
        unless ``common_name`` replaces its CN; ``days`` defaults to the
        validity length of the old certificate.  The old certificate is kept
        as ``NAME.crt.N`` until :meth:`prune`.  A certificate issued by
        someone else becomes self-signed.
        """
        identity = self.get(name)
        key = identity.load_key()
        old = identity.certificate
        if days is None:
            length = old.not_valid_after_utc - old.not_valid_before_utc
            days = min(MAX_DAYS, max(1, round(length.total_seconds() / 86400)))
        _check_days(days)
        try:
            certificate = _reissue(old, key, days, common_name)
        except ValueError as exc:
            raise IdentityError(f"cannot create the certificate: {exc}") from None
        problem = credentials_problem(certificate, key)
        if problem is not None:
            raise IdentityError(f"identity {name} cannot be renewed: {problem}")
        backups = self.backups(name)
        number = 1 + max((_backup_number(path) for path in backups), default=0)
        backup = identity.cert_path.with_name(f"{identity.cert_path.name}.{number}")
        try:
            write_atomically(
                backup, old.public_bytes(serialization.Encoding.PEM), mode=0o644, exclusive=True
            )
            write_certificate(identity.cert_path, certificate)
        except FileExistsError:
            raise IdentityError(f"identity {name} is being renewed by another process") from None
        except OSError as exc:
            raise IdentityError(f"cannot renew identity {name}: {exc}") from None
        return Renewal(self.get(name), old, backup)

    def backups(self, name: str) -> list[Path]:
        """The earlier certificates ``renew`` kept for ``name``, oldest first."""
        cert_path, _, _ = self._paths(name)
        if not self.directory.is_dir():
            return []
        pattern = re.compile(re.escape(cert_path.name) + r"\.[0-9]{1,9}")
        found = [path for path in self.directory.iterdir() if pattern.fullmatch(path.name)]
        return sorted(found, key=_backup_number)

    def prune(self, name: str) -> list[Path]:
        """Delete the earlier certificates of ``name``; returns the files removed."""
        self.get(name)
        removed = []
        for path in self.backups(name):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise IdentityError(f"cannot delete {path}: {exc.strerror}") from None
            removed.append(path)
        return removed

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
        """Remove an identity's key, certificate, earlier certificates and scopes."""
        cert_path, key_path, scope_path = self._paths(name)
        if not cert_path.exists() and not key_path.exists():
            raise IdentityError(f"no identity named {name!r}")
        try:
            for path in (key_path, cert_path, scope_path, *self.backups(name)):
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise IdentityError(f"cannot delete identity {name}: {exc}") from None

    def add_scope(self, name: str, scope: Scope, *, replace: bool = False) -> bool:
        """Let ``name`` be sent to ``scope``; False if it already was.

        Another identity with the same scope is an error (which one would be
        sent?), unless ``replace``: then the scope moves to ``name``.
        """
        identity = self.get(name)
        if any(own.place == scope.place for own in identity.scopes):
            return False
        others = [other for other in self.scope_owners(scope) if other != name]
        if others and not replace:
            raise IdentityError(
                f"{scope} is already a scope of identity {', '.join(others)}; "
                f"two identities cannot share a scope. Move it with: "
                f"hospes id scope {name} {scope} --replace"
            )
        for other in others:
            owner = self.get(other)
            self._write_scopes(
                other, tuple(own for own in owner.scopes if own.place != scope.place)
            )
        self._write_scopes(name, (*identity.scopes, scope))
        return True

    def remove_scope(self, name: str, scope: Scope | None) -> int:
        """Withdraw one scope (or all with None); returns how many were removed."""
        identity = self.get(name)
        kept = (
            ()
            if scope is None
            else tuple(own for own in identity.scopes if own.place != scope.place)
        )
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


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise IdentityError(f"a certificate must be valid for 1 to {MAX_DAYS} days, not {days}")


def _backup_number(path: Path) -> int:
    match = _BACKUP.search(path.name)
    return int(match[1]) if match else 0


def _reissue(
    old: x509.Certificate, key: PrivateKey, days: int, common_name: str | None
) -> x509.Certificate:
    """``old``'s subject and extensions on a new self-signed certificate for ``key``."""
    subject = old.subject
    if common_name is not None:
        attributes = [a for a in subject if a.oid != NameOID.COMMON_NAME]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), *attributes])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )
    kept = False
    for extension in old.extensions:
        if extension.oid == ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            continue  # it named the old issuer; the new certificate signs itself
        kept = kept or extension.oid == ExtensionOID.BASIC_CONSTRAINTS
        builder = builder.add_extension(extension.value, critical=extension.critical)
    if not kept:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)
