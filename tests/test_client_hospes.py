"""The client against the hospes server: TOFU, identities, redirects, input, CA mode, the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from helpers import CertFactory, CertFiles, RunningServer
from hospes.app.request import Request
from hospes.app.response import Response
from hospes.cli import main
from hospes.client import (
    CertificateUntrusted,
    Client,
    ConnectError,
    IdentityStore,
    InvalidRequest,
    KeyChanged,
    KnownHosts,
    Scope,
    SyncClient,
    TrustMode,
    Verdict,
    fetch,
)
from hospes.config import Config, HostConfig
from hospes.selfsigned import generate_key, write_certificate, write_private_key
from hospes.server.tls import ServerContexts, load_server_context

BIG = bytes(range(256)) * 4096 * 3  # 3 MiB


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


class Recorder:
    """A capsule that remembers every request it answered: (path, query, fingerprint)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, str | None]] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append((request.path, request.query, request.fingerprint))
        path = request.path
        if path == "/big":
            return Response.success(BIG, "application/octet-stream")
        if path == "/ask":
            if request.query is None:
                return Response.input("Your name?")
            return Response.success(f"hello {request.query}\n")
        if path == "/secret":
            if request.query is None:
                return Response.sensitive_input("Password")
            return Response.success(f"got {len(request.query)} characters\n")
        if path.startswith("/hop/"):
            remaining = int(path.removeprefix("/hop/"))
            if remaining == 0:
                return Response.success("landed\n")
            return Response.redirect(f"/hop/{remaining - 1}")
        if path == "/loop":
            return Response.redirect("/loop")
        if path == "/away":
            return Response.redirect("https://example.org/")
        if path == "/deep":
            return Response.redirect("/deep/inner")
        if path == "/app/start":
            return Response.redirect("/app/end")
        if path == "/app/leave":
            return Response.redirect("/elsewhere")
        if path == "/status/61":
            return Response(61, "not on the list")
        if path == "/status/62":
            return Response(62, "certificate expired")
        if path == "/status/44":
            return Response(44, "10")
        if path == "/status/51":
            return Response.not_found()
        if path == "/escape":
            return Response.success("red \x1b[31mtext\x1b[0m\n\tand a tab\n")
        if path == "/image":
            return Response.success(b"\x89PNG\r\n", "image/png")
        if path == "/me" and request.identity is None:
            return Response(60, "certificate required")
        name = request.identity.name if request.identity is not None else "nobody"
        return Response.success(f"# {path}\nyou are {name}\n")


@pytest.fixture
def capsule() -> Recorder:
    return Recorder()


def server_files(certs: CertFactory, *names: str, **kwargs) -> CertFiles:
    return certs.make(
        names[0] if names else "localhost", hostnames=names or ["localhost"], **kwargs
    )


def start(serve, capsule, cert: CertFiles | None = None, hosts=("localhost",)) -> RunningServer:
    configs = [HostConfig(hosts[0], cert=cert.cert, key=cert.key) if cert else HostConfig(hosts[0])]
    configs += [HostConfig(name) for name in hosts[1:]]
    return serve(capsule, config=Config(hosts=configs))


def reload_certificate(running: RunningServer, cert: CertFiles) -> None:
    """What an operator's reload does: new connections get the new certificate."""
    contexts = ServerContexts({"localhost": load_server_context(cert.cert, cert.key)})
    running.call(lambda: running.server.reconfigure(contexts=contexts))


def get(url: str, **options):
    kwargs = {
        key: options.pop(key) for key in ("identity", "input", "accept_key") if key in options
    }
    options.setdefault("timeout", 10)

    async def run():
        return await Client(**options).fetch(url, **kwargs)

    return asyncio.run(run())


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- TOFU against hospes --------------------------------------------------------------------


