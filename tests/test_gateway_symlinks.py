"""Attacks on CGI and Titan over real TLS: symlinks that stay inside a gateway's directory.

Issue 9 (item 2) for the gateways of issue 12: access rules are matched on the
request path, and a symlink inside the directory (``tool -> admin/tool``,
``adm -> admin``, ``loop -> .``) reaches a protected script or upload
directory through a path no rule covers.  A script runs, and an upload byte is
read, only if the rules of where the path really leads allow the visitor too.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from helpers import CertFiles, RunningServer, identity_of, raw_request
from hospes.app.access import AccessRule, Requirement
from hospes.config import Config, HostConfig
from hospes.gateways import CGIMount, TitanMount

SCRIPT = (
    "#!/bin/sh\n"
    'touch "$RANDIR/ran"\n'
    "printf '20 text/plain\\r\\n'\n"
    'echo "$GEMINI_SCRIPT_FILENAME $PATH_INFO"\n'
)


def capsule(tmp_path: Path) -> Path:
    root = tmp_path / "capsule"
    root.mkdir(exist_ok=True)
    (root / "index.gmi").write_text("# Home\n")
    return root


def allow(alice: CertFiles, path: str) -> AccessRule:
    return AccessRule(
        path, Requirement.ALLOWLIST, fingerprints=frozenset({identity_of(alice).fingerprint})
    )


# -- CGI ------------------------------------------------------------------------------------


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    directory = tmp_path / "ran"
    directory.mkdir()
    return directory


@pytest.fixture
def cgi_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cgi-bin"
    for name in ("admin/tool", "wiki", "public", ".hooks/run"):
        script = directory / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(SCRIPT)
        script.chmod(0o755)
    (directory / "tool").symlink_to("admin/tool")
    (directory / "adm").symlink_to("admin", target_is_directory=True)
    (directory / "loop").symlink_to(".", target_is_directory=True)
    (directory / "w").symlink_to("wiki")
    (directory / "hook").symlink_to(".hooks/run")
    (directory / "admin" / "public-link").symlink_to("../public")
    return directory


@pytest.fixture
def cgi_server(serve, tmp_path, cgi_dir, ran, certs) -> tuple[RunningServer, CertFiles]:
    alice = certs.make("alice")
    config = Config(
        hosts=[HostConfig("localhost")],
        root=capsule(tmp_path),
        cgi=[CGIMount("/cgi-bin/", cgi_dir, env={"RANDIR": str(ran)})],
        access=[allow(alice, "/cgi-bin/admin/"), allow(alice, "/cgi-bin/wiki/edit/")],
    )
    return serve(config=config), alice


@pytest.mark.parametrize(
    ("path", "script", "path_info"),
    [
        ("/cgi-bin/tool", "admin/tool", ""),
        ("/cgi-bin/tool/extra/", "admin/tool", "/extra/"),
        ("/cgi-bin/adm/tool", "admin/tool", ""),
        ("/cgi-bin/loop/admin/tool", "admin/tool", ""),
        ("/cgi-bin/loop/loop/tool", "admin/tool", ""),
        ("/cgi-bin/loop/adm/tool/x", "admin/tool", "/x"),
        # The rule covers the script's PATH_INFO: /cgi-bin/wiki/edit/page, reached as /w/.
        ("/cgi-bin/w/edit/page", "wiki", "/edit/page"),
        ("/cgi-bin/loop/wiki/edit/", "wiki", "/edit/"),
    ],
)
def test_a_symlink_to_a_protected_script_does_not_run_it(
    cgi_server, cgi_dir, ran, certs, path, script, path_info
):
    server, alice = cgi_server
    anonymous = raw_request(server.port, server.url(path))
    assert anonymous.status == 60
    refused = raw_request(server.port, server.url(path), cert=certs.make("mallory"))
    assert refused.status == 61
    assert not (ran / "ran").exists()  # neither request ran the script
    allowed = raw_request(server.port, server.url(path), cert=alice)
    assert (allowed.status, allowed.body.decode()) == (
        20,
        f"{(cgi_dir / script).resolve()} {path_info}\n",
    )
    assert (ran / "ran").exists()


@pytest.mark.parametrize("path", ["/cgi-bin/w/view/page", "/cgi-bin/loop/public", "/cgi-bin/w"])
def test_symlinks_to_unprotected_scripts_still_run_for_anyone(cgi_server, ran, path):
    server, _ = cgi_server
    assert raw_request(server.port, server.url(path)).status == 20
    assert (ran / "ran").exists()


def test_the_rules_of_the_requested_script_path_still_apply(cgi_server, cgi_dir, ran, certs):
    server, alice = cgi_server
    path = "/cgi-bin/admin/public-link"
    assert raw_request(server.port, server.url(path)).status == 60
    assert raw_request(server.port, server.url(path), cert=certs.make("mallory")).status == 61
    assert not (ran / "ran").exists()
    allowed = raw_request(server.port, server.url(path), cert=alice)
    assert allowed.body.decode() == f"{(cgi_dir / 'public').resolve()} \n"


def test_a_symlink_to_a_hidden_script_does_not_run_it(cgi_server, ran):
    server, alice = cgi_server
    response = raw_request(server.port, server.url("/cgi-bin/hook"), cert=alice)
    assert response.status == 51
    assert not (ran / "ran").exists()


# -- Titan ----------------------------------------------------------------------------------


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    (directory / "friends").mkdir(parents=True)
    (directory / "sub").mkdir()
    (directory / "friends" / "page.gmi").write_text("# Friends only\n")
    (directory / "link").symlink_to("friends", target_is_directory=True)
    (directory / "loop").symlink_to(".", target_is_directory=True)
    (directory / "sub" / "up").symlink_to("../friends", target_is_directory=True)
    (directory / "latest.gmi").symlink_to("friends/page.gmi")
    return directory


@pytest.fixture
def titan_server(serve, tmp_path, uploads, certs) -> tuple[RunningServer, CertFiles]:
    alice = certs.make("alice")
    config = Config(
        hosts=[HostConfig("localhost")],
        root=capsule(tmp_path),
        titan=[TitanMount("/uploads/", uploads, max_size=1000, timeout=2.0)],
        access=[allow(alice, "/uploads/friends/")],
    )
    return serve(config=config), alice


def titan_line(server: RunningServer, path: str, size: int) -> bytes:
    return f"titan://localhost:{server.port}{path};size={size}\r\n".encode()


def answer_to_line_only(server: RunningServer, path: str, cert: CertFiles) -> bytes:
    """Send a Titan request line without its body; what the server answers, within 1 s."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert.cert, cert.key)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with context.wrap_socket(sock, server_hostname="localhost") as tls:
        tls.sendall(titan_line(server, path, 5))
        started = time.monotonic()
        chunks = []
        while data := tls.recv(65536):
            chunks.append(data)
    # An answer that did not wait for the body: the 2 s an upload may take did not run.
    assert time.monotonic() - started < 1.0
    return b"".join(chunks)


