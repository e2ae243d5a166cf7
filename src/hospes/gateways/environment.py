"""The CGI meta-variables of a request, as CGI scripts and SCGI applications receive them.

One function builds them from the :class:`~hospes.app.request.Request`: the
URL, the visitor's address, the negotiated TLS parameters (asked of the
connection only here) and, with a valid client certificate, who the visitor
is.  The names are those of RFC 3875 and of the Gemini servers scripts are
written for (jetforce, gmid, Molly Brown), so their scripts run unchanged;
``docs/gateways.md`` lists every one.

Nothing of the server's own environment is passed on: the variables are built
from scratch, with ``PATH`` set to :data:`SAFE_PATH`.  Text that comes from a
certificate (names, subject, issuer) is escaped (:func:`~hospes.gemini.escape.printable`),
so no control character reaches a script's environment or the files it writes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping

from ..app.request import Request
from ..gemini.escape import printable
from ..gemini.identity import ClientIdentity
from ..gemini.url import URLError, percent_decode
from ..store import StoreError

__all__ = ["SAFE_PATH", "cgi_environment", "resolve_account"]

log = logging.getLogger("hospes.gateways")

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The ``PATH`` every script gets, whatever the server's own is."""

_TEXT_LIMIT = 1024


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _identity_variables(identity: ClientIdentity) -> dict[str, str]:
    """The variables of a valid client certificate (none of them without one)."""
    name = printable(identity.common_name or "", _TEXT_LIMIT)
    digest = bytes.fromhex(identity.fingerprint.partition(":")[2])
    return {
        "AUTH_TYPE": "CERTIFICATE",
        "REMOTE_USER": name,
        "TLS_CLIENT_HASH": identity.fingerprint,
        "TLS_CLIENT_HASH_B64": base64.urlsafe_b64encode(digest).decode("ascii"),
        "TLS_CLIENT_PUBKEY_HASH": identity.key_fingerprint,
        "TLS_CLIENT_NOT_BEFORE": _iso(identity.not_before),
        "TLS_CLIENT_NOT_AFTER": _iso(identity.not_after),
        "TLS_CLIENT_SERIAL_NUMBER": str(identity.serial),
        "TLS_CLIENT_SUBJECT": printable(identity.subject, _TEXT_LIMIT),
        "TLS_CLIENT_SUBJECT_CN": name,
        "TLS_CLIENT_ISSUER": printable(identity.issuer, _TEXT_LIMIT),
    }


def cgi_environment(
    request: Request,
    base: Mapping[str, str],
    *,
    script_name: str,
    path_info: str,
) -> dict[str, str]:
    """Every meta-variable of ``request`` for a script at ``script_name`` (a decoded URL path).

    ``base`` holds what is the same for every request of a gateway (the
    software, ``PATH``, the operator's own variables), built once.
    ``request.account`` must be resolved already (:func:`resolve_account`).
    """
    url = request.url
    query = url.query
    environment = dict(base)
    environment.update(
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "GEMINI",
            "SERVER_NAME": request.hostname,
            "HOSTNAME": request.hostname,
            "SERVER_PORT": str(url.effective_port),
            "REMOTE_ADDR": request.remote_address,
            "REMOTE_HOST": request.remote_address,
            "REMOTE_PORT": str(request.remote_port),
            "REQUEST_METHOD": "GET" if request.upload is None else "PUT",
            "SCRIPT_NAME": script_name,
            "SCRIPT_PATH": script_name,
            "PATH_INFO": path_info,
            "QUERY_STRING": query or "",
            "GEMINI_URL": str(url),
            "GEMINI_URL_PATH": request.path,
        }
    )
    if query is not None and "=" not in query:
        # The dispatcher refused a query that does not decode already.
        with contextlib.suppress(URLError):
            search = percent_decode(query)
            # A NUL (%00) fits in no environment variable (the C string ends there) and
            # would split an SCGI netstring, letting a visitor append variables of their
            # choosing (AUTH_TYPE, REMOTE_USER...): such a query is in QUERY_STRING only.
            if "\0" not in search:
                environment["GEMINI_SEARCH_STRING"] = search
    cipher = request.tls_cipher
    if cipher is not None:
        environment["TLS_VERSION"] = request.tls_version or ""
        environment["TLS_CIPHER"], bits = cipher
        environment["TLS_CIPHER_STRENGTH"] = str(bits)
    identity = request.identity
    if identity is not None:
        environment.update(_identity_variables(identity))
        if request.account is not None:
            environment["HOSPES_ACCOUNT"] = request.account.name
    elif request.certificate_problem is not None:
        environment["HOSPES_CERTIFICATE_PROBLEM"] = request.certificate_problem
    upload = request.upload
    if upload is not None:
        environment["CONTENT_LENGTH"] = str(upload.size)
        environment["CONTENT_TYPE"] = upload.mime
        if upload.token is not None:
            environment["TITAN_TOKEN"] = upload.token
    return environment


async def resolve_account(request: Request) -> None:
    """Look up the visitor's account if the server did not (it does only where a rule needs it).

    A store that is unavailable leaves ``request.account`` None: the script
    runs, without ``HOSPES_ACCOUNT`` (the store's outage is logged by the store).
    """
    if request.account is not None or request.identity is None or request.store is None:
        return
    try:
        request.account = await request.store.recognise(request.identity, dt.datetime.now(dt.UTC))
    except StoreError as exc:
        log.debug("no account lookup for a gateway: %s", exc)
