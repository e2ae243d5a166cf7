"""Local or not: the mount table decides where a cached file's ``stat`` may run."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hospes.app.filesystems import LOCAL_TYPES, MOUNTINFO, LocalDevices, parse_mountinfo

LINES = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683652k
61 27 0:52 / /srv/capsule rw,relatime shared:40 master:2 - nfs4 files:/export rw,vers=4.2
62 27 0:53 / /mnt/remote rw,nosuid - fuse.sshfs me@host:/ rw,user_id=0
this line has no separator
63 27 x:y / /bad rw - ext4 /dev/sdb rw
"""


def test_the_mount_table_is_read_line_by_line() -> None:
    types = parse_mountinfo(LINES)
    assert types == {
        os.makedev(254, 0): "ext4",
        os.makedev(0, 23): "tmpfs",
        os.makedev(0, 52): "nfs4",
        os.makedev(0, 53): "fuse.sshfs",
    }


@given(st.text())
def test_any_text_is_read_without_an_error(text: str) -> None:
    for device, kind in parse_mountinfo(text).items():
        assert device >= 0
        assert kind


def test_local_and_remote_devices(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(LINES)
    devices = LocalDevices(table)
    assert devices.known(os.makedev(254, 0)) is None  # nothing read yet
    assert devices.is_local(os.makedev(254, 0))
    assert devices.is_local(os.makedev(0, 23))
    assert not devices.is_local(os.makedev(0, 52))  # NFS
    assert not devices.is_local(os.makedev(0, 53))  # FUSE
    assert not devices.is_local(os.makedev(9, 9))  # not mounted: not known to be local
    assert devices.known(os.makedev(0, 52)) is False


def test_no_mount_table_means_nothing_is_local(tmp_path: Path) -> None:
    devices = LocalDevices(tmp_path / "missing")
    assert not devices.is_local(os.stat(tmp_path).st_dev)


def test_this_machines_temporary_directory_is_local(tmp_path: Path) -> None:
    kinds = parse_mountinfo(MOUNTINFO.read_text())
    device = os.stat(tmp_path).st_dev
    assert LocalDevices().is_local(device) == (kinds.get(device) in LOCAL_TYPES)
    assert device in kinds  # the device numbers of stat are those of the mount table
