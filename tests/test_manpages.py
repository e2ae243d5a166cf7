"""hospes(1) and hospes.toml(5): generated from the parsers and the schema, committed, installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hospes.cli import build_parser
from hospes.cli.manpage import PAGES, hospes_page, main, toml_page
from hospes.config import SCHEMA
from hospes.config.schema import reference

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
needs_man = pytest.mark.skipif(
    shutil.which("man") is None, reason="man is not installed (Debian: apt-get install man-db)"
)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_pages_are_up_to_date(name):
    assert (MAN / name).read_text(encoding="utf-8") == PAGES[name](), (
        f"man/{name} is out of date: run python -m hospes.cli.manpage man"
    )


def test_check_mode_reports_a_stale_page(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "hospes.1").write_text("stale\n")
    assert main(["--check", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().err


def render(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["man", "--warnings", "-P", "cat", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "MANWIDTH": "200", "LC_ALL": "C.UTF-8"},
    )


@needs_man
def test_man_renders_hospes_1_with_every_command_and_flag():
    result = render("-l", str(MAN / "hospes.1"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = result.stdout
    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    for name, command in commands.choices.items():
        assert f"hospes {name}" in text, name
        for action in command._actions:
            for option in action.option_strings:
                assert option in text, (name, option)
    for flag in ("--access-log", "--workers", "--until", "--accept-key"):
        assert flag in text
    assert "HOSPES_CONFIG" in text and "EXIT STATUS" in text


@needs_man
def test_man_renders_hospes_toml_5_with_every_key():
    result = render("-l", str(MAN / "hospes.toml.5"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = result.stdout
    for entry in reference(SCHEMA):
        assert f"{entry.key.name} = " in text or f"[{entry.key.name}" in text, entry.key.name
        if entry.section:
            assert entry.section in text
    assert "access_log_fingerprint = one of 'short', 'full'" in text


def test_roff_requests_cannot_come_from_help_texts():
    for page in (hospes_page(), toml_page()):
        for line in page.splitlines():
            if line.startswith((".", "'")):
                assert line.split()[0] in {".TH", ".SH", ".SS", ".TP", ".PP", ".br", ".nf", ".fi"}


@needs_man
@pytest.mark.slow
def test_the_package_installs_the_pages(tmp_path):
    """A wheel built from the tree puts both pages where man looks under its prefix."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("hospes-*.whl")
    prefix = tmp_path / "prefix"
    # -I: into the new prefix only; without it pip would first uninstall the hospes under test.
    pip_install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "-I"]
    install = subprocess.run(
        [*pip_install, "--prefix", str(prefix), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    for section, name in (("1", "hospes"), ("5", "hospes.toml")):
        page = prefix / "share" / "man" / f"man{section}" / f"{name}.{section}"
        assert page.read_text() == (MAN / page.name).read_text()
        result = render("-M", str(prefix / "share" / "man"), section, name)
        assert result.returncode == 0, result.stderr
        assert name.upper() in result.stdout
