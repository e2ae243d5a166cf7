"""``hospes serve`` as a real process: first run, certificate reuse, config errors, signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

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
