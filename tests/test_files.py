"""Atomic writes: the whole new file or the old one, with the right mode, no debris."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hospes.files import UMASK, atomic_writer, write_atomically


def test_write_and_replace(tmp_path):
    target = tmp_path / "sub" / "file"
    write_atomically(target, b"one", mode=0o600)
    assert target.read_bytes() == b"one"
    assert target.stat().st_mode & 0o777 == 0o600
    write_atomically(target, b"two", mode=0o644)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in target.parent.iterdir()) == ["file"]


def test_exclusive_never_replaces(tmp_path):
    target = tmp_path / "key"
    write_atomically(target, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomically(target, b"second", exclusive=True)
    assert target.read_bytes() == b"first"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["key"]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


# -- the streaming writer ---------------------------------------------------------------------


def others(directory: Path, *names: str) -> list[str]:
    """The names in ``directory`` other than ``names``: temporary files left behind."""
    return sorted(path.name for path in directory.iterdir() if path.name not in names)


def test_streamed_chunks_appear_at_once_when_the_block_ends(tmp_path):
    target = tmp_path / "body"
    target.write_bytes(b"old")
    with atomic_writer(target) as handle:
        for index in range(100):
            handle.write(bytes([index]) * 1000)
            assert target.read_bytes() == b"old"  # readers see the old file throughout
        (temporary,) = others(tmp_path, "body")
        assert temporary.startswith(".body.")  # beside the target: the rename is atomic
    assert target.read_bytes() == b"".join(bytes([index]) * 1000 for index in range(100))
    assert others(tmp_path, "body") == []


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_mid_stream_leaves_the_old_file_and_nothing_else(tmp_path, error):
    target = tmp_path / "body"
    target.write_bytes(b"old")
    with pytest.raises(type(error)), atomic_writer(target) as handle:
        handle.write(b"new, but only half of it")
        raise error
    assert target.read_bytes() == b"old"
    assert others(tmp_path, "body") == []


def test_a_failed_first_write_leaves_no_file(tmp_path):
    target = tmp_path / "never"
    with pytest.raises(ValueError, match="late"), atomic_writer(target) as handle:
        handle.write(b"x")
        raise ValueError("late")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_an_error_and_is_not_created(tmp_path):
    target = tmp_path / "missing" / "body"
    with pytest.raises(FileNotFoundError), atomic_writer(target) as handle:
        handle.write(b"never written")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_in_the_way_is_an_error_and_leaves_no_temporary(tmp_path):
    (tmp_path / "body").mkdir()
    with pytest.raises(IsADirectoryError), atomic_writer(tmp_path / "body") as handle:
        handle.write(b"data")
    assert (tmp_path / "body").is_dir()
    assert others(tmp_path, "body") == []


def test_exclusive_streamed_write_never_replaces(tmp_path):
    target = tmp_path / "key"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError), atomic_writer(target, exclusive=True) as handle:
        handle.write(b"second")
    assert target.read_bytes() == b"first"
    assert others(tmp_path, "key") == []


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test (no threads run here), restored afterwards."""
    original = os.umask(0o022)
    yield os.umask
    os.umask(original)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_umask_mode_is_what_a_new_file_gets(tmp_path, umask, mask, expected):
    umask(mask)
    with atomic_writer(tmp_path / "body", mode=UMASK) as handle:
        handle.write(b"data")
    with (tmp_path / "plain").open("wb"):
        pass
    assert (tmp_path / "plain").stat().st_mode & 0o777 == expected
    assert (tmp_path / "body").stat().st_mode & 0o777 == expected


def test_an_explicit_mode_ignores_the_umask(tmp_path, umask):
    umask(0o077)
    with atomic_writer(tmp_path / "certificate", mode=0o644) as handle:
        handle.write(b"public")
    write_atomically(tmp_path / "key", b"secret", mode=0o600)
    assert (tmp_path / "certificate").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600


def test_the_writer_never_touches_the_process_umask(tmp_path, monkeypatch):
    """Setting the umask to read it is process-wide: another thread could create a 0o666 file."""

    def forbidden(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:#o}) called")

    monkeypatch.setattr(os, "umask", forbidden)
    with atomic_writer(tmp_path / "body", mode=UMASK) as handle:
        handle.write(b"data")
    write_atomically(tmp_path / "key", b"secret", mode=0o600)
    assert (tmp_path / "body").read_bytes() == b"data"
