"""``hospes get URL``: fetch one Gemini URL; the body to stdout, everything else to stderr."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from ..client import (
    CertificateUntrusted,
    Client,
    ClientError,
    ClientFileError,
    ClientResponse,
    ConnectError,
    FetchTimeout,
    IdentityError,
    InvalidRequest,
    KeyChanged,
    MalformedResponse,
    TLSFailure,
    Trust,
    TrustMode,
    Verdict,
    load_identity_files,
    typed_url,
)
from ..client.fetch import (
    DEFAULT_MAX_PROMPTS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_TIMEOUT,
    IdentityChoice,
    InputCallback,
)
from ..client.identities import Identity, Scope
from ..client.known_hosts import format_address
from ..files import UMASK, atomic_writer
from ..gemini.escape import TerminalText, printable, shell_word
from ..gemini.fingerprint import parse_fingerprint
from ..gemini.url import URL
from .data_dir import data_dir_option
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from .progress import Progress

__all__ = ["EXIT_CODES", "exit_status", "register"]

EXIT_INPUT = 3
EXIT_REDIRECT = 4
EXIT_TEMPORARY = 5
EXIT_PERMANENT = 6
EXIT_CERTIFICATE_REQUIRED = 7
EXIT_CERTIFICATE_NOT_AUTHORISED = 8
EXIT_CERTIFICATE_NOT_VALID = 9
EXIT_CONNECT = 10
EXIT_TIMEOUT = 11
EXIT_TLS = 12
EXIT_KEY_CHANGED = 13
EXIT_UNTRUSTED = 14
EXIT_MALFORMED = 15

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success (2x); the body was written",
    EXIT_FAILURE: "local failure (cannot write the output, unreadable known-hosts file, ...)",
    EXIT_USAGE: "usage error (bad flag or URL, unknown or unusable identity, bad fingerprint)",
    EXIT_INPUT: "the server asks for input (1x) and none was given",
    EXIT_REDIRECT: "a redirect (3x) was not followed: too many, a loop, another scheme or host",
    EXIT_TEMPORARY: "temporary failure (4x)",
    EXIT_PERMANENT: "permanent failure (5x)",
    EXIT_CERTIFICATE_REQUIRED: "client certificate required (60)",
    EXIT_CERTIFICATE_NOT_AUTHORISED: "client certificate not authorised (61)",
    EXIT_CERTIFICATE_NOT_VALID: "client certificate not valid (62)",
    EXIT_CONNECT: "cannot connect (unknown host, connection refused, unreachable)",
    EXIT_TIMEOUT: "timeout (connecting, handshake, header or body)",
    EXIT_TLS: "TLS failure (handshake failed, connection broken during it)",
    EXIT_KEY_CHANGED: "the server's key is not the pinned one: refused, nothing was sent",
    EXIT_UNTRUSTED: "certificate not trusted (--ca validation or --verify-hostname failed)",
    EXIT_MALFORMED: "malformed or incomplete response (bad header, closed early, broken body)",
    EXIT_INTERRUPTED: "interrupted",
}

_ERROR_EXITS: tuple[tuple[type[ClientError], int], ...] = (
    (KeyChanged, EXIT_KEY_CHANGED),
    (CertificateUntrusted, EXIT_UNTRUSTED),
    (ConnectError, EXIT_CONNECT),
    (FetchTimeout, EXIT_TIMEOUT),
    (TLSFailure, EXIT_TLS),
    (MalformedResponse, EXIT_MALFORMED),
    (InvalidRequest, EXIT_USAGE),
    (IdentityError, EXIT_USAGE),
    (ClientFileError, EXIT_FAILURE),
)


def _epilog() -> str:
    lines = ["exit status:"]
    lines.extend(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
    lines += [
        "",
        "URL: gemini://HOST[:PORT]/PATH, or HOST[:PORT]/PATH without the scheme.",
        "The server's key is pinned on first use (TOFU); a renewed certificate with the same",
        "key is accepted, a different key is refused before anything is sent.",
        "Files: $HOSPES_DATA_DIR, else $XDG_DATA_HOME/hospes (known hosts, identities).",
    ]
    return "\n".join(lines)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``get`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "get",
        help="fetch a Gemini URL",
        description="Fetch URL: the body goes to stdout, the header and notes to stderr.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[data_dir_option()],
    )
    parser.add_argument(
        "url", metavar="URL", help="a gemini:// URL, or HOST[:PORT]/PATH (gemini:// implied)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the body to FILE (atomically; its directory is checked before connecting)",
    )
    parser.add_argument(
        "--input",
        metavar="TEXT",
        help="answer to a 1x prompt of the URL's host (never sent to another host)",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--identity", metavar="NAME", help="present identity NAME for this URL (see hospes id)"
    )
    who.add_argument(
        "--no-identity", action="store_true", help="present no identity, even where one is scoped"
    )
    who.add_argument(
        "--cert",
        type=Path,
        metavar="FILE",
        help="present this PEM certificate for this URL (checked before connecting)",
    )
    parser.add_argument(
        "--key", type=Path, metavar="FILE", help="the private key of --cert, if not in its FILE"
    )
    parser.add_argument(
        "--max-redirects",
        type=int,
        default=DEFAULT_MAX_REDIRECTS,
        metavar="N",
        help=f"follow at most N redirects (default {DEFAULT_MAX_REDIRECTS}; 0: none)",
    )
    parser.add_argument(
        "--no-cross-host", action="store_true", help="do not follow a redirect to another host"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"for connect + handshake + header, then per body read (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--verify-hostname",
        action="store_true",
        help="fail if the certificate does not name the host (TOFU alone does not require it)",
    )
    parser.add_argument(
        "--ca",
        action="store_true",
        help="trust certificate authorities (the system's) instead of TOFU pins",
    )
    parser.add_argument(
        "--ca-file", type=Path, metavar="FILE", help="trust the CAs in FILE (implies --ca)"
    )
    parser.add_argument(
        "--accept-key",
        metavar="FINGERPRINT",
        help="accept and pin a changed server key, if it is exactly this one",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="write the body to a terminal as it is (no escaping, binary allowed)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="certificate and trust details"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.set_defaults(run=run_get)


class _Reporter:
    """Writes the header and notes to stderr (errors go through :func:`fail`)."""

    def __init__(self, *, verbose: bool, quiet: bool) -> None:
        self.verbose = verbose and not quiet
        self.quiet = quiet

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"hospes: {message}", file=sys.stderr)

    def detail(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", file=sys.stderr)


def run_get(args: argparse.Namespace) -> int:
    """Run ``hospes get``; returns the exit status.

    Everything that can be checked locally is checked before connecting: the
    URL, the flags, the certificate given, the output file's directory.
    """
    report = _Reporter(verbose=args.verbose, quiet=args.quiet)
    accept_key = None
    if args.accept_key is not None:
        try:
            accept_key = parse_fingerprint(args.accept_key)
        except ValueError as exc:
            return fail(str(exc), EXIT_USAGE)
    if args.max_redirects < 0 or args.timeout <= 0:
        return fail("--max-redirects must be 0 or more and --timeout more than 0", EXIT_USAGE)
    if args.ca_file is not None and not args.ca_file.is_file():
        return fail(f"--ca-file {args.ca_file}: no such file", EXIT_USAGE)
    if args.key is not None and args.cert is None:
        return fail("--key goes with --cert FILE", EXIT_USAGE)
    try:
        url = typed_url(args.url)
        identity: IdentityChoice = False if args.no_identity else args.identity
        if args.cert is not None:
            identity = load_identity_files(args.cert, args.key)
    except ClientError as exc:
        return _client_failure(exc, args)
    if args.output is not None and str(args.output) != "-":
        problem = _output_problem(args.output)
        if problem is not None:
            return fail(f"cannot write {args.output}: {problem}", EXIT_FAILURE)
    try:
        return asyncio.run(_get(args, url, identity, report, accept_key))
    except ClientError as exc:
        return _client_failure(exc, args, url)
    except BrokenPipeError:
        # The reader went away (``hospes get URL | head``): not worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILURE


def _output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written, as far as can be told without writing it."""
    directory = path.parent
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        return f"the directory {directory} {what}"
    if path.is_dir():
        return "it is a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the directory {directory} is not writable"
    return None


