"""Attacks on a real server over TLS (issue 9): FIFOs, symlinks, SNI, dot segments."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import identity_of, raw_request, s_client, serve_process
from hospes.app.access import AccessRule, Requirement
from hospes.app.static import SMALL_FILE, StaticFiles, _read
from hospes.config import Config, HostConfig

SECRET = b"# The members' secret\n"


# -- 1: a FIFO (or any non-regular file) in the capsule -----------------------------------


@pytest.fixture
def special_capsule(tmp_path: Path):
    root = tmp_path / "capsule"
    root.mkdir()
    (root / "index.gmi").write_text("# Home\n")
    os.mkfifo(root / "fifo.gmi")
    os.mkfifo(root / "fifo-dir-index")
    (root / "pipe").mkdir()
    os.mkfifo(root / "pipe" / "index.gmi")
    (root / "fifo-link.gmi").symlink_to(root / "fifo.gmi")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(root / "socket.gmi"))
    yield root
    unix.close()


@pytest.mark.parametrize("path", ["/fifo.gmi", "/fifo-link.gmi", "/pipe/", "/socket.gmi"])
def test_a_fifo_or_socket_is_51_at_once_and_the_server_keeps_serving(serve, special_capsule, path):
    server = serve(StaticFiles(special_capsule))
    with ThreadPoolExecutor(2) as pool:
        start = time.monotonic()
        special = pool.submit(raw_request, server.port, server.url(path), timeout=5)
        home = pool.submit(raw_request, server.port, server.url("/"), timeout=5)
        assert home.result().body == b"# Home\n"
        assert special.result().status == 51
        assert time.monotonic() - start < 4


@pytest.mark.slow
def test_a_fifo_does_not_stop_sigterm(special_capsule):
    # A state directory of its own: the default one is the user's (and other hospes versions').
    state = special_capsule.parent / "state"
    process = serve_process(
        ["--root", str(special_capsule), "--access-log", "off", "--state", str(state)]
    )
    try:
        url = f"gemini://localhost:{process.port}/fifo.gmi"
        assert raw_request(process.port, url, timeout=5).status == 51
        assert raw_request(process.port, url.replace("fifo.gmi", ""), timeout=5).status == 20
    finally:
        code, _, stderr = process.stop(signal.SIGTERM)
    assert code == 0, stderr


def test_a_fifo_swapped_in_after_the_stat_is_never_waited_for(special_capsule):
    """The open itself does not wait (O_NONBLOCK), whatever the stat said before."""
    done = threading.Event()
    result = []

    def read() -> None:
        result.append(_read(str(special_capsule / "fifo.gmi"), "text/gemini", None))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(2), "opening a FIFO waited for a writer"
    assert result[0].status == 51


def test_a_large_file_is_streamed_off_the_event_loop(serve, tmp_path):
    root = tmp_path / "capsule"
    root.mkdir()
    data = os.urandom(SMALL_FILE * 4 + 7)
    (root / "big.bin").write_bytes(data)
    server = serve(StaticFiles(root))
    for _ in range(2):
        response = raw_request(server.port, server.url("/big.bin"))
        assert (response.status, response.body) == (20, data)
    # Every descriptor of the streamed file was closed (none leaks per request).
    assert not any(
        os.readlink(f"/proc/self/fd/{fd}").endswith("big.bin")
        for fd in os.listdir("/proc/self/fd")
        if os.path.islink(f"/proc/self/fd/{fd}")
    )


# -- 2: symlinks inside the root lead past access rules -----------------------------------


@pytest.fixture
def linked_capsule(tmp_path: Path) -> Path:
    root = tmp_path / "capsule"
    (root / "private").mkdir(parents=True)
    (root / "index.gmi").write_text("# Home\n")
    (root / "public.gmi").write_text("# Public\n")
    (root / "private" / "index.gmi").write_bytes(SECRET)
    (root / "private" / "secret.gmi").write_bytes(SECRET)
    (root / "private" / "big.bin").write_bytes(SECRET + os.urandom(SMALL_FILE * 2))
    (root / "private" / "public-link.gmi").symlink_to(root / "public.gmi")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(SECRET)
    (root / "members-area").symlink_to("private", target_is_directory=True)
    (root / "latest.gmi").symlink_to("private/secret.gmi")
    (root / "big-link.bin").symlink_to("private/big.bin")
    (root / "loop").symlink_to(".", target_is_directory=True)
    (root / "config.gmi").symlink_to(".git/config")
    return root


@pytest.fixture
def guarded_files(serve, linked_capsule, certs):
    alice = certs.make("alice")
    rule = AccessRule(
        "/private/", Requirement.ALLOWLIST, fingerprints=frozenset({identity_of(alice).fingerprint})
    )
    config = Config(hosts=[HostConfig("localhost")], root=linked_capsule, access=[rule])
    return serve(config=config), alice


SHAPES = [
    "/members-area/secret.gmi",
    "/members-area/",
    "/latest.gmi",
    "/loop/private/secret.gmi",
    "/loop/loop/members-area/secret.gmi",
    "/loop/latest.gmi",
    "/big-link.bin",
]


@pytest.mark.parametrize("path", SHAPES)
def test_a_symlink_into_a_protected_directory_gets_its_rules(guarded_files, certs, path):
    server, alice = guarded_files
    stranger = certs.make("mallory")
    # Twice each: the second answer comes from the cache of small files.
    for _ in range(2):
        anonymous = raw_request(server.port, server.url(path))
        assert anonymous.status == 60
        refused = raw_request(server.port, server.url(path), cert=stranger)
        assert refused.status == 61
        assert SECRET not in anonymous.body + refused.body
        allowed = raw_request(server.port, server.url(path), cert=alice)
        assert allowed.status == 20
        assert allowed.body.startswith(SECRET)
        # The cache now holds alice's answer: the stranger still gets 61.
        assert raw_request(server.port, server.url(path), cert=stranger).status == 61


def test_the_rules_of_the_requested_path_still_apply(guarded_files, certs):
    server, alice = guarded_files
    path = "/private/public-link.gmi"
    assert raw_request(server.port, server.url(path)).status == 60
    assert raw_request(server.port, server.url(path), cert=certs.make("mallory")).status == 61
    assert raw_request(server.port, server.url(path), cert=alice).body == b"# Public\n"
    assert raw_request(server.port, server.url("/public.gmi")).body == b"# Public\n"


def test_a_symlink_to_a_hidden_file_is_not_served(guarded_files):
    server, alice = guarded_files
    response = raw_request(server.port, server.url("/config.gmi"), cert=alice)
    assert response.status == 51
    assert SECRET not in response.body


def test_a_symlink_into_a_members_directory_needs_an_account(serve, linked_capsule, certs):
    rule = AccessRule("/private/", Requirement.ACCOUNT)
    server = serve(
        config=Config(hosts=[HostConfig("localhost")], root=linked_capsule, access=[rule])
    )
    stranger, member = certs.make("stranger"), certs.make("member")
    store = server.server.dispatcher.store
    assert store is not None
    server.call(lambda: store.register("member", identity_of(member), dt.datetime.now(dt.UTC)))
    assert raw_request(server.port, server.url("/latest.gmi"), cert=stranger).status == 61
    assert raw_request(server.port, server.url("/latest.gmi"), cert=member).body == SECRET


# -- 16: a request for another host than the TLS server name -------------------------------


@pytest.fixture
def two_hosts(serve, tmp_path):
    roots = {}
    for name in ("localhost", "b.example"):
        root = tmp_path / f"root-{name}"
        root.mkdir()
        (root / "index.gmi").write_text(f"# {name}\n")
        roots[name] = root
    config = Config(
        hosts=[
            HostConfig("localhost", root=roots["localhost"]),
            HostConfig("b.example", root=roots["b.example"]),
        ]
    )
    return serve(config=config)


def test_a_request_for_another_host_than_the_sni_name_gets_53(two_hosts):
    port = two_hosts.port
    other = s_client(port, f"gemini://b.example:{port}/", server_name="localhost")
    assert other.status == 53, other.stderr
    assert "localhost" in other.header and "b.example" in other.header
    assert b"# b.example" not in other.stdout
    reverse = s_client(port, f"gemini://localhost:{port}/", server_name="b.example")
    assert reverse.status == 53
    # Case and a trailing dot do not matter, as for request hosts.
    same = s_client(port, f"gemini://b.example:{port}/", server_name="B.Example.")
    assert (same.status, same.stdout.split(b"\r\n", 1)[1]) == (20, b"# b.example\n")


def test_a_remembered_request_line_is_still_checked_against_the_sni_name(two_hosts):
    """The dispatcher keeps the parsing of request lines it answered; the host check
    against the connection's TLS server name must still run for every request."""
    port = two_hosts.port
    line = f"gemini://b.example:{port}/"
    served = s_client(port, line, server_name="b.example")
    assert served.status == 20, served.stderr
    assert served.stdout.endswith(b"# b.example\n")
    other = s_client(port, line, server_name="localhost")
    assert other.status == 53, other.stderr
    assert b"# b.example" not in other.stdout


