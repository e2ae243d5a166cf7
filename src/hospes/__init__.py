"""hospes: a Gemini server and client toolkit with TOFU client-certificate identity."""

from __future__ import annotations

__version__ = "0.1.0"

from .access import AccessRule, Requirement
from .identity import ClientIdentity
from .protocol import Status
from .request import Request
from .response import Response
from .routing import Application
from .static import StaticFiles

__all__ = [
    "AccessRule",
    "Application",
    "ClientIdentity",
    "Request",
    "Requirement",
    "Response",
    "StaticFiles",
    "Status",
    "__version__",
]