async def _get(
    args: argparse.Namespace,
    url: URL,
    identity: IdentityChoice,
    report: _Reporter,
    accept_key: str | None,
) -> int:
    mode = TrustMode.CA if args.ca or args.ca_file is not None else TrustMode.TOFU
    client = Client(
        data_dir=args.data_dir,
        mode=mode,
        ca_file=args.ca_file,
        verify_hostname=args.verify_hostname,
        timeout=args.timeout,
        max_redirects=args.max_redirects,
        follow_cross_host=not args.no_cross_host,
        max_prompts=DEFAULT_MAX_PROMPTS,
    )
    answer: str | InputCallback | None = args.input
    if answer is None and sys.stdin.isatty() and sys.stderr.isatty():
        answer = _ask
    response = await client.open(url, identity=identity, input=answer, accept_key=accept_key)
    try:
        _describe(response, report)
        return await _finish(response, args, report)
    finally:
        response.close()


def _ask(prompt: str, sensitive: bool, url: URL) -> str | None:
    """Ask the person at the terminal, saying which host asks (the prompt is escaped)."""
    address = format_address(url.host, url.effective_port)
    question = f"[{printable(address, 300)}] {printable(prompt, 400) or 'Input'}: "
    try:
        if sensitive:
            return getpass.getpass(question, stream=sys.stderr)
        sys.stderr.write(question)
        sys.stderr.flush()
        line = sys.stdin.readline()
    except EOFError:
        return None
    return line.rstrip("\r\n") if line else None