def test_without_sni_any_served_host_is_answered(two_hosts):
    port = two_hosts.port
    response = s_client(port, f"gemini://b.example:{port}/", server_name=None)
    assert response.status == 20, response.stderr
    assert response.stdout.endswith(b"# b.example\n")


# -- 17: dot segments that climb above the root ---------------------------------------------


@pytest.mark.parametrize(
    "path", ["/../../", "/..", "/a/../../etc/passwd", "/%2e%2e/", "/.%2E/x", "//../"]
)
def test_dot_segments_above_the_root_get_59(demo, path):
    response = raw_request(demo.port, f"gemini://localhost:{demo.port}{path}")
    assert response.status == 59
    assert "above the root" in response.meta


@pytest.mark.parametrize(
    ("path", "target"), [("/a/../", "/"), ("/a/./b/../c", "/a/c"), ("/./", "/"), ("/%2e/", "/")]
)
def test_other_dot_segments_are_still_redirected(demo, path, target):
    response = raw_request(demo.port, f"gemini://localhost:{demo.port}{path}")
    assert (response.status, response.meta) == (31, demo.url(target))


# -- 13: client keys TLS cannot carry, as docs/protocol.md lists them ------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
KEYS = {
    # How `openssl req -newkey` makes each key of the table.
    "ECDSA P-256": ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "P-384": ["ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "P-521": ["ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "Ed25519": ["ed25519"],
    "Ed448": ["ed448"],
    "RSA 2048": ["rsa:2048"],
    "RSA 1024": ["rsa:1024"],
    "RSA 512": ["rsa:512"],
    "DSA 2048": ["dsa:{dsa_parameters}"],
    "ECDSA P-224": ["ec", "-pkeyopt", "ec_paramgen_curve:P-224"],
    "P-192": ["ec", "-pkeyopt", "ec_paramgen_curve:P-192"],
    "secp256k1": ["ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
    "brainpoolP256r1": ["ec", "-pkeyopt", "ec_paramgen_curve:brainpoolP256r1"],
}
HANDSHAKE_FAILS = "handshake fails"


def documented_keys() -> list[tuple[str, str, str]]:
    """(key, TLS 1.3 outcome, TLS 1.2 outcome) for every key in the table of docs/protocol.md."""
    text = DOCS.read_text()
    table = text[text.index("| client key | TLS 1.3 | TLS 1.2 |") :].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        keys, tls13, tls12 = (cell.strip() for cell in line.strip("|").split("|"))
        rows += [(key, tls13, tls12) for key in keys.split(", ")]
    return rows


def test_the_documented_table_names_every_key_tested():
    assert sorted(key for key, _, _ in documented_keys()) == sorted(KEYS)


@pytest.fixture(scope="module")
def client_keys(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("client-keys")
    parameters = directory / "dsa.pem"
    subprocess.run(
        ["openssl", "dsaparam", "-out", str(parameters), "2048"], check=True, capture_output=True
    )
    made = {}
    for name, spec in KEYS.items():
        stem = directory / name.replace(" ", "-")
        newkey = [part.format(dsa_parameters=parameters) for part in spec]
        files = ["-keyout", f"{stem}.key", "-out", f"{stem}.crt"]
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", *newkey, "-nodes", "-subj", "/CN=key", *files],
            check=True,
            capture_output=True,
        )
        made[name] = (Path(f"{stem}.crt"), Path(f"{stem}.key"))
    return made


@pytest.mark.parametrize(("version", "column"), [("-tls1_3", 1), ("-tls1_2", 2)])
def test_client_keys_tls_cannot_carry_are_as_documented(demo, client_keys, version, column):
    for row in documented_keys():
        key, expected = row[0], row[column]
        cert, private = client_keys[key]
        options = (version, "-cert", str(cert), "-key", str(private))
        result = s_client(demo.port, demo.url("/me"), options=options)
        if HANDSHAKE_FAILS in expected:
            assert result.stdout == b"", (key, version)
            assert "alert number 47" in result.stderr, (key, version, result.stderr)
        else:
            status = int(re.search(r"`(\d\d)`", expected).group(1))
            assert result.status == status, (key, version, result.header)
            if status == 20:
                assert b"# Who am I?" in result.stdout
    # Whatever a client offered, the server serves the next one.
    assert raw_request(demo.port, demo.url("/")).status == 20
