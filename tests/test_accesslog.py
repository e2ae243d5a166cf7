"""The access log: one escaped line per request; a full disk is reported, never fatal."""

from __future__ import annotations

import io
import logging
import re
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import identity_of, raw_request, serve_process
from hospes.server.accesslog import LINE as DOCUMENTED_LINE
from hospes.server.accesslog import AccessLog, quote, unquote

LINE = re.compile(
    r'\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 192\.0\.2\.1:5000 (SHA256:[0-9a-f]{12}|-) "(.*)" '
    r"(\S+) (\d+) (\d+\.\d)ms\Z"
)


def test_line_format():
    stream = io.StringIO()
    access = AccessLog(stream)
    access.record(
        remote="192.0.2.1:5000",
        fingerprint="SHA256:" + "ab" * 32,
        target="gemini://a/p",
        status=20,
        size=123,
        seconds=0.0042,
    )
    match = LINE.match(stream.getvalue().rstrip("\n"))
    assert match is not None, stream.getvalue()
    assert match.groups() == ("SHA256:abababababab", "gemini://a/p", "20", "123", "4.2")


def test_hostile_target_cannot_forge_lines():
    stream = io.StringIO()
    access = AccessLog(stream)
    hostile = (
        'gemini://a/"\r\n2026-01-01T00:00:00.000Z 10.0.0.1:1 - "gemini://a/" 20 0 0.1ms\x1b[2J'
    )
    access.record(
        remote="192.0.2.1:5000", fingerprint=None, target=hostile, status=59, size=0, seconds=0
    )
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "\x1b" not in text and "\r" not in text
    assert LINE.match(text.rstrip("\n")) is not None


class Full:
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        return None


def test_write_errors_are_reported_once_and_not_fatal(caplog):
    access = AccessLog(Full())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="hospes.server"):
        for _ in range(3):
            access.record(remote="r", fingerprint=None, target="t", status=20, size=0, seconds=0)
    errors = [record for record in caplog.records if "access log" in record.getMessage()]
    assert len(errors) == 1
    assert "No space left" in errors[0].getMessage()


def test_batches_are_written_in_whole_lines_of_at_most_pipe_buf():
    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            return None

    access = AccessLog(Recorder())  # type: ignore[arg-type]
    access._lines = [f"line {index} " + "é" * 40 + "\n" for index in range(500)]
    access.flush()
    assert len(writes) > 1
    assert all(len(chunk.encode()) <= 4096 for chunk in writes)
    assert all(chunk.endswith("\n") for chunk in writes)
    assert "".join(writes) == "".join(f"line {index} " + "é" * 40 + "\n" for index in range(500))


def _logged(server, count: int) -> list[re.Match[str]]:
    """The first ``count`` access lines of ``server``, parsed with the documented grammar."""
    deadline = time.monotonic() + 10
    while len(server.log_lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = server.log_lines[:count]
    assert len(lines) == count, lines
    matches = [DOCUMENTED_LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches  # type: ignore[return-value]


def test_a_request_line_cannot_forge_a_field_or_an_escape(demo):
    """Issue 9 item 10: a backslash must not let a request line end the URL field early.

    Before ``\\`` was escaped, ``a\\" 20 4242 0.1ms "`` closed the quoted URL
    after ``a\\`` for any reader that honours the escapes, and what followed read as
    status 20; a literal ``\\x1b`` looked exactly like an escaped ESC.
    """
    forged = 'gemini://localhost/a\\" 20 4242 0.1ms "b\\'
    literal = "gemini://localhost/\\x1b[2J"
    real = "gemini://localhost/\x1b[2J"
    for line in (forged, literal, real):
        assert raw_request(demo.port, line).status == 59
    matches = _logged(demo, 3)
    assert [match["status"] for match in matches] == ["59", "59", "59"]
    assert [match["size"] for match in matches] == ["0", "0", "0"]
    assert [unquote(match["target"]) for match in matches] == [forged, literal, real]
    assert matches[1]["target"] != matches[2]["target"]
    assert all("\x1b" not in line for line in demo.log_lines)


def test_full_fingerprints(certs):
    stream = io.StringIO()
    full = "SHA256:" + "ab" * 32
    AccessLog(stream, full_fingerprints=True).record(
        remote="192.0.2.1:5000", fingerprint=full, target="/", status=20, size=0, seconds=0
    )
    match = DOCUMENTED_LINE.match(stream.getvalue().rstrip("\n"))
    assert match is not None
    assert match["fingerprint"] == full


def _documented_pattern() -> re.Pattern[str]:
    """The regular expression docs/operations.md gives for an access-log line."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    block = text[text.index("A line matches this regular expression") :]
    start = block.index("```\n") + 4
    return re.compile(block[start : block.index("\n```", start)])


@given(st.text(max_size=300), st.sampled_from(["-", "SHA256:" + "ab" * 6, "SHA256:" + "cd" * 32]))
def test_the_documented_expression_reads_lines_as_the_code_does(text, who):
    stream = io.StringIO()
    AccessLog(stream, full_fingerprints=len(who) > 19).record(
        remote="[::1]:5",
        fingerprint=None if who == "-" else who,
        target=text,
        status=20,
        size=7,
        seconds=0.01,
    )
    line = stream.getvalue().rstrip("\n")
    documented = _documented_pattern().match(line)
    assert documented is not None, line
    assert documented.groups() == DOCUMENTED_LINE.match(line).groups()
    assert unquote(documented.group(4)) == text[:1024] + ("…" if len(text) > 1024 else "")


@given(st.text(max_size=300))
def test_quote_is_one_unambiguous_field(text):
    quoted = quote(text)
    assert unquote(quoted) == text
    line = f'2026-01-01T00:00:00.000Z 192.0.2.1:5000 - "{quoted}" 59 0 0.1ms'
    match = DOCUMENTED_LINE.match(line)
    assert match is not None
    assert match["target"] == quoted
    assert match["status"] == "59"
    assert "\n" not in quoted and "\r" not in quoted and "\x1b" not in quoted


@pytest.mark.slow
def test_access_log_fingerprint_full_in_the_configuration(tmp_path, certs):
    """``access_log_fingerprint = "full"`` writes whole fingerprints; a reload applies a change."""
    log_file = tmp_path / "access.log"
    config = tmp_path / "hospes.toml"
    config.write_text(f'access_log = "{log_file}"\naccess_log_fingerprint = "full"\n')
    alice = certs.make("alice")
    process = serve_process(["--config", str(config), "--state", str(tmp_path / "state")])
    try:
        assert (
            raw_request(process.port, f"gemini://localhost:{process.port}/", cert=alice).status
            == 20
        )
        config.write_text(f'access_log = "{log_file}"\n')  # back to the default: short
        process.send_signal(signal.SIGHUP)
        process.wait_for_line("reloaded the configuration")
        assert (
            raw_request(process.port, f"gemini://localhost:{process.port}/", cert=alice).status
            == 20
        )
    finally:
        code, _, _ = process.stop()
    assert code == 0
    first, second = [DOCUMENTED_LINE.match(line) for line in log_file.read_text().splitlines()]
    expected = identity_of(alice).fingerprint
    assert first["fingerprint"] == expected
    assert second["fingerprint"] == expected[:19]
