"""SIGHUP on a real ``hospes serve --config`` process: the new configuration and certificates
take effect for new connections, in-flight requests finish on the old ones, a bad
configuration is refused with a clear message and the old one stays in force.
"""

from __future__ import annotations

import signal
import ssl
from pathlib import Path

import pytest

from helpers import Hospes, serve_process
from hospes.gemini.fingerprint import fingerprint
from hospes.selfsigned import (
    generate_key,
    self_signed_certificate,
    write_certificate,
    write_private_key,
)
from hostile import client_context, connect, read_all, request, tls_connect, wait_for

pytestmark = pytest.mark.slow


class Serving:
    """A ``hospes serve --config`` process (its port from the banner), stderr line by line."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.process = Hospes(["serve", "--config", str(config)])
        self.port = self.process.listening()
        self.lines = self.process.stderr

    def get(self, path: str = "/") -> tuple[int, bytes]:
        response = request(self.port, f"gemini://localhost:{self.port}{path}")
        return response.status, response.body

    def reload(self, text: str | None = None) -> None:
        if text is not None:
            self.config.write_text(text)
        seen = len(self.lines)
        self.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("reload" in line for line in self.lines[seen:]), 5), self.lines[
            seen:
        ]

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> int:
        return self.process.stop()[0]


def capsule(directory: Path, text: str) -> Path:
    directory.mkdir()
    (directory / "index.gmi").write_text(text)
    (directory / "secret").mkdir()
    (directory / "secret" / "index.gmi").write_text(f"secret {text}")
    return directory


def test_sighup_reloads_root_and_rules_keeps_inflight_and_refuses_bad_config(tmp_path):
    capsule(tmp_path / "a", "A\n")
    capsule(tmp_path / "b", "B\n")
    base = 'port = 0\nstate = "state"\naccess_log = "off"\nlog_level = "info"\n'
    config = tmp_path / "hospes.toml"
    config.write_text(base + 'root = "a"\n')
    serving = Serving(config)
    port = serving.port
    try:
        assert serving.get() == (20, b"A\n")
        assert serving.get("/secret/") == (20, b"secret A\n")
        inflight = tls_connect(port)  # accepted, handshake done, request not sent yet

        serving.reload(
            base + 'root = "b"\n[[access]]\npath = "/secret/"\nrequire = "certificate"\n'
        )
        assert serving.said(f"reloaded the configuration from {config}")
        assert not serving.said("port changed"), "port 0 is satisfied by the port in use"
        assert serving.get() == (20, b"B\n")
        assert serving.get("/secret/")[0] == 60

        # The connection accepted before the reload is answered by the old configuration.
        with inflight:
            inflight.sendall(f"gemini://localhost:{port}/\r\n".encode())
            assert read_all(inflight).endswith(b"\r\nA\n")

        serving.reload(base + 'root = "b"\n[limits]\nrequest_timout = 3\n')
        assert serving.said("reload failed, still serving the previous configuration")
        assert serving.said("limits: unknown setting 'request_timout'")
        assert serving.get("/secret/")[0] == 60

        serving.reload("port = [\n")
        assert serving.said("not valid TOML")
        assert serving.get() == (20, b"B\n")

        serving.reload(base + 'root = "missing"\n')
        assert serving.said("capsule root")
        assert serving.get() == (20, b"B\n")

        serving.reload(base.replace("port = 0", f"port = {port + 1}") + 'root = "a"\n')
        assert serving.said(f"port changed from {port} to {port + 1}: that needs a restart")
        assert serving.get() == (20, b"A\n")
        assert serving.process.poll() is None
    finally:
        assert serving.stop() == 0


def server_certificate(directory: Path) -> tuple[Path, Path, str]:
    key = generate_key("ecdsa")
    cert = self_signed_certificate(key, "localhost", hostnames=["localhost"])
    write_certificate(directory / "server.crt", cert)
    write_private_key(directory / "server.key", key)
    der = (directory / "server.crt").read_text()
    return (
        directory / "server.crt",
        directory / "server.key",
        fingerprint(ssl.PEM_cert_to_DER_cert(der)),
    )


def presented(port: int) -> str:
    with (
        connect(port) as sock,
        client_context().wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(der)


def test_sighup_picks_up_a_renewed_certificate_and_reopens_the_access_log(tmp_path):
    capsule(tmp_path / "a", "A\n")
    cert, key, first = server_certificate(tmp_path)
    config = tmp_path / "hospes.toml"
    config.write_text(
        f'port = 0\nstate = "state"\nroot = "a"\naccess_log = "access.log"\n'
        f'cert = "{cert}"\nkey = "{key}"\n'
    )
    log = tmp_path / "access.log"
    serving = Serving(config)
    port = serving.port
    try:
        assert presented(port) == first
        assert serving.get() == (20, b"A\n")
        assert wait_for(lambda: log.exists() and log.read_text().count("\n") == 1)

        log.rename(tmp_path / "access.log.1")  # as logrotate does
        _, _, second = server_certificate(tmp_path)  # renewed in place
        assert second != first
        serving.reload()
        assert presented(port) == second
        assert serving.get() == (20, b"A\n")
        assert wait_for(lambda: log.exists() and " 20 " in log.read_text())
        assert (tmp_path / "access.log.1").read_text().count("\n") == 1

        key.write_text("not a key\n")
        serving.reload()
        assert serving.said(f"reload failed, still serving the previous configuration: {key}")
        assert presented(port) == second
    finally:
        assert serving.stop() == 0


def test_sighup_without_a_config_file_reloads_the_command_line(tmp_path):
    root = capsule(tmp_path / "a", "A\n")
    process = serve_process(["--root", str(root), "--state", str(tmp_path / "s")])
    port = process.port
    try:
        process.send_signal(signal.SIGHUP)
        process.send_signal(signal.SIGUSR1)
        assert request(port, f"gemini://localhost:{port}/").body == b"A\n"
    finally:
        code, _, stderr = process.stop()
    assert code == 0
    assert "reloaded the configuration from the command line" in stderr
    assert "counters: accepted " in stderr
