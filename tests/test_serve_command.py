"""``hospes serve`` as a real process: first run, certificate reuse, config errors, signals."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
)

from helpers import Process, raw_request, serve_process
from hospes.demo import CAPSULE
from hospes.gemini.fingerprint import fingerprint
from hostile import wait_for

pytestmark = pytest.mark.slow


def test_first_run_creates_certificate_then_reuses_it(tmp_path):
    state = tmp_path / "state"
    process = serve_process(["--state", str(state)])
    port = process.port
    response = raw_request(port, f"gemini://localhost:{port}/")
    assert response.status == 20
    code, stdout, stderr = process.stop()
    assert code == 0
    key = state / "certs" / "localhost.key"
    cert = state / "certs" / "localhost.crt"
    assert key.exists() and cert.exists()
    assert key.stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.name == "secp256r1"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.days >= 3650
    expected = fingerprint(certificate.public_bytes(Encoding.DER))
    assert expected in stderr
    assert "(created now)" in stderr
    # Started with --port 0, the banner shows the port the server got.
    assert f"gemini://localhost:{port}/" in stderr
    assert f"listening on 127.0.0.1:{port}" in stderr
    assert str(state) in stderr
    assert f'"gemini://localhost:{port}/" 20' in stdout

    before = key.read_bytes()
    process = serve_process(["--state", str(state)])
    code, _, stderr = process.stop(signal.SIGINT)
    assert code == 0
    assert key.read_bytes() == before
    assert expected in stderr
    assert "(created now)" not in stderr


def test_state_defaults_to_xdg_state_home(tmp_path):
    process = serve_process([], env={"XDG_STATE_HOME": str(tmp_path)})
    assert process.stop()[0] == 0
    assert (tmp_path / "hospes" / "certs" / "localhost.crt").exists()


def test_certificate_without_key_is_an_error_not_a_new_key(tmp_path):
    state = tmp_path / "state"
    process = serve_process(["--state", str(state)])
    assert process.stop()[0] == 0
    (state / "certs" / "localhost.key").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "hospes", "serve", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "localhost.key is missing" in result.stderr
    assert not (state / "certs" / "localhost.key").exists()


def test_own_certificate_and_root(tmp_path, certs):
    server_cert = certs.make("localhost")
    root = tmp_path / "root"
    root.mkdir()
    (root / "index.gmi").write_text("# mine\n")
    process = serve_process(
        [
            "--state",
            str(tmp_path / "state"),
            "--cert",
            str(server_cert.cert),
            "--key",
            str(server_cert.key),
            "--root",
            str(root),
        ]
    )
    port = process.port
    assert raw_request(port, f"gemini://localhost:{port}/").body == b"# mine\n"
    assert process.stop()[0] == 0
    assert not (tmp_path / "state" / "certs").exists()


def test_config_file_and_flags(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "index.gmi").write_text("# from config\n")
    config = tmp_path / "hospes.toml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        # The file's port is taken: the server starts only if the --port flag wins.
        config.write_text(
            textwrap.dedent(
                f"""
                port = {taken.getsockname()[1]}
                hostnames = ["example.test", "localhost"]
                root = "root"
                state = "state"

                [[access]]
                path = "/private/"
                require = "certificate"
                """
            )
        )
        process = serve_process(["--config", str(config)])
    port = process.port
    home = raw_request(port, f"gemini://example.test:{port}/", server_name="example.test")
    assert home.body == b"# from config\n"
    assert raw_request(port, f"gemini://localhost:{port}/private/x").status == 60
    # SNI names one host: the other one, though served, is refused on this connection.
    assert raw_request(port, f"gemini://example.test:{port}/").status == 53
    assert process.stop()[0] == 0
    assert (tmp_path / "state" / "certs" / "example.test.crt").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("port = 'x'", "port: expected a port number"),
        ("prot = 1965", "unknown setting 'prot' (did you mean 'port'?)"),
        ("[[access]]\npath = '/a/'\nrequire = 'everyone'", "access[0].require: expected one of"),
        (
            "[[access]]\npath = '/a/'\nrequire = 'allowlist'\nfingerprints = ['nope']",
            "not a SHA-256 fingerprint",
        ),
        ("this is not toml", "not valid TOML"),
        ("[limits]\nrequest_timeout = -1", "limits.request_timeout: expected a positive number"),
    ],
)
def test_config_errors_are_clear_and_exit_2(tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "hospes", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hospes",
                "serve",
                "--port",
                str(port),
                "--state",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


SLOW_SERVER = """
import asyncio, sys
from pathlib import Path
from hospes import Application
from hospes.config import Config
from hospes.runner import run

app = Application()

release = Path(sys.argv[2])

@app.route("/slow")
async def slow(request):
    print("slow request started", flush=True)
    while not release.exists():  # until the test has seen the listener closed
        await asyncio.sleep(0.01)
    return "finished\\n"

