"""Which file systems a ``stat`` on the event loop cannot hang: the local ones.

On a local file system, the ``stat`` of a file the kernel has just served is
answered from its caches in microseconds.  On NFS, SMB, FUSE (sshfs...) or any
other file system backed by a server, the same call can wait for that server,
for as long as it takes to answer or to time out; on the event loop, that
would freeze every connection.  :class:`LocalDevices` tells the two apart by
the device number of a ``stat`` result and the kernel's mount table
(``/proc/self/mountinfo``): a device is local only if its file system type is
one of :data:`LOCAL_TYPES`; anything unknown (another kernel, a type not
listed, no ``/proc``) is treated as possibly remote.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["LOCAL_TYPES", "MOUNTINFO", "LocalDevices", "parse_mountinfo"]

MOUNTINFO = Path("/proc/self/mountinfo")

LOCAL_TYPES = frozenset(
    {
        "bcachefs",
        "btrfs",
        "exfat",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "hfsplus",
        "iso9660",
        "jfs",
        "msdos",
        "ntfs3",
        "overlay",
        "ramfs",
        "reiserfs",
        "squashfs",
        "tmpfs",
        "udf",
        "vfat",
        "xfs",
        "zfs",
    }
)
"""File systems of the kernel whose metadata lives on this machine's own disks or memory."""


def parse_mountinfo(text: str) -> dict[int, str]:
    """Device number → file system type, from the lines of ``/proc/self/mountinfo``.

    A line is ``ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE
    SOURCE SUPER-OPTIONS``; a line that does not have that shape is skipped.
    """
    types: dict[int, str] = {}
    for line in text.splitlines():
        mount, separator, filesystem = line.partition(" - ")
        fields = mount.split()
        kind = filesystem.split(" ", 1)[0]
        if not separator or len(fields) < 3 or not kind:
            continue
        major, colon, minor = fields[2].partition(":")
        if not (colon and major.isdecimal() and minor.isdecimal()):
            continue
        try:
            device = os.makedev(int(major), int(minor))
        except (OverflowError, ValueError):
            continue
        types[device] = kind
    return types


class LocalDevices:
    """Remembers, per device number, whether its file system is local.

    The mount table is read again only for a device not seen before, so
    :meth:`is_local` is a dictionary look-up after the first file of each
    file system.  Reading the table is file I/O: call it off the event loop
    the first time a device is met (:meth:`known` answers without reading).
    An answer holds for the object's life: a file system mounted in a capsule
    later is judged when the configuration is reloaded (SIGHUP builds new
    handlers), and an unknown device stays "not local", which is only slower.
    """

    def __init__(self, mountinfo: Path = MOUNTINFO) -> None:
        self.mountinfo = mountinfo
        self._local: dict[int, bool] = {}
        self._lock = threading.Lock()

    def known(self, device: int) -> bool | None:
        """Whether ``device`` is local, if already known; None if not met yet (no I/O)."""
        return self._local.get(device)

    def is_local(self, device: int) -> bool:
        """Whether ``device`` is on a local file system (reads the mount table the first time)."""
        local = self._local.get(device)
        if local is not None:
            return local
        try:
            types = parse_mountinfo(self.mountinfo.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            types = {}
        with self._lock:
            for number, kind in types.items():
                self._local.setdefault(number, kind in LOCAL_TYPES)
            return self._local.setdefault(device, False)
