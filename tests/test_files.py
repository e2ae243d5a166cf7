"""Atomic writes: the whole new file or the old one, with the right mode, no debris."""

from __future__ import annotations

import pytest

from hospes.files import write_atomically


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
