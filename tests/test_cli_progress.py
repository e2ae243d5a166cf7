"""The progress line of ``hospes get -o`` and ``hospes put``: when it appears, what it says."""

from __future__ import annotations

import io

import pytest

from hospes.cli.progress import Progress, human_size


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_quick_transfer_prints_nothing() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("received", enabled=True, clock=clock, stream=out)
    clock.now += 0.9
    progress.advance(4096)
    progress.done()
    assert out.getvalue() == ""


def test_a_download_shows_bytes_and_rate_without_a_percentage() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("received", enabled=True, clock=clock, stream=out)
    clock.now += 2.0
    progress.advance(3 * 1024 * 1024)
    assert out.getvalue() == "\r\x1b[K  3.0 MiB received, 1.5 MiB/s"
    progress.done()
    assert out.getvalue().endswith("\r\x1b[K")


def test_redraws_are_throttled_but_an_upload_always_draws_its_end() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("sent", 2048, enabled=True, clock=clock, stream=out)
    clock.now += 1.0
    progress.reached(1024)
    clock.now += 0.05
    progress.reached(1536)  # too soon after the last line: not drawn
    clock.now += 0.05
    progress.reached(2048)  # the end: drawn anyway
    lines = out.getvalue().split("\r\x1b[K")[1:]
    assert lines[0].startswith("  1.0 KiB of 2.0 KiB sent (50%)")
    assert lines[1].startswith("  2.0 KiB of 2.0 KiB sent (100%)")
    assert len(lines) == 2


def test_disabled_counts_but_never_writes() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("received", enabled=False, clock=clock, stream=out)
    clock.now += 5
    progress.advance(10)
    progress.advance(5)
    progress.done()
    assert progress.moved == 15
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (2048 * 1024**3, "2048.0 GiB"),
    ],
)
def test_human_size(count: int, text: str) -> None:
    assert human_size(count) == text