def _shown_url(response: ClientResponse) -> URL:
    """The URL of ``response`` as messages may show it: without a sensitive answer.

    After a ``11`` prompt, the next request carries the answer as its query;
    it was typed without echo, so no message prints it back (the path is
    enough to say which page).
    """
    url = response.url
    if response.hops and response.hops[-1].status == 11 and url.query is not None:
        return url.with_path(url.path)
    return url


def _url_text(response: ClientResponse) -> str:
    """:func:`_shown_url`, escaped, with ``?(hidden)`` where an answer was left out."""
    shown = _shown_url(response)
    hidden = "?(hidden)" if shown.query != response.url.query else ""
    return printable(str(shown), 300) + hidden


def _report_trust(url: URL, trust: Trust, report: _Reporter) -> None:
    """Tell what the trust check of one exchange did that the user should know of."""
    certificate = trust.certificate
    address = format_address(url.host, url.effective_port)
    if trust.verdict is Verdict.FIRST_USE:
        report.note(f"first contact with {address}: trusting key {certificate.key_fingerprint}")
    elif trust.verdict is Verdict.RENEWED:
        report.note(
            f"{address} renewed its certificate (same key): now {certificate.fingerprint}, "
            f"valid until {certificate.not_after:%Y-%m-%d}"
        )
    elif trust.verdict is Verdict.KEY_ACCEPTED:
        report.note(f"{address}: new key {certificate.key_fingerprint} accepted and pinned")
    if trust.validity_problem is not None:
        report.note(f"the certificate of {address} is {trust.validity_problem} (key pinned: used)")


def _describe(response: ClientResponse, report: _Reporter) -> None:
    """Tell what the trust check concluded, the redirects, and the header."""
    trust = response.trust
    certificate = trust.certificate
    address = format_address(response.url.host, response.url.effective_port)
    redirects = iter(response.redirects)
    for hop in response.hops:
        _report_trust(hop.url, hop.trust, report)
        if not 30 <= hop.status <= 39:
            continue
        redirect = next(redirects, None)
        if redirect is None:  # pragma: no cover - every 3x hop is a redirect
            continue
        if redirect.cross_host:
            report.note(f"redirected to another host: {printable(str(redirect.target), 300)}")
        else:
            report.detail(f"redirect {redirect.status} to {printable(str(redirect.target), 300)}")
    _report_trust(response.url, trust, report)
    report.detail(f"server {address}: {trust.verdict.value}")
    report.detail(f"key          {certificate.key_fingerprint} ({certificate.key_type})")
    report.detail(f"certificate  {certificate.fingerprint}")
    report.detail(f"names        {certificate.label}")
    report.detail(
        f"valid        {certificate.not_before:%Y-%m-%d} to {certificate.not_after:%Y-%m-%d}"
    )
    if trust.previous is not None:
        report.detail(
            f"known since  {trust.previous.first_seen:%Y-%m-%d}, "
            f"connections before this one: {trust.previous.times_seen}"
        )
    report.detail(
        f"hostname     {'matches' if trust.hostname_matches else 'NOT named in the certificate'}"
        + ("" if trust.hostname_matches else " (not required: the pin is the trust anchor)")
    )
    if response.identity is not None:
        report.detail(f"identity     {response.identity.name} ({response.identity.fingerprint})")
    if response.withheld is not None:
        report.note(
            f"identity {response.withheld.name} was not sent to "
            f"{_url_text(response)}: outside the URL asked for and its scopes"
        )
    if not report.quiet:
        print(f"{response.status} {printable(response.meta, 1024)}".rstrip(), file=sys.stderr)


