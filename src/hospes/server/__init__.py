"""The server: listening sockets, TLS, admission, the connection loop, limits and workers."""

from ..policy.limits import DEFAULT_TRUSTED, Limits
from .listen import bind, raise_open_file_limit
from .server import Server
from .stats import Stats

__all__ = ["DEFAULT_TRUSTED", "Limits", "Server", "Stats", "bind", "raise_open_file_limit"]
