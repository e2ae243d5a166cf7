"""The access log: one escaped line per request; a full disk is reported, never fatal."""

from __future__ import annotations

import io
import logging
import re

from hospes.server.accesslog import AccessLog

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
