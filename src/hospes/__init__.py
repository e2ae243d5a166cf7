"""hospes: a Gemini server and client toolkit with TOFU client-certificate identity."""

from __future__ import annotations

__version__ = "0.1.0"

from .app.access import AccessRule, Requirement
from .app.request import Request
from .app.response import Response
from .app.routing import Application
from .app.static import StaticFiles
from .gemini.identity import ClientIdentity
from .gemini.protocol import GeminiError, Status

__all__ = [
    "AccessRule",
    "Application",
    "ClientIdentity",
    "GeminiError",
    "Request",
    "Requirement",
    "Response",
    "StaticFiles",
    "Status",
    "__version__",
]
