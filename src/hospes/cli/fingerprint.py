"""``hospes fingerprint CERT...``: both fingerprints of certificates, in the canonical form.

The certificate fingerprint is what the access log shows; the key fingerprint
stays the same when a certificate is renewed with the same key, so it is the
one to put on an allow-list or ban when a person, not one certificate, is meant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..gemini.escape import printable
from ..gemini.identity import CertificateError, ClientIdentity, identify
from .errors import Usage
from .output import emit_json, moment

__all__ = ["read_certificate", "register"]

_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fingerprint`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "fingerprint",
        help="print a certificate's fingerprint and its key's",
        description="Print the certificate and key fingerprints (SHA256:hex) of PEM or DER "
        "certificate files, as hospes, its access log and its admin commands write them.",
    )
    parser.add_argument("files", metavar="CERT", nargs="+", type=Path, help="PEM or DER file")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(run=run_fingerprint)


def read_certificate(path: Path) -> ClientIdentity:
    """The first certificate of a PEM or DER file; :class:`ValueError` says what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if _PEM_MARKER in data:
        try:
            der = x509.load_pem_x509_certificates(data)[0].public_bytes(Encoding.DER)
        except ValueError:
            raise ValueError(f"{path}: not a valid PEM certificate") from None
    else:
        der = data
    try:
        return identify(der)
    except CertificateError:
        raise ValueError(f"{path}: not a certificate (PEM or DER)") from None


def run_fingerprint(args: argparse.Namespace) -> int:
    try:
        identities = [(path, read_certificate(path)) for path in args.files]
    except ValueError as exc:
        raise Usage(str(exc)) from None
    if args.json:
        emit_json(
            [
                {
                    "file": str(path),
                    "fingerprint": identity.fingerprint,
                    "key_fingerprint": identity.key_fingerprint,
                    "common_name": identity.common_name,
                    "not_before": identity.not_before,
                    "not_after": identity.not_after,
                }
                for path, identity in identities
            ]
        )
        return 0
    for index, (path, identity) in enumerate(identities):
        if len(identities) > 1:
            print(("\n" if index else "") + printable(str(path)))
        print(f"certificate  {identity.fingerprint}")
        print(f"key          {identity.key_fingerprint}")
        print(f"name         {identity.name or '-'}")
        print(f"valid        {moment(identity.not_before)} to {moment(identity.not_after)} UTC")
    return 0
