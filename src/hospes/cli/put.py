"""``hospes put FILE titan://…``: upload a file (or stdin) with Titan, under TOFU and identities."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..client import (
    ClientError,
    TrustMode,
    Verdict,
)
from ..client.fetch import DEFAULT_TIMEOUT, IdentityChoice
from ..client.known_hosts import format_address
from ..client.titan import TitanClient, UploadResult
from ..gemini.escape import printable
from ..gemini.fingerprint import parse_fingerprint
from .data_dir import data_dir_option
from .errors import EXIT_OK, EXIT_USAGE, fail
from .get import (
    EXIT_CERTIFICATE_NOT_AUTHORISED,
    EXIT_CERTIFICATE_NOT_VALID,
    EXIT_CERTIFICATE_REQUIRED,
    EXIT_CODES,
    EXIT_INPUT,
    EXIT_MALFORMED,
    EXIT_PERMANENT,
    EXIT_TEMPORARY,
    exit_status,
)
from .progress import Progress

__all__ = ["register"]

_SPOOL_IN_MEMORY = 1024 * 1024
"""Bytes of standard input kept in memory before it is spooled to a temporary file."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``put`` to the ``hospes`` command."""
    lines = ["exit status: as hospes get (2x and 3x are a success):"]
    lines += [f"  {code:>3}  {text}" for code, text in EXIT_CODES.items()]
    lines += [
        "",
        "The identity sent is --identity NAME, else the one scoped to the titan:// URL,",
        "else the one scoped to the same gemini:// host and path. A 3x answer's URL is",
        "printed on stdout: where the uploaded resource can be read.",
    ]
    parser = commands.add_parser(
        "put",
        help="upload a file with Titan",
        description="Upload FILE ('-' for standard input) to a titan:// URL.",
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[data_dir_option()],
    )
    parser.add_argument("file", metavar="FILE", help="the file to upload ('-': standard input)")
    parser.add_argument("url", metavar="URL", help="a titan:// URL")
    parser.add_argument(
        "--mime",
        metavar="TYPE",
        help="the MIME type (default: guessed from FILE's name; text/gemini for stdin)",
    )
    parser.add_argument("--token", metavar="TOKEN", help="a token the server asks for")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--identity", metavar="NAME", help="present identity NAME (see hospes id)")
    who.add_argument("--no-identity", action="store_true", help="present no identity")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"for connect + handshake, each chunk, and the answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--accept-key",
        metavar="FINGERPRINT",
        help="accept and pin a changed server key, if it is exactly this one",
    )
    parser.add_argument("--ca", action="store_true", help="trust certificate authorities")
    parser.add_argument("--ca-file", type=Path, metavar="FILE", help="trust the CAs in FILE")
    parser.add_argument(
        "--verify-hostname", action="store_true", help="fail if the certificate does not name it"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.set_defaults(run=run_put)


def run_put(args: argparse.Namespace) -> int:
    """Run ``hospes put``; returns the exit status."""
    accept_key = None
    if args.accept_key is not None:
        try:
            accept_key = parse_fingerprint(args.accept_key)
        except ValueError as exc:
            return fail(str(exc), EXIT_USAGE)
    if args.timeout <= 0:
        return fail("--timeout must be more than 0", EXIT_USAGE)
    try:
        body, size = _open(args.file)
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}")
    mime = args.mime or _guess_mime(args.file)
    progress = Progress("sent", size, enabled=not args.quiet and sys.stderr.isatty())
    try:
        with body:
            result = asyncio.run(
                _put(
                    args,
                    body,
                    size=size,
                    mime=mime,
                    accept_key=accept_key,
                    progress=progress.reached,
                )
            )
    except ClientError as exc:
        progress.done()
        return fail(str(exc), exit_status(exc))
    progress.done()
    return _report(result, args)


def _open(name: str) -> tuple[BinaryIO, int]:
    """The file to upload and its size; standard input is read first (its size is needed)."""
    if name != "-":
        handle = open(name, "rb")  # noqa: SIM115 - closed by the caller
        return handle, os.fstat(handle.fileno()).st_size
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    while chunk := sys.stdin.buffer.read(64 * 1024):
        spool.write(chunk)
    size = spool.tell()
    spool.seek(0)
    return spool, size  # type: ignore[return-value]


def _guess_mime(name: str) -> str:
    if name == "-" or name.endswith((".gmi", ".gemini")):
        return "text/gemini"
    mime, encoding = mimetypes.guess_type(name, strict=False)
    return mime if mime is not None and encoding is None else "application/octet-stream"


async def _put(
    args: argparse.Namespace,
    body: BinaryIO,
    *,
    size: int,
    mime: str,
    accept_key: str | None,
    progress: Callable[[int], None],
) -> UploadResult:
    mode = TrustMode.CA if args.ca or args.ca_file is not None else TrustMode.TOFU
    client = TitanClient(
        data_dir=args.data_dir,
        mode=mode,
        ca_file=args.ca_file,
        verify_hostname=args.verify_hostname,
        timeout=args.timeout,
    )
    identity: IdentityChoice = False if args.no_identity else args.identity
    return await client.upload(
        args.url,
        body,
        size,
        mime=mime,
        token=args.token,
        identity=identity,
        accept_key=accept_key,
        progress=progress,
    )


def _report(result: UploadResult, args: argparse.Namespace) -> int:
    """Tell what happened (stderr), where the upload is (stdout), and the exit status."""

    def note(text: str) -> None:
        if not args.quiet:
            print(f"hospes: {text}", file=sys.stderr)

    url = result.url
    address = format_address(url.host, url.effective_port)
    if result.trust.verdict is Verdict.FIRST_USE:
        key = result.trust.certificate.key_fingerprint
        note(f"first contact with {address}: trusting key {key}")
    if result.identity is not None:
        note(f"sent as identity {result.identity.name}")
    meta = printable(result.meta, 1024)
    if not args.quiet:
        print(f"{result.status} {meta}".rstrip(), file=sys.stderr)
    status = result.status
    if 20 <= status <= 29:
        return EXIT_OK
    if 30 <= status <= 39:
        location = result.location
        if location is not None:
            print(printable(str(location), 1024))
        return EXIT_OK
    if 10 <= status <= 19:
        return EXIT_INPUT
    if 40 <= status <= 49:
        return EXIT_TEMPORARY
    if 50 <= status <= 59:
        return EXIT_PERMANENT
    if status == 60:
        if result.identity is None:
            note(
                "uploads here need an identity: hospes id new NAME, then "
                f"hospes id scope NAME gemini://{address}/ (or --identity NAME)"
            )
        return EXIT_CERTIFICATE_REQUIRED
    if status == 61:
        return EXIT_CERTIFICATE_NOT_AUTHORISED
    if status == 62:
        return EXIT_CERTIFICATE_NOT_VALID
    return EXIT_MALFORMED