def test_tofu_first_use_renewal_and_refused_key_change(serve, capsule, certs, data_dir):
    original = server_files(certs)
    running = start(serve, capsule, original)
    url = running.url("/page")

    first = get(url)
    assert (first.status, first.trust.verdict) == (20, Verdict.FIRST_USE)
    assert first.clean_close is True  # hospes ends every response with close_notify
    assert get(url).trust.verdict is Verdict.KNOWN

    reload_certificate(running, certs.renewal(original, name="localhost"))
    renewed = get(url)
    assert renewed.trust.verdict is Verdict.RENEWED
    assert renewed.certificate.key_fingerprint == first.certificate.key_fingerprint
    assert renewed.certificate.fingerprint != first.certificate.fingerprint
    assert get(url).trust.verdict is Verdict.KNOWN

    reload_certificate(running, server_files(certs))
    answered = len(capsule.requests)
    responses = sum(running.server.stats.responses.values())
    failures = running.server.stats.dropped["tls_error"]
    with pytest.raises(KeyChanged):
        get(url)
    # The server never got a request: its handshake failed, nothing was answered or logged.
    assert wait_for(lambda: running.server.stats.dropped["tls_error"] == failures + 1)
    assert sum(running.server.stats.responses.values()) == responses
    assert len(capsule.requests) == answered
    running.call(running.server.access_log.flush)
    assert sum("/page" in line for line in running.log_lines) == answered


def test_cli_trust_after_key_change(serve, capsule, certs, data_dir, capsys):
    running = start(serve, capsule, server_files(certs))
    url = running.url("/")
    assert main(["get", "-q", url]) == 0
    reload_certificate(running, server_files(certs))
    assert main(["get", url]) == 13
    err = capsys.readouterr().err
    assert "REFUSED" in err
    assert f"hospes known-hosts trust localhost:{running.port} --key SHA256:" in err
    assert main(["known-hosts", "trust", f"localhost:{running.port}"]) == 0
    assert "pinned key" in capsys.readouterr().err
    assert main(["get", "-q", url]) == 0
    assert main(["known-hosts", "list"]) == 0
    assert f"localhost:{running.port}" in capsys.readouterr().out
    assert main(["known-hosts", "remove", f"localhost:{running.port}"]) == 0
    assert main(["known-hosts", "remove", f"localhost:{running.port}"]) == 1
    assert KnownHosts(data_dir / "known_hosts.sqlite3").all() == []


def test_hostname_mismatch_in_both_modes(serve, capsule, certs, data_dir, capsys):
    # The certificate names localhost; the URL says 127.0.0.1 (which this server also serves).
    running = start(serve, capsule, server_files(certs), hosts=("localhost", "127.0.0.1"))
    url = running.url("/", hostname="127.0.0.1")
    response = get(url)
    assert response.status == 20
    assert not response.trust.hostname_matches
    assert main(["get", "-v", url]) == 0
    assert "NOT named in the certificate" in capsys.readouterr().err

    answered = len(capsule.requests)
    with pytest.raises(CertificateUntrusted, match=r"not issued for 127\.0\.0\.1"):
        get(url, verify_hostname=True)
    assert main(["get", "--verify-hostname", url]) == 14
    assert len(capsule.requests) == answered
    assert get(running.url("/"), verify_hostname=True).trust.hostname_matches


def test_expired_server_certificate_under_tofu(serve, capsule, certs, data_dir, capsys):
    """Documented behaviour: the pin, not the date, is the trust anchor; the user is told."""
    start_date = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired = server_files(certs, not_before=start_date, days=30)
    running = start(serve, capsule, expired)
    response = get(running.url("/"))
    assert response.status == 20
    assert response.trust.validity_problem is not None
    assert response.trust.validity_problem.startswith("expired on")
    assert main(["get", running.url("/")]) == 0
    assert "is expired on" in capsys.readouterr().err


# -- CA mode --------------------------------------------------------------------------------


def make_ca(directory: Path) -> tuple[Path, object, x509.Name]:
    key = generate_key("ecdsa")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hospes test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.pem"
    write_certificate(path, cert)
    return path, key, name