async def _finish(response: ClientResponse, args: argparse.Namespace, report: _Reporter) -> int:
    status = response.status
    url = _url_text(response)
    if 20 <= status <= 29:
        code = await _write_body(response, args, report)
        if code == EXIT_OK and response.clean_close is False:
            report.detail("the body ended without TLS close_notify: it may be truncated")
        return code
    meta = printable(response.meta, 1024)
    if 10 <= status <= 19:
        if response.unanswered is not None:
            return fail(f"{url} asks for input ({meta}): {response.unanswered}", EXIT_INPUT)
        return fail(f"{url} asks for input ({meta}); answer with --input TEXT", EXIT_INPUT)
    if 30 <= status <= 39:
        return fail(f"redirect not followed: {response.stopped or 'unknown reason'}", EXIT_REDIRECT)
    if 40 <= status <= 59:
        code = EXIT_TEMPORARY if status < 50 else EXIT_PERMANENT
        if report.quiet:  # otherwise the header line already said it
            return fail(f"{url}: {status} {meta}".rstrip(), code)
        return code
    return _certificate_status(response, args)


def _certificate_status(response: ClientResponse, args: argparse.Namespace) -> int:
    """Explain a 6x: what to do, with the commands to type."""
    status = response.status
    identity = response.identity
    url = _shown_url(response)
    directory = Scope.of(url.with_path(url.path[: url.path.rfind("/") + 1] or "/"))
    scope = str(directory) if directory is not None else f"gemini://{url.netloc}/"
    data_dir = _data_dir_flag(args)
    make = (
        f"create an identity and let it be sent here:\n"
        f"  hospes id new NAME{data_dir}\n"
        f"  hospes id scope NAME {shell_word(scope, url=True)}{data_dir}\n"
        f"or use one for this request only: hospes get --identity NAME{data_dir} "
        f"{shell_word(str(url), url=True)}"
    )
    if status == 60:
        if identity is None:
            message = f"this page requires a client certificate; {make}"
        else:
            message = f"the server asked for a certificate although {identity.name} was sent"
        return fail(message, EXIT_CERTIFICATE_REQUIRED)
    if status == 61:
        if identity is None:
            message = f"this page requires an authorised client certificate; {make}"
        else:
            message = (
                f"identity {identity.name} ({identity.fingerprint}) is not authorised here "
                f"({printable(response.meta, 300)}); ask the capsule's operator, "
                "or use another identity (--identity NAME)"
            )
        return fail(message, EXIT_CERTIFICATE_NOT_AUTHORISED)
    if identity is None:
        message = f"the server says the certificate is not valid; {make}"
    elif (problem := identity.validity_problem()) is not None:
        # A new key would be a stranger to the server: renew over the same key.
        if identity.stored:
            how = f"hospes id renew {identity.name}{data_dir}"
        else:
            how = (
                f"hospes id import NAME {shell_word(str(identity.cert_path))}{data_dir}, "
                f"then hospes id renew NAME{data_dir}"
            )
        message = (
            f"the server does not accept {_who(identity)}: {printable(response.meta, 300)}\n"
            f"its certificate is {problem}: renew it with the same key (a new key would be "
            f"a stranger to the server, and lose what is tied to this one):\n  {how}"
        )
    else:
        message = (
            f"the server does not accept {_who(identity)}: {printable(response.meta, 300)}"
            + (f"; see hospes id show {identity.name}{data_dir}" if identity.stored else "")
        )
    return fail(message, EXIT_CERTIFICATE_NOT_VALID)


def _who(identity: Identity) -> str:
    if identity.stored:
        return f"identity {identity.name}"
    return f"the certificate {identity.cert_path}"


def _data_dir_flag(args: argparse.Namespace) -> str:
    return "" if args.data_dir is None else f" --data-dir {shell_word(str(args.data_dir))}"


# -- the body ---------------------------------------------------------------------------------


