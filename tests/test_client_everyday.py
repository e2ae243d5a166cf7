"""``hospes get`` and ``hospes id`` for everyday use (issue 11), through the real CLI.

Every test runs the command line against a real hospes server over TLS: renewing an
identity keeps an account, URLs without a scheme, one-off certificates, unusable keys
refused up front, scopes, prompts asked again, ``-o`` checked before connecting, tables.
"""

from __future__ import annotations

import datetime as dt
import getpass
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import CertFiles, RunningServer, identity_of
from hospes.app.request import Request
from hospes.app.response import Response
from hospes.cli import main
from hospes.cli.output import table, width
from hospes.client import IdentityStore, KnownHosts
from hospes.client.certificate import ServerCertificate
from hospes.client.titan import TitanClient
from hospes.config import Config, HostConfig
from hospes.gemini.url import parse_url
from hospes.selfsigned import (
    load_certificate,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


def store(data_dir: Path) -> IdentityStore:
    return IdentityStore(data_dir / "identities")


class Recorder:
    """A capsule that remembers (path, query, fingerprint) of every request it answered."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, str | None]] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append((request.path, request.query, request.fingerprint))
        if request.path == "/guess":
            if request.query != "42":
                return Response.input("Guess the number")
            return Response.success("right\n")
        if request.path == "/vault":
            if request.query != "sesame":
                return Response.sensitive_input("Passphrase")
            return Response.success("open\n")
        if request.path == "/strict":
            if request.query is None:
                return Response.sensitive_input("Passphrase")
            return Response.permanent_failure("no entry")
        if request.path == "/secret":
            return (
                Response.sensitive_input("Password")
                if request.query is None
                else (Response.success(f"{len(request.query)} characters\n"))
            )
        who = request.identity.fingerprint if request.identity is not None else "nobody"
        return Response.success(f"{request.path} for {who}\n")


def start(serve, capsule: Recorder) -> RunningServer:
    return serve(capsule, config=Config(hosts=[HostConfig("localhost")]))


def hospes(capsys, *argv: object) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


# -- id renew: an account survives ------------------------------------------------------------


def register(server: RunningServer, files: CertFiles, name: str) -> None:
    """Create the account ``name`` for a certificate, as the register page would."""
    found = server.server.dispatcher.store
    assert found is not None
    now = dt.datetime.now(dt.UTC)
    server.call(lambda: found.register(name, identity_of(files), now))


@pytest.mark.parametrize(
    ("start_offset", "reason"),
    [(-400, "certificate expired on"), (30, "certificate is not valid before")],
    ids=["expired", "not-yet-valid"],
)
def test_an_account_survives_id_renew(demo, certs, data_dir, capsys, start_offset, reason):
    original = certs.make("alice")
    register(demo, original, "alice")
    members = demo.url("/members/")
    # The same key in a certificate outside its dates: what a lapsed identity looks like.
    lapsed = certs.make(
        "alice",
        key=original.private_key,
        not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=start_offset),
        days=30,
    )
    assert hospes(capsys, "id", "import", "alice", lapsed.cert, lapsed.key)[0] == 0
    before = store(data_dir).get("alice")

    status, _, err = hospes(capsys, "get", "--identity", "alice", members)
    assert status == 9
    # The server's 62 says how to keep the account; the client names its command.
    assert reason in err
    assert "renew it with the same key in your client" in err
    assert "a new key is a stranger here and loses your account" in err
    assert "with hospes: hospes id renew NAME" in err
    assert "hospes:   hospes id renew alice\n" in err

    status, _, err = hospes(capsys, "id", "renew", "alice", "--days", "90", "--cn", "Alice A.")
    assert status == 0
    assert f"same key {before.key_fingerprint}" in err
    after = store(data_dir).get("alice")
    assert after.key_fingerprint == before.key_fingerprint
    assert after.fingerprint != before.fingerprint
    assert after.certificate.serial_number != before.certificate.serial_number
    assert after.validity_problem() is None
    assert after.not_after - after.not_before == dt.timedelta(days=90)
    assert after.common_name == "Alice A."
    [backup] = store(data_dir).backups("alice")
    assert load_certificate(backup) == before.certificate  # the old one, kept

    status, out, _ = hospes(capsys, "get", "--identity", "alice", members)
    assert status == 0
    # The same member, recognised by the key (the demo greets a new account without "back").
    assert re.search(r"Welcome(?: back)?, alice\.", out), out

    assert hospes(capsys, "id", "show", "alice")[1].count(str(backup)) == 1
    status, _, err = hospes(capsys, "id", "renew", "alice", "--prune")
    assert (status, "1 old certificate(s) deleted" in err) == (0, True)
    assert store(data_dir).backups("alice") == []
    assert not backup.exists()
    assert hospes(capsys, "id", "renew", "alice", "--prune", "--days", "3")[0] == 2


def test_a_sha1_identity_is_told_to_renew_and_survives_it(demo, certs, data_dir, capsys, tmp_path):
    """A certificate signed with SHA-1 (old tools made them): the key is fine, the signature
    is not.  hospes' server answers 62 naming the renewal, not a new key (which would lose the
    account); the client warns at import; id renew signs again with SHA-256 and the account
    is still there."""
    original = certs.make("carol")
    register(demo, original, "carol")
    # cryptography no longer signs with SHA-1; OpenSSL still does, over the same key.
    cert_path = tmp_path / "carol-sha1.crt"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-new", "-key", original.key, "-sha1"),
            *("-days", "300", "-subj", "/CN=carol", "-out", cert_path),
        ],
        check=True,
        capture_output=True,
    )
    assert load_certificate(cert_path).signature_hash_algorithm.name == "sha1"
    status, _, err = hospes(capsys, "id", "import", "carol", cert_path, original.key)
    assert status == 0
    assert "signed with SHA-1" in err
    assert "hospes id renew carol" in err

    status, _, err = hospes(capsys, "get", "--identity", "carol", demo.url("/members/"))
    assert status == 9
    assert "certificate is signed with SHA-1, which is broken" in err
    assert "renew it with the same key in your client" in err
    assert "create an ECDSA certificate" not in err  # a new key would be a stranger

    assert hospes(capsys, "id", "renew", "carol")[0] == 0
    renewed = store(data_dir).get("carol")
    assert isinstance(renewed.certificate.signature_hash_algorithm, hashes.SHA256)
    status, out, _ = hospes(capsys, "get", "--identity", "carol", demo.url("/members/"))
    assert status == 0
    assert re.search(r"Welcome(?: back)?, carol\.", out), out


def test_renew_keeps_the_subject_and_validity_length_and_backs_up_each_time(data_dir, capsys):
    assert hospes(capsys, "id", "new", "bob", "--cn", "Bob", "--days", "30")[0] == 0
    first = store(data_dir).get("bob")
    assert hospes(capsys, "id", "renew", "bob")[0] == 0
    assert hospes(capsys, "id", "renew", "bob")[0] == 0
    third = store(data_dir).get("bob")
    assert third.common_name == "Bob"
    assert third.certificate.subject == first.certificate.subject
    assert third.not_after - third.not_before == dt.timedelta(days=30)
    assert third.key_fingerprint == first.key_fingerprint
    backups = store(data_dir).backups("bob")
    assert [path.name for path in backups] == ["bob.crt.1", "bob.crt.2"]
    assert load_certificate(backups[0]) == first.certificate
    assert store(data_dir).names() == ["bob"]  # backups are not identities
    assert hospes(capsys, "id", "renew", "nobody")[0] == 2
    assert hospes(capsys, "id", "renew", "bob", "--days", "0")[0] == 2
    assert hospes(capsys, "id", "delete", "bob", "--yes")[0] == 0
    assert list((data_dir / "identities").iterdir()) == []


# -- URLs as people type them -----------------------------------------------------------------


def test_a_url_without_a_scheme_is_gemini(serve, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    status, out, _ = hospes(capsys, "get", "-q", f"localhost:{running.port}/page")
    assert (status, out) == (0, "/page for nobody\n")
    status, out, _ = hospes(capsys, "get", "-q", f"LOCALHOST:{running.port}")
    assert (status, out) == (0, "/ for nobody\n")  # no path: the root
    status, out, _ = hospes(capsys, "get", "-q", f"//localhost:{running.port}/x?y")
    assert (status, out) == (0, "/x for nobody\n")
    assert [query for _, query, _ in capsule.requests] == [None, None, "y"]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("/page", "'/page' has no host: type gemini://HOST[:PORT]/PATH or HOST[:PORT]/PATH"),
        ("./page", "has no host"),
        ("http://localhost/", "not a gemini: URL (http:); type gemini://HOST[:PORT]/PATH"),
        ("mailto:someone@example.org", "not a gemini: URL (mailto:)"),
        ("localhost:port/", "not a gemini: URL (localhost:)"),
        ("gemini:nothing", "the URL has no host"),
        ("", "empty URL"),
    ],
)
def test_other_urls_without_a_scheme_are_clear_errors(capsys, typed, message):
    status, _, err = hospes(capsys, "get", typed)
    assert status == 2
    assert message in err
    assert "Traceback" not in err


# -- --cert/--key, and keys the TLS library refuses ------------------------------------------


def test_cert_and_key_for_one_request(serve, certs, tmp_path, data_dir, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    mine = certs.make("once")
    fingerprint = identity_of(mine).fingerprint
    url = running.url("/page")
    status, out, _ = hospes(capsys, "get", "-q", "--cert", mine.cert, "--key", mine.key, url)
    assert (status, out) == (0, f"/page for {fingerprint}\n")
    # One file holding both, as `hospes id export` writes it.
    both = tmp_path / "both.pem"
    both.write_bytes(mine.cert.read_bytes() + mine.key.read_bytes())
    both.chmod(0o600)
    assert hospes(capsys, "get", "-q", "--cert", both, url)[1] == f"/page for {fingerprint}\n"
    # Not kept anywhere, and only for the URL asked for.
    assert store(data_dir).names() == []
    assert hospes(capsys, "get", "-q", url)[1] == "/page for nobody\n"

    status, _, err = hospes(capsys, "get", "--key", mine.key, url)
    assert (status, "--key goes with --cert FILE" in err) == (2, True)
    other = certs.make("other")
    status, _, err = hospes(capsys, "get", "--cert", mine.cert, "--key", other.key, url)
    assert (status, "does not belong to" in err) == (2, True)
    mine.key.chmod(0o644)
    status, _, err = hospes(capsys, "get", "--cert", mine.cert, "--key", mine.key, url)
    assert (status, "readable by other users" in err) == (2, True)
    status, _, err = hospes(capsys, "get", "--cert", tmp_path / "missing.pem", url)
    assert (status, "cannot read" in err) == (2, True)
    assert len(capsule.requests) == 3  # the refused ones never connected


def odd_key_files(directory: Path, name: str, key) -> CertFiles:
    """A certificate with a weak or odd key, as PEM files."""
    cert = self_signed_certificate(key, name)
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key", key)
    write_certificate(files.cert, cert)
    write_private_key(files.key, key)
    return files


UNUSABLE = [
    ("rsa1024", lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits"),
    ("p224", lambda: ec.generate_private_key(ec.SECP224R1()), "on the curve P-224"),
    ("k256", lambda: ec.generate_private_key(ec.SECP256K1()), "on the curve secp256k1"),
]


@pytest.mark.parametrize(("name", "make_key", "reason"), UNUSABLE, ids=[u[0] for u in UNUSABLE])
def test_unusable_keys_are_refused_before_connecting(
    serve, tmp_path, data_dir, capsys, name, make_key, reason
):
    running = start(serve, Recorder())
    files = odd_key_files(tmp_path, name, make_key())
    status, _, err = hospes(capsys, "get", "--cert", files.cert, "--key", files.key, running.url())
    assert status == 2
    assert reason in err
    assert "Traceback" not in err
    assert running.server.stats.accepted == 0  # refused before connecting
    # Nor can it become an identity.
    status, _, err = hospes(capsys, "id", "import", name, files.cert, files.key)
    assert status == 2
    assert f"cannot be used as an identity: its {reason.split(' of ')[0]}" in err or reason in err
    assert store(data_dir).names() == []
    # One imported before this check existed is refused at use, with the reason.
    directory = data_dir / "identities"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_certificate(directory / f"{name}.crt", load_certificate(files.cert))
    write_private_key(directory / f"{name}.key", files.private_key)
    status, _, err = hospes(capsys, "get", "--identity", name, running.url())
    assert (status, f"identity {name} cannot be used" in err, reason in err) == (2, True, True)
    assert running.server.stats.accepted == 0


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_every_key_id_new_makes_is_usable(serve, data_dir, capsys, kind):
    capsule = Recorder()
    running = start(serve, capsule)
    assert hospes(capsys, "id", "new", kind, "--key", kind)[0] == 0
    fingerprint = store(data_dir).get(kind).fingerprint
    status, out, _ = hospes(capsys, "get", "-q", "--identity", kind, running.url("/x"))
    assert (status, out) == (0, f"/x for {fingerprint}\n")


# -- scopes ------------------------------------------------------------------------------------


def test_most_specific_scope_wins_and_scopes_are_not_shared(serve, data_dir, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    root, app = running.url("/"), running.url("/app/")
    for name in ("home", "work"):
        assert hospes(capsys, "id", "new", name)[0] == 0
    home, work = (store(data_dir).get(name).fingerprint for name in ("home", "work"))
    assert hospes(capsys, "id", "scope", "home", root)[0] == 0
    assert hospes(capsys, "id", "scope", "work", app)[0] == 0
    assert hospes(capsys, "get", "-q", running.url("/app/x"))[1] == f"/app/x for {work}\n"
    assert hospes(capsys, "get", "-q", running.url("/apple"))[1] == f"/apple for {home}\n"

    # The same scope (however it is written) on a second identity is refused...
    spelled = f"gemini://LOCALHOST:{running.port}/%61pp/./"
    status, _, err = hospes(capsys, "id", "scope", "home", spelled)
    assert status == 2
    assert f"{app} is already a scope of identity work" in err
    assert f"hospes id scope home {app} --replace" in err
    assert hospes(capsys, "id", "scope", "work", spelled)[2] == f"work was already sent to {app}\n"
    # ... unless it is moved.
    status, _, err = hospes(capsys, "id", "scope", "home", spelled, "--replace")
    assert (status, err) == (0, f"home is now sent to {app} (instead of work)\n")
    assert store(data_dir).get("work").scopes == ()
    assert hospes(capsys, "get", "-q", running.url("/app/x"))[1] == f"/app/x for {home}\n"

    # id list: each scope and the identity sent there, the narrower after the wider.
    assert hospes(capsys, "id", "scope", "work", running.url("/app/admin/"))[0] == 0
    status, out, _ = hospes(capsys, "id", "list")
    scopes = out.split("\n\n")[1].splitlines()
    assert scopes[0].split() == ["SCOPE", "SENT", "NOTE"]
    assert [line.split()[:2] for line in scopes[1:]] == [
        [root, "home"],
        [app, "home"],
        [running.url("/app/admin/"), "work"],
    ]
    assert scopes[3].endswith(f"instead of home (inside {app})")
    data = json.loads(hospes(capsys, "id", "list", "--json")[1])
    assert [(item["scope"], item["identity"]) for item in data["scopes"]] == [
        (root, "home"),
        (app, "home"),
        (running.url("/app/admin/"), "work"),
    ]
    assert data["scopes"][2]["within"] == {"scope": app, "identity": "home"}
    assert {item["name"]: item["scopes"] for item in data["identities"]} == {
        "home": [root, app],
        "work": [running.url("/app/admin/")],
    }


def test_id_list_notes_only_scopes_that_really_cover_one_another(serve, data_dir, capsys):
    """A titan:// scope never covers gemini:// URLs: id list must not say it does."""
    capsule = Recorder()
    running = start(serve, capsule)
    for name in ("home", "work", "editor"):
        assert hospes(capsys, "id", "new", name)[0] == 0
    work = store(data_dir).get("work").fingerprint
    uploads = f"titan://localhost:{running.port}/"
    wiki = running.url("/wiki/")
    drafts = f"titan://localhost:{running.port}/wiki/drafts/"
    assert hospes(capsys, "id", "scope", "home", uploads)[0] == 0
    assert hospes(capsys, "id", "scope", "work", wiki)[0] == 0
    assert hospes(capsys, "id", "scope", "editor", drafts)[0] == 0

    status, out, _ = hospes(capsys, "id", "list")
    assert status == 0
    rows = {line.split()[0]: line for line in out.split("\n\n")[1].splitlines()[1:]}
    # What is really sent: work under /wiki/, and nobody elsewhere (home is for uploads).
    assert hospes(capsys, "get", "-q", running.url("/wiki/x"))[1] == f"/wiki/x for {work}\n"
    assert hospes(capsys, "get", "-q", running.url("/x"))[1] == "/x for nobody\n"
    assert rows[wiki].split() == [wiki, "work"]  # not "instead of home (inside titan://…)"
    # An upload under drafts/ would get home (titan:// scopes first) if editor had no scope.
    titan = TitanClient(data_dir=data_dir)
    chosen = titan.identity_for(parse_url(drafts + "page.gmi"), None)
    assert chosen is not None and chosen.name == "editor"
    assert rows[drafts].endswith(f"instead of home (inside {uploads})")
    data = json.loads(hospes(capsys, "id", "list", "--json")[1])
    within = {item["scope"]: item["within"] for item in data["scopes"]}
    assert within == {
        uploads: None,
        wiki: None,
        drafts: {"scope": uploads, "identity": "home"},
    }
    # Without home's titan:// scope, an upload there falls back on work's gemini:// one.
    assert hospes(capsys, "id", "unscope", "home", "--all")[0] == 0
    chosen = titan.identity_for(parse_url(f"titan://localhost:{running.port}/wiki/x"), None)
    assert chosen is not None and chosen.name == "work"
    rows = {
        line.split()[0]: line
        for line in hospes(capsys, "id", "list")[1].split("\n\n")[1].splitlines()[1:]
    }
    assert rows[drafts].endswith(f"instead of work (inside {wiki})")


