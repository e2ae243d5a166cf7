"""contrib/hospes.service: a unit systemd accepts, sandboxed, and whose command hospes accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hospes.cli import build_parser

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
    assert (str(args.config), str(args.state)) == ("/etc/hospes/hospes.toml", "/var/lib/hospes")


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