def issue(directory: Path, ca_key, ca_name, names, *, expired: bool = False) -> CertFiles:
    key = generate_key("ecdsa")
    now = dt.datetime.now(dt.UTC)
    start_date = now - dt.timedelta(days=60 if expired else 1)
    san = [x509.DNSName(name) for name in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start_date)
        .not_valid_after(start_date + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    stem = directory / f"{names[0]}-{'expired' if expired else 'valid'}"
    write_certificate(stem.with_suffix(".crt"), cert)
    write_private_key(stem.with_suffix(".key"), key)
    return CertFiles(stem.with_suffix(".crt"), stem.with_suffix(".key"), key)


def test_ca_mode(serve, capsule, certs, tmp_path, data_dir, capsys):
    ca_path, ca_key, ca_name = make_ca(tmp_path)
    running = start(serve, capsule, issue(tmp_path, ca_key, ca_name, ["localhost"]))
    response = get(running.url("/"), mode=TrustMode.CA, ca_file=ca_path)
    assert response.trust.verdict is Verdict.CA_VERIFIED
    assert response.trust.hostname_matches
    # CA mode neither reads nor writes pins.
    assert KnownHosts(data_dir / "known_hosts.sqlite3").all() == []
    assert main(["get", "-q", "--ca-file", str(ca_path), running.url("/")]) == 0

    # A self-signed certificate is not trusted in CA mode, whatever TOFU thinks of it.
    reload_certificate(running, server_files(certs))
    with pytest.raises(CertificateUntrusted, match="self-signed"):
        get(running.url("/"), mode=TrustMode.CA, ca_file=ca_path)
    assert main(["get", "--ca-file", str(ca_path), running.url("/")]) == 14

    # An expired certificate is refused in CA mode (under TOFU it is only reported).
    reload_certificate(running, issue(tmp_path, ca_key, ca_name, ["localhost"], expired=True))
    with pytest.raises(CertificateUntrusted, match="expired"):
        get(running.url("/"), mode=TrustMode.CA, ca_file=ca_path)

    # The right CA but another name: fatal in CA mode.
    reload_certificate(running, issue(tmp_path, ca_key, ca_name, ["example.org"]))
    with pytest.raises(CertificateUntrusted, match="not issued for localhost"):
        get(running.url("/"), mode=TrustMode.CA, ca_file=ca_path)
    # Only the two fetches with a trusted certificate reached the capsule.
    assert len(capsule.requests) == 2
    capsys.readouterr()


def test_ca_mode_with_the_system_store_refuses_a_self_signed_server(serve, capsule, data_dir):
    running = start(serve, capsule)
    with pytest.raises(CertificateUntrusted):
        get(running.url("/"), mode=TrustMode.CA)
    assert capsule.requests == []


# -- identities -------------------------------------------------------------------------------


def test_identity_only_in_scope(serve, capsule, certs, data_dir):
    running = start(serve, capsule)
    identities = IdentityStore(data_dir / "identities")
    alice = identities.create("alice")
    identities.add_scope("alice", Scope.parse(running.url("/app/")))
    for path in ["/app/one", "/app", "/apple", "/", "/app/%2e%2e/secret", "/%61pp/two"]:
        get(running.url(path))
    sent = {path: fingerprint for path, _, fingerprint in capsule.requests}
    assert sent["/app/one"] == alice.fingerprint
    assert sent["/app"] == alice.fingerprint
    assert sent["/app/two"] == alice.fingerprint  # %61 is "a": the same path
    assert sent["/apple"] is None
    assert sent["/"] is None
    assert sent["/secret"] is None
    # Another port on the same host is another scope.
    other = start(serve, Recorder())
    assert get(other.url("/app/one")).identity is None


def test_named_identity_for_one_call_and_redirects(serve, capsule, data_dir, capsys):
    running = start(serve, capsule)
    identities = IdentityStore(data_dir / "identities")
    bob = identities.create("bob", common_name="Bob")
    assert get(running.url("/me")).status == 60
    response = get(running.url("/me"), identity="bob")
    assert response.status == 20
    assert b"you are Bob" in response.body
    # Under the URL asked for: a redirect keeps the identity.
    response = get(running.url("/deep"), identity="bob")
    assert capsule.requests[-2:] == [
        ("/deep", None, bob.fingerprint),
        ("/deep/inner", None, bob.fingerprint),
    ]
    assert response.withheld is None
    # Beside it: not sent.
    response = get(running.url("/app/start"), identity="bob")
    assert capsule.requests[-2:] == [
        ("/app/start", None, bob.fingerprint),
        ("/app/end", None, None),
    ]
    assert response.withheld is not None
    assert response.withheld.name == "bob"
    # A redirect out of the URL asked for: not sent, and the user is told.
    assert main(["get", "--identity", "bob", running.url("/app/leave")]) == 0
    assert capsule.requests[-1] == ("/elsewhere", None, None)
    assert "identity bob was not sent" in capsys.readouterr().err
    # --no-identity overrides a scope.
    identities.add_scope("bob", Scope.parse(running.url("/")))
    assert get(running.url("/me")).status == 20
    assert get(running.url("/me"), identity=False).status == 60


def test_certificate_statuses_tell_what_to_do(serve, capsule, data_dir, capsys):
    running = start(serve, capsule)
    assert main(["get", running.url("/me")]) == 7
    err = capsys.readouterr().err
    assert "hospes id new NAME" in err
    assert f"hospes id scope NAME gemini://localhost:{running.port}/" in err
    assert main(["get", running.url("/status/61")]) == 8
    assert main(["get", running.url("/status/62")]) == 9
    assert "hospes id new NAME" in capsys.readouterr().err
    assert main(["id", "new", "carol"]) == 0
    assert main(["get", "--identity", "carol", running.url("/status/61")]) == 8
    assert "carol" in capsys.readouterr().err


def test_unknown_identity_is_a_usage_error(serve, capsule, capsys):
    running = start(serve, capsule)
    assert main(["get", "--identity", "nobody", running.url("/")]) == 2
    assert "no identity named 'nobody'" in capsys.readouterr().err
    assert capsule.requests == []


# -- redirects and input ----------------------------------------------------------------------


def test_redirects(serve, capsule, data_dir, capsys):
    running = start(serve, capsule, hosts=("localhost", "127.0.0.1"))
    response = get(running.url("/hop/5"))
    assert response.status == 20
    assert response.body == b"landed\n"
    assert len(response.redirects) == 5
    assert str(response.url) == running.url("/hop/0")

    response = get(running.url("/hop/6"))
    assert response.status == 30
    assert response.stopped == "more than 5 redirects"
    assert get(running.url("/hop/6"), max_redirects=6).status == 20
    assert get(running.url("/hop/1"), max_redirects=0).status == 30
    assert get(running.url("/loop")).stopped == "the redirects form a loop"
    assert "https: URL" in (get(running.url("/away")).stopped or "")

    assert main(["get", running.url("/hop/6")]) == 4
    assert main(["get", "--max-redirects", "6", running.url("/hop/6")]) == 0
    capsys.readouterr()


def test_cross_host_redirect_is_reported(serve, capsule, data_dir, capsys):
    target = start(serve, Recorder(), hosts=("127.0.0.1",))

    def handler(request: Request) -> Response:
        return Response.redirect(target.url("/there", hostname="127.0.0.1"))

    origin = serve(handler)
    response = get(origin.url("/"))
    assert response.status == 20
    assert response.redirects[0].cross_host
    stopped = get(origin.url("/"), follow_cross_host=False)
    assert stopped.status == 30
    assert "another host" in (stopped.stopped or "")
    assert main(["get", origin.url("/")]) == 0
    assert "redirected to another host" in capsys.readouterr().err
    assert main(["get", "--no-cross-host", origin.url("/")]) == 4


def test_input(serve, capsule, data_dir, capsys):
    running = start(serve, capsule)
    assert get(running.url("/ask")).status == 10
    response = get(running.url("/ask"), input="Zoë & co?")
    assert response.body == "hello Zoë & co?\n".encode()
    assert str(response.url).endswith("/ask?Zo%C3%AB%20%26%20co%3F")

    asked = []

    def answer(prompt, sensitive, url):
        asked.append((prompt, sensitive))
        return "hunter2"

    assert get(running.url("/secret"), input=answer).body == b"got 7 characters\n"
    assert asked == [("Password", True)]

    async def later(prompt, sensitive, url):
        return None

    assert get(running.url("/ask"), input=later).status == 10

    assert main(["get", "--input", "world", running.url("/ask")]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert main(["get", running.url("/ask")]) == 3
    assert "--input" in capsys.readouterr().err
    with pytest.raises(InvalidRequest, match="too long"):
        get(running.url("/ask"), input="x" * 1100)


# -- bodies and the CLI ---------------------------------------------------------------------


def test_streamed_body_and_output_file(serve, capsule, tmp_path, data_dir, capsys):
    running = start(serve, capsule)
    with SyncClient() as client:
        response = client.open(running.url("/big"))
        assert response.status == 20
        chunks = list(response.iter_chunks())
    assert len(chunks) > 1
    assert b"".join(chunks) == BIG
    assert response.clean_close is True

    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    assert main(["get", "-q", "-o", str(target), running.url("/big")]) == 0
    assert target.read_bytes() == BIG
    assert [p.name for p in target.parent.iterdir()] == ["big.bin"]  # no temporary left
    assert main(["get", "-o", str(tmp_path / "missing" / "x"), running.url("/big")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_other_statuses_exit_codes(serve, capsule, data_dir, capsys):
    running = start(serve, capsule)
    assert main(["get", running.url("/status/44")]) == 5
    assert main(["get", running.url("/status/51")]) == 6
    err = capsys.readouterr().err
    assert "44 10" in err
    assert "51 not found" in err
    assert main(["get", "http://example.org/"]) == 2
    assert main(["get", "gemini://localhost:1/"]) == 10


def test_sync_fetch_from_a_plain_script(serve, capsule, data_dir):
    running = start(serve, capsule)
    script = (
        "import sys\n"
        "from hospes.client import fetch\n"
        "response = fetch(sys.argv[1])\n"
        "print(response.status, response.meta, response.trust.verdict.value)\n"
        "sys.stdout.write(response.body.decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, running.url("/hello")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOSPES_DATA_DIR": str(data_dir)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "20 text/gemini first-use\n# /hello\nyou are nobody\n"
    assert fetch(running.url("/hello")).trust.verdict is Verdict.KNOWN


def test_sync_client_refuses_a_running_loop(data_dir):
    async def inside() -> None:
        with SyncClient() as client:
            client.fetch("gemini://localhost:1/")

    with pytest.raises(RuntimeError, match="inside an event loop"):
        asyncio.run(inside())


def test_concurrent_processes_share_the_store(serve, capsule, data_dir):
    """Eight `hospes get` at once on a fresh store: one first use, no corruption, all counted."""
    running = start(serve, capsule)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "hospes", "get", running.url(f"/p{index}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "HOSPES_DATA_DIR": str(data_dir)},
        )
        for index in range(8)
    ]
    outputs = []
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        outputs.append(err.decode())
    assert sum("first contact" in err for err in outputs) == 1
    pin = KnownHosts(data_dir / "known_hosts.sqlite3").get("localhost", running.port)
    assert pin is not None
    assert pin.times_seen == 8


def test_connection_refused(data_dir):
    with pytest.raises(ConnectError, match="refused"):
        get("gemini://127.0.0.1:1/")


def test_a_closed_pipe_ends_quietly(serve, capsule, data_dir):
    """``hospes get URL | head -c 10``: no traceback, the failure status, head gets its bytes."""
    running = start(serve, capsule)
    head = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert head.stdin is not None
    hospes = subprocess.Popen(
        [sys.executable, "-m", "hospes", "get", "-q", running.url("/big")],
        stdout=head.stdin,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOSPES_DATA_DIR": str(data_dir)},
    )
    head.stdin.close()
    assert head.stdout is not None
    out = head.stdout.read()
    head.wait(60)
    _, err = hospes.communicate(timeout=60)
    assert out == BIG[:10]
    assert err == b""
    assert hospes.returncode == 1
