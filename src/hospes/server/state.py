"""The server's own certificates in its state directory, created on first run.

Layout of a state directory (created 0700: it holds private keys)::

    certs/<hostname>.crt   self-signed server certificate (created on first run)
    certs/<hostname>.key   its private key, mode 0600, never regenerated silently
    hospes.sqlite3         the identity store (accounts, allow-lists, bans), mode 0600

An existing state directory keeps the mode it has (systemd's ``StateDirectory``
creates it; ``StateDirectoryMode=0700`` in the unit file).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..selfsigned import (
    generate_key,
    load_private_key,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)

__all__ = [
    "CertificatePaths",
    "ensure_server_certificate",
    "ensure_state_dir",
]

SERVER_CERT_DAYS = 20 * 365


@dataclass(frozen=True, slots=True)
class CertificatePaths:
    """Where a hostname's certificate and key are, and whether they were just created."""

    cert: Path
    key: Path
    created: bool = False


def ensure_state_dir(state_dir: Path) -> Path:
    """Create ``state_dir`` (mode 0700, whatever the umask) if it does not exist; return it.

    Missing parents are created as ``mkdir -p`` would; an existing directory is left as is.
    """
    if not state_dir.is_dir():
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            state_dir.mkdir(mode=0o700)
        except FileExistsError:
            return state_dir  # another process made it first
        state_dir.chmod(0o700)  # mkdir's mode is filtered by the umask
    return state_dir


def ensure_server_certificate(state_dir: Path, hostname: str) -> CertificatePaths:
    """Return the certificate of ``hostname`` in ``state_dir``, creating it on first run.

    A new certificate is self-signed, ECDSA P-256, valid for 20 years, with the
    hostname as subjectAltName.  An existing key is always reused (a changed key
    breaks every client's TOFU pin); if only the certificate is missing it is
    re-issued for the same key.  Several processes starting at once agree on
    one key: the key file is published with a hard link, which fails if
    another process got there first.
    """
    directory = state_dir / "certs"
    cert_path = directory / f"{hostname}.crt"
    key_path = directory / f"{hostname}.key"
    if cert_path.exists() and key_path.exists():
        return CertificatePaths(cert_path, key_path)
    if cert_path.exists():
        raise FileNotFoundError(
            f"{cert_path} exists but its key {key_path} is missing; restore the key, "
            "or remove the certificate to create a new identity (clients will see a new key)"
        )
    ensure_state_dir(state_dir)
    directory.mkdir(exist_ok=True, mode=0o700)
    if not key_path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it first
            write_private_key(key_path, generate_key("ecdsa"), exclusive=True)
    key = load_private_key(key_path)
    certificate = self_signed_certificate(
        key, hostname, days=SERVER_CERT_DAYS, hostnames=[hostname]
    )
    write_certificate(cert_path, certificate)
    return CertificatePaths(cert_path, key_path, created=True)