async def _write_body(response: ClientResponse, args: argparse.Namespace, report: _Reporter) -> int:
    mime = response.mime_type or ""
    to_file = args.output is not None and str(args.output) != "-"
    terminal = not to_file and sys.stdout.isatty() and not args.raw
    if terminal and not mime.startswith("text/"):
        return fail(
            f"not writing a {printable(mime, 100)} body to the terminal; "
            "use -o FILE, a redirection, or --raw"
        )
    if terminal:
        text = TerminalText(response.charset)
        if text.fallback:
            report.note(
                f"the server says charset={printable(response.charset, 60)}, "
                "which is not a text encoding: shown as UTF-8"
            )
        async for chunk in response.chunks():
            sys.stdout.write(text.feed(chunk))
        sys.stdout.write(text.feed(b"", final=True))
        sys.stdout.flush()
        return EXIT_OK
    progress = Progress("received", enabled=not report.quiet and sys.stderr.isatty())
    try:
        if to_file:
            return await _write_file(response, args.output, progress)
        out = sys.stdout.buffer
        async for chunk in response.chunks():
            out.write(chunk)
            progress.advance(len(chunk))
        out.flush()
        return EXIT_OK
    finally:
        progress.done()


async def _write_file(response: ClientResponse, path: Path, progress: Progress) -> int:
    """Stream the body to ``path``, which appears only once the body is complete.

    The file is created as any new file would be (0o666 less the umask); on
    any failure, the server's included, ``path`` is left as it was.
    """
    try:
        with atomic_writer(path, mode=UMASK) as handle:
            async for chunk in response.chunks():
                handle.write(chunk)
                progress.advance(len(chunk))
    except OSError as exc:
        progress.done()  # before the message, so that it starts on a clean line
        return fail(f"cannot write {path}: {exc.strerror or exc}")
    return EXIT_OK


# -- errors -----------------------------------------------------------------------------------


def exit_status(error: ClientError) -> int:
    """The exit status of a failed request (a fetch, or an upload with ``hospes put``)."""
    return next((code for kind, code in _ERROR_EXITS if isinstance(error, kind)), EXIT_FAILURE)


def _client_failure(exc: ClientError, args: argparse.Namespace, url: URL | None = None) -> int:
    """Report a failed fetch; the exit status says what kind of failure it was."""
    status = exit_status(exc)
    if isinstance(exc, KeyChanged) and url is not None:
        return fail(_key_changed_message(exc, url, _data_dir_flag(args)), status)
    return fail(str(exc), status)


def _key_changed_message(exc: KeyChanged, url: URL, data_dir_flag: str) -> str:
    """What a user must know, and may type, when a server's key changed."""
    pinned, presented = exc.pinned, exc.presented
    address = format_address(exc.host, exc.port)
    lines = [
        f"REFUSED: {address} presented a different key than the one pinned for it; "
        "nothing was sent (no request, no client certificate)",
        f"  pinned key     {pinned.key_fingerprint}",
        f"                 first seen {pinned.first_seen:%Y-%m-%d %H:%M}, "
        f"last seen {pinned.last_seen:%Y-%m-%d %H:%M} UTC, "
        f"{pinned.times_seen} time{'' if pinned.times_seen == 1 else 's'}",
        f"                 its certificate {pinned.cert_fingerprint}, "
        f"valid until {pinned.not_after:%Y-%m-%d}",
        f"  presented key  {presented.key_fingerprint} ({presented.key_type})",
        f"                 certificate {presented.fingerprint}",
        f"                 valid {presented.not_before:%Y-%m-%d} to "
        f"{presented.not_after:%Y-%m-%d}, {presented.label}",
        "Someone may be intercepting the connection, or the operator replaced the server's key.",
        "Check the new key with the operator through another channel, then accept it with:",
        f"  hospes known-hosts trust {shell_word(address)} "
        f"--key {presented.key_fingerprint}{data_dir_flag}",
    ]
    if (exc.host, exc.port) == (url.host, url.effective_port):
        lines.append(
            "or with this request: "
            f"hospes get --accept-key {presented.key_fingerprint}{data_dir_flag} "
            f"{shell_word(str(url), url=True)}"
        )
    else:  # --accept-key applies to the host typed only, not to one reached by a redirect
        lines.append(f"({address} was reached through a redirect from {url.netloc})")
    return "\n".join(lines)
