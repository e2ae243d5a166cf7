"""The server: listening sockets, TLS, the connection loop, admission, limits and workers."""

from ..policy.limits import DEFAULT_TRUSTED, Limits
from .server import Server, Stats, bind, raise_open_file_limit

__all__ = ["DEFAULT_TRUSTED", "Limits", "Server", "Stats", "bind", "raise_open_file_limit"]
