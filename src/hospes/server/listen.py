"""Listening sockets and the descriptors they need: binding, the open-file limit, its ceiling."""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import socket
from collections.abc import Iterable

__all__ = ["ListenError", "bind", "bind_all", "connection_ceiling", "raise_open_file_limit"]

log = logging.getLogger("hospes.server")

_FD_RESERVE = 64
"""File descriptors kept for listeners, the store, logs and files being served (at most a
quarter of the limit)."""


class ListenError(OSError):
    """An address that cannot be listened on: the message names it and says what to do."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _cannot_bind(host: str, port: int, error: OSError) -> ListenError:
    where = f"{host} port {port}"
    if error.errno == errno.EADDRINUSE:
        reason = f"{where} is already in use (by another server?): stop it, or choose another port"
    elif error.errno == errno.EADDRNOTAVAIL:
        reason = f"{where}: {host} is not an address of this machine"
    elif error.errno == errno.EACCES:
        reason = (
            f"{where}: permission denied (ports below 1024 need privileges: "
            "use 1965, or give the service CAP_NET_BIND_SERVICE)"
        )
    else:
        reason = f"cannot listen on {where}: {error.strerror}"
    return ListenError(error.errno, reason)


def bind(
    host: str, port: int, *, backlog: int = 4096, reuse_port: bool = False, listen: bool = True
) -> list[socket.socket]:
    """Sockets for every address of ``host`` (``::`` is dual-stack where possible).

    ``port`` 0 is the free port the first address gets, for all of them.
    ``listen=False`` leaves them bound only: nobody can connect yet, and
    nobody else can take the port.  Raises :class:`ListenError` naming the
    address and port when that fails.
    """
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(
            exc.errno, f"the address to listen on {host!r} does not resolve: {exc.strerror}"
        ) from None
    seen = set()
    for family, kind, proto, _, found in infos:
        if (family, found) in seen:
            continue
        seen.add((family, found))
        address = found
        if port == 0 and sockets:  # the first address got a free port: the others get it too
            address = (found[0], sockets[0].getsockname()[1], *found[2:])
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                wildcard = address[0] == "::"
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if wildcard else 1)
            listener.bind(address)
            if listen:
                listener.listen(backlog)
        except OSError as exc:
            listener.close()
            for opened in sockets:
                opened.close()
            raise _cannot_bind(str(address[0]), port or int(address[1]), exc) from None
        sockets.append(listener)
    return sockets


def bind_all(
    hosts: Iterable[str],
    port: int,
    *,
    backlog: int = 4096,
    reuse_port: bool = False,
    listen: bool = True,
) -> list[socket.socket]:
    """:func:`bind` every one of ``hosts`` on one port: with ``port`` 0, the first free one."""
    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            if port == 0 and sockets:
                port = sockets[0].getsockname()[1]
            sockets.extend(bind(host, port, backlog=backlog, reuse_port=reuse_port, listen=listen))
    except OSError:
        for opened in sockets:
            opened.close()
        raise
    return sockets


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to the hard limit; returns the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


def connection_ceiling(wanted: int) -> int:
    """``wanted`` connections, or fewer if the open-file limit could not hold them."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = min(_FD_RESERVE, soft // 4)
    if soft == resource.RLIM_INFINITY or wanted <= soft - reserve:
        return wanted
    ceiling = max(1, soft - reserve)
    log.warning(
        "max_connections %d does not fit the open-file limit (%d); using %d",
        wanted,
        soft,
        ceiling,
    )
    return ceiling
