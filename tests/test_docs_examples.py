"""Every ```python block of README.md and docs/*.md runs, in a fresh interpreter.

What the harness changes, and nothing else: URLs of ``gemini://example.org/`` and
``gemini://localhost/`` point at a test server on a free port (the tests reach
loopback only), and each block runs in an empty directory (with a ``capsule/``),
with its own client data and state directories.  A block that serves (a line
calling ``run(``) runs with :func:`hospes.runner.run` wrapped to serve on port 0
instead of 1965 and to print the port it was given on stderr (no port is picked
here and handed over, which another program could take in between); it is asked
for a page, then stopped with SIGTERM, which
must end it with status 0 (``tests/test_docs.py`` checks the README's application
page by page).  A block may opt out with a comment ``# not run by the tests:
REASON``; none does today.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import Process, raw_request
from hospes.config import Config, HostConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPT_OUT = "# not run by the tests:"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_URL = re.compile(r"gemini://(?:example\.org|localhost)/")
_SERVES = re.compile(r"^run\(", re.MULTILINE)  # hospes.runner.run: serves until a signal
_ON_PORT_ZERO = """\
import dataclasses as _dataclasses, sys as _sys, hospes.runner as _runner
_serve = _runner.run
def _run(config, *args, announce=None, **kwargs):
    def _announced(started, config):
        if announce is not None:
            announce(started, config)
        print("docs example: listening on port", config.port, file=_sys.stderr, flush=True)
    return _serve(_dataclasses.replace(config, port=0), *args, announce=_announced, **kwargs)
_runner.run = _run
"""
_PORT = re.compile(r"^docs example: listening on port (\d+)$")


def blocks() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{document.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def test_every_document_with_python_has_its_blocks_found():
    found = {where.split(":")[0] for where, _ in blocks()}
    assert {"README.md", "docs/client.md", "docs/accounts.md"} <= found
    assert len(blocks()) >= 5


@pytest.fixture
def target(serve, tmp_path):
    """A server the examples' URLs are pointed at, with the files they ask for."""
    root = tmp_path / "target"
    root.mkdir()
    (root / "index.gmi").write_text("# The test capsule\n")
    (root / "big.iso").write_bytes(b"\0" * 300_000)
    return serve(config=Config(hosts=[HostConfig("localhost")], root=root))


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[where for where, _ in blocks()])
def test_python_block_runs(where, code, target, tmp_path):
    if OPT_OUT in code:
        reason = code.split(OPT_OUT, 1)[1].splitlines()[0].strip()
        assert reason, f"{where}: say why the block is not run"
        pytest.skip(f"{where}: {reason}")
    work = tmp_path / "work"
    (work / "capsule").mkdir(parents=True)
    (work / "capsule" / "index.gmi").write_text("# The example's capsule\n")
    code = _URL.sub(f"gemini://localhost:{target.port}/", code)
    env = {"HOSPES_DATA_DIR": str(tmp_path / "client"), "XDG_STATE_HOME": str(tmp_path / "xdg")}
    command = [sys.executable, "-c", code]
    if not _SERVES.search(code):
        result = subprocess.run(
            command,
            cwd=work,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{where}:\n{result.stderr}"
        return
    process = Process([sys.executable, "-c", _ON_PORT_ZERO + code], env, cwd=work)
    try:
        port = int(process.wait_for_line(_PORT, timeout=30).group(1))
        response = _first_answer(process, port, where)
        assert response.status == 20, response.header
        if "/hello/{name}" in code:  # the README's application: its own route
            url = f"gemini://example.org:{port}/hello/world"
            hello = raw_request(port, url, server_name="example.org")
            assert hello.body == b"# Hello, world!\n"
    finally:
        status, _, stderr = process.stop(signal.SIGTERM)
    assert status == 0, f"{where}:\n{stderr}"


def _first_answer(process: Process, port: int, where: str):
    """The example server's answer to ``/``, tried until it comes (several workers print the
    port before they listen)."""
    deadline = time.monotonic() + 30
    host = "example.org"
    while True:
        try:
            return raw_request(port, f"gemini://{host}:{port}/", server_name=host, timeout=5)
        except OSError:
            if process.poll() is not None:
                _, _, stderr = process.wait()
                raise AssertionError(f"{where} exited:\n{stderr}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{where} does not listen on {port}") from None
            time.sleep(0.05)