def test_id_list_shows_long_scopes_whole(serve, data_dir, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    assert hospes(capsys, "id", "new", "deep")[0] == 0
    path = "/" + "/".join(f"level-{n:02d}" for n in range(20)) + "/"
    deep = running.url(path)
    assert len(deep) > 200
    assert hospes(capsys, "id", "scope", "deep", deep)[0] == 0
    out = hospes(capsys, "id", "list")[1]
    assert "…" not in out
    [row] = out.split("\n\n")[1].splitlines()[1:]
    assert row.split() == [deep, "deep"]  # what is shown is what is matched
    fingerprint = store(data_dir).get("deep").fingerprint
    assert hospes(capsys, "get", "-q", deep + "page")[1] == f"{path}page for {fingerprint}\n"


def test_id_new_with_a_taken_scope_creates_nothing(serve, data_dir, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    root = running.url("/")
    assert hospes(capsys, "id", "new", "alice", "--scope", root)[0] == 0
    alice = store(data_dir).get("alice").fingerprint
    spelled = f"gemini://LOCALHOST:{running.port}/./"
    status, _, err = hospes(
        capsys, "id", "new", "bob", "--scope", running.url("/b/"), "--scope", spelled
    )
    assert status == 2
    assert f"{root} is already a scope of identity alice" in err
    assert "Nothing was created" in err
    assert f"hospes id scope bob {root} --replace" in err
    assert store(data_dir).names() == ["alice"]  # no bob, key or scope file, to trip over
    assert sorted(path.name for path in (data_dir / "identities").iterdir()) == [
        "alice.crt",
        "alice.key",
        "alice.scope",
    ]
    assert hospes(capsys, "get", "-q", running.url("/b/x"))[1] == f"/b/x for {alice}\n"
    # The name is free: the advice given works.
    assert hospes(capsys, "id", "new", "bob")[0] == 0
    assert hospes(capsys, "id", "scope", "bob", root, "--replace")[0] == 0
    bob = store(data_dir).get("bob").fingerprint
    assert hospes(capsys, "get", "-q", running.url("/b/x"))[1] == f"/b/x for {bob}\n"


def test_scope_files_edited_into_a_conflict_are_an_error_not_a_guess(serve, data_dir, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    for name in ("one", "two"):
        assert hospes(capsys, "id", "new", name)[0] == 0
        (data_dir / "identities" / f"{name}.scope").write_text(running.url("/") + "\n")
    status, _, err = hospes(capsys, "get", running.url("/"))
    assert status == 2
    assert "identities one and two are both scoped to" in err
    assert capsule.requests == []


# -- prompts asked again on a terminal ---------------------------------------------------------


class TerminalInput(io.StringIO):
    """A stdin that says it is a terminal and holds the person's answers."""

    def isatty(self) -> bool:
        return True


class TerminalOutput(io.StringIO):
    def isatty(self) -> bool:
        return True


def at_terminal(monkeypatch, answers: str) -> TerminalOutput:
    monkeypatch.setattr(sys, "stdin", TerminalInput(answers))
    err = TerminalOutput()
    monkeypatch.setattr(sys, "stderr", err)
    return err


def test_a_terminal_is_asked_again_up_to_a_limit(serve, monkeypatch, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    url = running.url("/guess")
    err = at_terminal(monkeypatch, "7\n13\n42\n")
    assert main(["get", url]) == 0
    assert capsys.readouterr().out == "right\n"
    # Each question says which host asks.
    assert err.getvalue().count(f"[localhost:{running.port}] Guess the number: ") == 3
    assert [query for _, query, _ in capsule.requests] == [None, "7", "13", "42"]

    err = at_terminal(monkeypatch, "1\n2\n3\n4\n")
    assert main(["get", url]) == 3
    assert "the server asked again after 3 answers: giving up" in err.getvalue()
    assert [query for _, query, _ in capsule.requests[4:]] == [None, "1", "2", "3"]


def test_a_sensitive_answer_is_never_shown_back(serve, monkeypatch, capsys):
    """Answers to 11 are typed without echo: no message may print them afterwards."""
    capsule = Recorder()
    running = start(serve, capsule)
    asked: list[str] = []

    def no_echo(question: str, stream: object = None) -> str:
        # getpass reads the terminal itself; here the terminal is the fake stdin.
        asked.append(question)
        return sys.stdin.readline().rstrip("\n")

    monkeypatch.setattr(getpass, "getpass", no_echo)
    err = at_terminal(monkeypatch, "hunter2\ntr0ub4dor\ncorrect-horse\n")
    assert main(["get", running.url("/vault")]) == 3
    assert asked == [f"[localhost:{running.port}] Passphrase: "] * 3
    assert [query for _, query, _ in capsule.requests] == [
        None,
        "hunter2",
        "tr0ub4dor",
        "correct-horse",
    ]
    shown = err.getvalue()
    assert "the server asked again after 3 answers: giving up" in shown
    for answer in ("hunter2", "tr0ub4dor", "correct-horse"):
        assert answer not in shown
    assert f"{running.url('/vault')}?(hidden) asks for input" in shown

    # Nor in a failure after the answer (with -q, the only line names the URL).
    err = at_terminal(monkeypatch, "hunter2\n")
    assert main(["get", "-q", running.url("/strict")]) == 6
    assert capsule.requests[-1][1] == "hunter2"
    assert "hunter2" not in err.getvalue()
    assert f"{running.url('/strict')}?(hidden): 50 no entry" in err.getvalue()

    # A prompt that is not sensitive was echoed as typed: its answer may be shown.
    err = at_terminal(monkeypatch, "1\n2\n3\n")
    assert main(["get", running.url("/guess")]) == 3
    assert f"{running.url('/guess')}?3 asks for input" in err.getvalue()


def test_without_a_terminal_or_with_input_one_answer_as_before(serve, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    status, _, err = hospes(capsys, "get", "--input", "7", running.url("/guess"))
    assert status == 3
    assert "the server asked again after the input given" in err
    assert hospes(capsys, "get", running.url("/guess"))[0] == 3
    assert [query for _, query, _ in capsule.requests] == [None, "7", None]


# -- -o FILE ------------------------------------------------------------------------------------


def test_output_is_checked_before_connecting(serve, tmp_path, capsys):
    capsule = Recorder()
    running = start(serve, capsule)
    url = running.url("/page")
    status, _, err = hospes(capsys, "get", "-o", tmp_path / "missing" / "page", url)
    assert status == 1
    assert f"cannot write {tmp_path / 'missing' / 'page'}: the directory" in err
    assert "does not exist" in err
    (tmp_path / "file").touch()
    status, _, err = hospes(capsys, "get", "-o", tmp_path / "file" / "page", url)
    assert (status, "is not a directory" in err) == (1, True)
    status, _, err = hospes(capsys, "get", "-o", tmp_path, url)
    assert (status, "it is a directory" in err) == (1, True)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root may write anywhere
        status, _, err = hospes(capsys, "get", "-o", locked / "page", url)
        assert (status, "is not writable" in err) == (1, True)
    assert running.server.stats.accepted == 0  # none of them connected
    assert capsule.requests == []
    # The write itself is still atomic: the file appears whole, nothing else is left.
    assert hospes(capsys, "get", "-q", "-o", tmp_path / "page", url)[0] == 0
    assert (tmp_path / "page").read_text() == "/page for nobody\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "client-data",
        "file",
        "locked",
        "page",
        "state-0",
    ]


# -- tables -----------------------------------------------------------------------------------


def columns(line: str) -> list[int]:
    """The offsets where the columns of a table line start."""
    return [match.start() for match in re.finditer(r"(?:^|(?<=  ))\S", line)]


def test_known_hosts_list_is_a_table_and_json(serve, capsys, data_dir):
    running = start(serve, Recorder())
    other = serve(Recorder(), config=Config(hosts=[HostConfig("127.0.0.1")]))
    assert hospes(capsys, "get", "-q", running.url("/"))[0] == 0
    assert hospes(capsys, "get", "-q", other.url("/", hostname="127.0.0.1"))[0] == 0
    assert hospes(capsys, "get", "-q", other.url("/", hostname="127.0.0.1"))[0] == 0
    status, out, _ = hospes(capsys, "known-hosts", "list")
    lines = out.splitlines()
    assert status == 0
    assert lines[0].split() == ["HOST", "KEY", "SEEN", "FIRST", "LAST", "CERTIFICATE", "UNTIL"]
    assert len({tuple(columns(line)[:5]) for line in lines}) == 1  # aligned
    assert lines[1].startswith(f"127.0.0.1:{other.port} ")
    assert lines[1].split()[2] == "2x"
    data = json.loads(hospes(capsys, "known-hosts", "list", "--json")[1])
    pins = KnownHosts(data_dir / "known_hosts.sqlite3").all()
    assert [(item["host"], item["port"], item["key_fingerprint"]) for item in data] == [
        (pin.host, pin.port, pin.key_fingerprint) for pin in pins
    ]
    assert data[0]["times_seen"] == 2
    assert (
        json.loads(hospes(capsys, "known-hosts", "list", "--json", "--data-dir", data_dir / "x")[1])
        == []
    )


def test_known_hosts_list_shows_long_host_names_whole(certs, capsys, data_dir):
    pins = KnownHosts(data_dir / "known_hosts.sqlite3")
    server = ServerCertificate.from_certificate(load_certificate(certs.make("server").cert))
    long_host = ".".join(["a" * 63, "b" * 63, "c" * 63, "example"])
    pins.record(long_host, 1965, server)
    pins.record("short.example", 1965, server)
    status, out, _ = hospes(capsys, "known-hosts", "list")
    assert status == 0
    assert "…" not in out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [f"{long_host}:1965", "short.example:1965"]
    assert len({tuple(columns(line)[:5]) for line in lines}) == 1  # still aligned
    # What is shown can be typed back.
    assert hospes(capsys, "known-hosts", "remove", lines[1].split()[0])[0] == 0
    assert [pin.host for pin in pins.all()] == ["short.example"]


def test_id_list_aligns_whatever_the_names(data_dir, capsys):
    for name, key in (("a", "ecdsa"), ("a-much-longer-name", "ed25519"), ("r", "rsa")):
        assert hospes(capsys, "id", "new", name, "--key", key)[0] == 0
    lines = hospes(capsys, "id", "list")[1].splitlines()
    assert len({tuple(columns(line)) for line in lines[:4]}) == 1


def test_tables_align_on_terminal_width():
    text = table(["NAME", "X"], [["日本", "1"], ["abcd", "2"], ["e\u0301", "3"]])
    lines = text.splitlines()
    assert [width(line.split("  ")[0].rstrip()) for line in lines] == [4, 4, 4, 1]
    assert {width(line[: line.rindex(" ") + 1]) for line in lines} == {6}


def test_accounts_list_is_aligned(demo, certs, capsys):
    register(demo, certs.make("a"), "a")
    register(demo, certs.make("someone-long"), "someone-long")
    status, out, _ = hospes(capsys, "accounts", "list", "--state", demo.state)
    lines = out.splitlines()
    assert status == 0
    assert len(lines) == 3
    assert len({tuple(columns(line)[:2]) for line in lines}) == 1
    data = json.loads(hospes(capsys, "accounts", "list", "--state", demo.state, "--json")[1])
    assert [item["name"] for item in data] == ["a", "someone-long"]