def contents(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.mark.parametrize(
    "path",
    ["/uploads/link/x.gmi", "/uploads/loop/friends/x.gmi", "/uploads/sub/up/x.gmi"],
)
def test_an_upload_through_a_symlink_into_a_protected_directory_is_refused_unread(
    titan_server, uploads, certs, path
):
    server, alice = titan_server
    before = contents(uploads)
    answer = answer_to_line_only(server, path, certs.make("mallory"))
    assert answer.startswith(b"61 ")
    body = b"hello"
    full = raw_request(server.port, titan_line(server, path, len(body)) + body, cert=certs.make())
    assert full.status == 61
    assert contents(uploads) == before  # nothing written, no temporary file left
    allowed = raw_request(server.port, titan_line(server, path, len(body)) + body, cert=alice)
    assert (allowed.status, allowed.meta) == (30, server.url(path))
    assert (uploads / "friends" / "x.gmi").read_bytes() == body


def test_an_upload_to_a_symlinked_name_replaces_the_link_not_what_it_leads_to(
    titan_server, uploads, certs
):
    server, _ = titan_server
    request = titan_line(server, "/uploads/latest.gmi", 4) + b"mine"
    assert raw_request(server.port, request, cert=certs.make("mallory")).status == 30
    assert (uploads / "friends" / "page.gmi").read_text() == "# Friends only\n"
    assert not (uploads / "latest.gmi").is_symlink()
    assert (uploads / "latest.gmi").read_bytes() == b"mine"
