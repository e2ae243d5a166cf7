"""contrib/hospes.service: a unit systemd accepts, sandboxed, and whose command hospes accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hospes.cli import build_parser
from hospes.cli import store as cli_store
from hospes.cli.serve import build_config
from hospes.cli.store import find_config, locate_store
from hospes.runner import store_path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "hospes.service"


def service() -> dict[str, list[str]]:
    """The [Service] section, every value of a repeated key kept."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_is_sandboxed_and_runs_as_a_dedicated_user():
    unit = service()
    assert unit["User"] == ["hospes"]
    assert unit["StateDirectory"] == ["hospes"]
    assert unit["StateDirectoryMode"] == ["0700"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["CapabilityBoundingSet"] == [""]  # empty: 1965 > 1024 needs no capability
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    assert set(unit["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert unit["Environment"] == ["HOSPES_CONFIG=/etc/hospes/hospes.toml"]


def test_its_command_line_is_one_hospes_accepts():
    command = shlex.split(service()["ExecStart"][0])
    assert command[0].endswith("/hospes")
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    assert str(args.config) == "/etc/hospes/hospes.toml"
    assert args.state is None  # the state directory is the file's: the admin commands read it


@pytest.mark.parametrize("state", [True, False], ids=["state-in-the-file", "state-left-out"])
def test_the_admin_commands_open_the_store_of_the_units_server(monkeypatch, tmp_path, state):
    """``sudo -u hospes hospes allow add …`` changes the store the unit's server reads.

    The server runs the unit's ``ExecStart`` with its ``Environment``; the admin
    command is run by hand as docs/operations.md shows: no flag, no
    ``$HOSPES_CONFIG`` (sudo does not pass the unit's environment), ``$HOME`` the
    user's home (``/var/lib/hospes``), and ``/etc/hospes/hospes.toml`` in place.
    """
    home = tmp_path / "var" / "lib" / "hospes"
    system = tmp_path / "etc" / "hospes" / "hospes.toml"
    system.parent.mkdir(parents=True)
    system.write_text((f'state = "{home}"\n' if state else "") + 'hostnames = ["localhost"]\n')
    monkeypatch.setattr(cli_store, "SYSTEM_CONFIG", system)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("HOSPES_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(home))

    unit = service()
    executed = unit["ExecStart"][0].replace("/etc/hospes/hospes.toml", str(system))
    command = shlex.split(executed.replace("/var/lib/hospes", str(home)))
    environment = dict(
        value.replace("/etc/hospes/hospes.toml", str(system)).split("=", 1)
        for value in unit["Environment"]
    )
    served = build_parser().parse_args(command[1:])
    server = build_config(served, find_config(served.config, environment))

    typed = build_parser().parse_args(["allow", "add", "friends", "SHA256:" + "ab" * 32])
    admin = locate_store(typed, environ={})
    assert admin.source.path == system
    assert admin.path == store_path(server)
    if state:
        assert admin.path == home / "hospes.sqlite3"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # verify checks that ExecStart's program exists: point it at this hospes.
    executable = Path(sys.executable).parent / "hospes"
    assert executable.exists()
    text = UNIT.read_text().replace("/usr/local/bin/hospes", str(executable))
    unit = tmp_path / "hospes.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "hospes.service" not in result.stderr, result.stderr