def announce(started, config):
    print("port", started.addresses[0][1], flush=True)

run(Config(port=0, state=Path(sys.argv[1]), access_log="off"), app, announce=announce)
"""


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_finishes_in_flight_requests_then_exits_0(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SERVER)
    release = tmp_path / "release"
    process = Process([sys.executable, str(script), str(tmp_path / "state"), str(release)])
    port = int(process.wait_for_line(r"^port (\d+)$", stderr=False).group(1))
    results = []
    request = threading.Thread(
        target=lambda: results.append(raw_request(port, f"gemini://localhost:{port}/slow"))
    )
    request.start()
    process.wait_for_line("slow request started", stderr=False)
    process.send_signal(signal.SIGTERM)
    # The listener closes at once; the request in flight still gets its whole answer.
    assert wait_for(lambda: refuses_connections(port), 5)
    assert not results
    release.touch()
    request.join(10)
    code, _, stderr = process.wait(10)
    assert results and results[0].body == b"finished\n"
    assert code == 0, stderr


def test_python_dash_m_and_version():
    result = subprocess.run(
        [sys.executable, "-m", "hospes", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("hospes ")


def test_demo_capsule_is_packaged():
    assert (Path(CAPSULE) / "index.gmi").exists()


# -- messages that name the culprit -----------------------------------------------------------


def run_serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hospes", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_port_in_use_names_the_address_and_port(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_serve("--port", str(port), "--state", str(tmp_path))
    assert result.returncode == 1
    assert f"hospes: cannot start: 127.0.0.1 port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_host_that_does_not_resolve_is_named(tmp_path):
    result = run_serve("--host", "no-such-host.invalid", "--port", "0", "--state", str(tmp_path))
    assert result.returncode == 1
    assert "the address to listen on 'no-such-host.invalid' does not resolve" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hostname_given_as_a_url(tmp_path):
    result = run_serve("--hostname", "gemini://example.org/", "--state", str(tmp_path))
    assert result.returncode == 2
    assert (
        "hostnames[0]: expected a host name, got 'gemini://example.org/' (write 'example.org')"
        in result.stderr
    )
    with_port = run_serve("--hostname", "example.org:1966", "--state", str(tmp_path))
    assert "(write 'example.org', and the port as port = 1966)" in with_port.stderr
    assert not (tmp_path / "certs").exists()


def test_a_certificate_and_a_key_that_do_not_match(tmp_path, certs):
    one, other = certs.make("localhost"), certs.make("localhost")
    result = run_serve("--cert", str(one.cert), "--key", str(other.key), "--state", str(tmp_path))
    assert result.returncode == 2
    assert f"{other.key} is not the private key of {one.cert}" in result.stderr


def test_an_encrypted_key_is_refused_without_a_prompt_on_the_terminal(tmp_path, certs):
    """OpenSSL would ask for the pass phrase on the controlling terminal and wait forever."""
    server = certs.make("localhost")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        server.private_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret")
        )
    )
    # The server runs with a terminal of its own (a pty as its controlling terminal).
    main, terminal = pty.openpty()
    command = [sys.executable, "-m", "hospes", "serve", "--port", "0", "--state", str(tmp_path)]
    command += ["--cert", str(server.cert), "--key", str(encrypted)]
    process = subprocess.Popen(
        command,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        # Make the pty the new session's controlling terminal (what /dev/tty opens).
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
    )
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    output += os.read(main, 4096)
                except OSError:  # EIO: the terminal's last holder closed it
                    break
        try:
            process.wait(max(0.0, deadline - time.monotonic()) + 1)
            prompted = False
        except subprocess.TimeoutExpired:
            prompted = True
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        with contextlib.suppress(OSError):
            while chunk := os.read(main, 4096):
                output += chunk
        os.close(main)
    text = output.decode("utf-8", "replace")
    assert not prompted, f"still running, waiting for a pass phrase: {text!r}"
    assert "pass phrase:" not in text.lower()
    assert process.returncode == 2
    assert f"{encrypted} is encrypted (it needs a pass phrase)" in text


def test_a_missing_root_names_the_file_and_the_key(tmp_path):
    config = tmp_path / "hospes.toml"
    config.write_text(
        textwrap.dedent(
            """
            hostnames = ["a.test", "b.test"]
            root = "nowhere"
            state = "state"
            [hosts."b.test"]
            root = "elsewhere"
            """
        )
    )
    result = run_serve("--config", str(config), "--port", "0")
    assert result.returncode == 2
    assert f"{config}: root: capsule root {tmp_path / 'nowhere'} does not exist" in result.stderr
    assert (
        f'{config}: hosts."b.test".root: capsule root {tmp_path / "elsewhere"} does not exist'
        in result.stderr
    )
    flag = run_serve("--root", str(tmp_path / "missing"), "--state", str(tmp_path / "state"))
    assert flag.returncode == 2
    assert f"--root: capsule root {tmp_path / 'missing'} does not exist" in flag.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "request_timeout = 10",
            "unknown setting 'request_timeout' (did you mean [limits] request_timeout?)",
        ),
        (
            'hostnames = ["a.test"]\n[hosts."gemini.example"]\nroot = "x"',
            "hosts.\"gemini.example\": 'gemini.example' is not one of hostnames ['a.test']; "
            "add it to hostnames",
        ),
        (
            'hostnames = ["a.test"]\n[[access]]\npath = "/p/"\nrequire = "certificate"\n'
            'host = "a.tset"',
            "access[0].host: 'a.tset' is not one of hostnames ['a.test'] (did you mean 'a.test'?)",
        ),
    ],
)
def test_keys_in_the_wrong_place_are_named(tmp_path, content, message):
    config = tmp_path / "hospes.toml"
    config.write_text(content)
    result = run_serve("--config", str(config))
    assert result.returncode == 2
    assert f"hospes: {config}: {message}" in result.stderr


def test_a_reload_that_adds_a_hostname_logs_its_certificate(tmp_path):
    config = tmp_path / "hospes.toml"
    config.write_text('hostnames = ["localhost"]\nstate = "state"\n')
    process = serve_process(["--config", str(config)])
    try:
        config.write_text('hostnames = ["localhost", "new.test"]\nstate = "state"\n')
        process.send_signal(signal.SIGHUP)
        match = process.wait_for_line(
            r"created a certificate for new\.test: certificate (SHA256:\w+), key (SHA256:\w+)"
        )
        process.wait_for_line("reloaded the configuration")
    finally:
        code, _, stderr = process.stop()
    assert code == 0, stderr
    pem = (tmp_path / "state" / "certs" / "new.test.crt").read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    assert match.group(1) == fingerprint(certificate.public_bytes(Encoding.DER))
    assert "now serving localhost" not in stderr  # only what is new is told


def test_banner_names_each_hosts_capsule_and_absolute_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = tmp_path / "hospes.toml"
    config.write_text(
        textwrap.dedent(
            """
            hostnames = ["a.test", "b.test", "c.test"]
            state = "state"
            [hosts."a.test"]
            root = "a"
            [hosts."b.test"]
            root = "b"
            lang = "fr"
            listing = true
            accounts = { mount = "/konto/" }
            [[access]]
            path = "/friends/"
            require = "allowlist"
            lists = ["friends"]
            """
        )
    )
    process = serve_process(["--config", str(config)], cwd=tmp_path)
    port = process.port
    _, _, stderr = process.stop()
    assert "demo" not in stderr
    assert f"gemini://a.test:{port}/ serves {tmp_path / 'a'}\n" in stderr
    assert (
        f"gemini://b.test:{port}/ serves {tmp_path / 'b'} "
        "(lang=fr, listings, account pages at /konto/)" in stderr
    )
    assert f"gemini://c.test:{port}/ serves nothing (no root" in stderr
    assert f"state in {tmp_path / 'state'}\n" in stderr
    assert f"identity store {tmp_path / 'state' / 'hospes.sqlite3'}" in stderr
    assert (
        f"to let a visitor into /friends/ (allow-list 'friends'): hospes allow add friends "
        f"FINGERPRINT --config {config} --state {tmp_path / 'state'}" in stderr
    )


def test_the_demo_banner_says_how_to_let_someone_in(tmp_path):
    process = serve_process(["--state", "relative-state"], cwd=tmp_path)
    _, _, stderr = process.stop()
    assert f"gemini://localhost:{process.port}/ serves the demo capsule" in stderr
    state = tmp_path / "relative-state"
    assert f"state in {state}\n" in stderr
    assert (
        f"to let a visitor into /allowlist/ (allow-list 'demo'): "
        f"hospes allow add demo FINGERPRINT --state {state}" in stderr
    )


def test_the_banner_says_which_configuration_file_was_read(tmp_path):
    """A real server started by $HOSPES_CONFIG says so; started without one, it says that too."""
    config = tmp_path / "hospes.toml"
    config.write_text('state = "from-the-file"\n')
    process = serve_process([], env={"HOSPES_CONFIG": str(config)}, cwd=tmp_path)
    _, _, stderr = process.stop()
    lines = stderr.splitlines()
    assert lines[1] == f"  configuration {config} (from $HOSPES_CONFIG)", stderr
    assert f"state in {tmp_path / 'from-the-file'}\n" in stderr
    process = serve_process(
        ["--state", str(tmp_path / "flag")], env={"HOSPES_CONFIG": ""}, cwd=tmp_path
    )
    _, _, stderr = process.stop()
    line = stderr.splitlines()[1]
    if Path("/etc/hospes/hospes.toml").exists():  # this machine has one: it is named
        assert line == "  configuration /etc/hospes/hospes.toml (found in /etc/hospes)", stderr
    else:
        assert line.startswith("  no configuration file (no --config, $HOSPES_CONFIG or "), stderr
