"""Gateways beside static files: CGI scripts, SCGI applications and Titan uploads.

Each is a handler, mounted at a URL prefix by :func:`~hospes.gateways.router.with_gateways`
from the ``[[cgi]]``, ``[[scgi]]`` and ``[[titan]]`` tables of the
configuration.  Access rules apply to them exactly as to files, before a
script runs or a byte of an upload is read; scripts and applications learn
who the visitor is from the CGI variables (:mod:`.environment`).
"""

from __future__ import annotations

from .cgi import CGIMount, CGIScripts
from .router import Gateways, with_gateways
from .scgi import SCGIApplication, SCGIMount
from .titan import TitanDirectory, TitanGate, TitanMount

__all__ = [
    "CGIMount",
    "CGIScripts",
    "Gateways",
    "SCGIApplication",
    "SCGIMount",
    "TitanDirectory",
    "TitanGate",
    "TitanMount",
    "with_gateways",
]
