"""The bundled demo capsule: what hospes is for, in a few pages.

A public page, a page showing your identity (60 without a certificate), an
allow-listed page (the store's ``demo`` list), and a members' page (an
``account`` rule), with the account flows mounted under ``/account/``, and a
page on making a client certificate in the clients people use.  The admin
capsule is at ``/admin/`` for the store's list ``admins`` (mounted by
:mod:`hospes.runner`, as any capsule's ``[admin]`` is).  With a
state directory, two gateways too: a CGI guestbook (``cgi-bin/guestbook``, a
script that signs entries with ``REMOTE_USER``) and a page members edit with
Titan (``/wiki/``); their files are created there on first run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from string import Template

from .. import __version__
from ..accounts.pages import account_app
from ..app.access import Requirement
from ..app.request import Request
from ..app.routing import Application
from ..app.static import StaticFiles
from ..files import write_atomically
from ..gateways import CGIScripts, TitanDirectory, TitanMount
from ..store import Store

__all__ = [
    "CAPSULE",
    "CGI_BIN",
    "DEMO_ACCOUNTS",
    "DEMO_ADMIN",
    "DEMO_ADMINS",
    "DEMO_LIST",
    "create_app",
]

CAPSULE = Path(__file__).parent / "capsule"
CGI_BIN = Path(__file__).parent / "cgi-bin"
DEMO_LIST = "demo"
"""The store's allow-list of the allow-listed room."""
DEMO_ACCOUNTS = "/account/"
"""Where the demo mounts the account pages."""
DEMO_ADMIN = "/admin/"
"""Where the demo has the admin capsule (the runner mounts it, in front of every page)."""
DEMO_ADMINS = "admins"
"""The store's allow-list of the demo's admins: ``hospes allow add admins FINGERPRINT``."""
CERTIFICATE_PAGE = Template(
    (Path(__file__).parent / "pages" / "certificate.gmi").read_text("utf-8")
)
"""How to make a client certificate: ``$address`` (host:port) and ``$capsule`` (its URL) filled."""
WIKI_PAGE = """\
# The members' page

Any member can rewrite this page with Titan: it is a file on the server, and
an upload replaces it (atomically: a cut upload leaves it as it was).

```
hospes put page.gmi titan://localhost/wiki/index.gmi
```

In Lagrange: open this page and choose "Edit page with Titan". Without an
account, an upload is refused (61) before a byte of it is read; reading is
open to all.

=> / Back
"""


def identity_page(request: Request) -> str:
    """Show the visitor everything the server learnt from their certificate."""
    identity = request.identity
    assert identity is not None
    account = request.account
    lines = [
        "# Who am I?",
        "",
        f"Your certificate's common name is: {identity.name or '(none)'}",
        "",
        "```",
        f"certificate fingerprint  {identity.fingerprint}",
        f"key fingerprint          {identity.key_fingerprint}",
        f"key                      {identity.key_type} ({identity.key_bits} bits)",
        f"valid                    {identity.not_before:%Y-%m-%d} to {identity.not_after:%Y-%m-%d}",
        f"self-signed              {'yes' if identity.self_signed else 'no'}",
        f"account                  {account.name if account else '(none)'}",
        "```",
        "",
        "The certificate fingerprint changes when you renew your certificate; the key "
        "fingerprint does not, which is how hospes recognises a renewal as the same person.",
        "",
        f"=> {DEMO_ACCOUNTS}register Register an account"
        if account is None
        else "=> /members/ Members",
        "=> / Back",
    ]
    return "\n".join(lines) + "\n"


def allowlist_page(request: Request) -> str:
    """The allow-listed room: only fingerprints on the store's ``demo`` list get here."""
    assert request.identity is not None
    return (
        "# The allow-listed room\n\n"
        f"Your fingerprint is on the '{DEMO_LIST}' allow-list, so you are in.\n\n"
        "An admin lets someone in with:\n"
        f"```\nhospes allow add {DEMO_LIST} {request.identity.fingerprint}\n```\n"
        "=> / Back\n"
    )


NEW_MEMBER = dt.timedelta(minutes=10)
"""An account younger than this is greeted as new (registering leads here)."""


def members_page(request: Request) -> str:
    """The members' lounge, for registered accounts only: new members are welcomed as such."""
    account = request.account
    assert account is not None
    if dt.datetime.now(dt.UTC) - account.created < NEW_MEMBER:
        greeting = (
            f"Welcome, {account.name}. Your account is this certificate: keep its key, and "
            "renew it with the same key when it expires. To use the account from another "
            "device, link it from your account page."
        )
    else:
        greeting = f"Welcome back, {account.name}."
    return (
        f"# Members' lounge\n\n{greeting}\n\n"
        f"=> {DEMO_ACCOUNTS} Your account and certificates\n=> / Back\n"
    )


def certificate_page(request: Request) -> str:
    """How to make a client certificate for this capsule, in Lagrange, Amfora and hospes."""
    url = request.url
    host = url.netloc
    address = f"{host}:{url.effective_port}" if url.port is None else host
    capsule = f"gemini://{host}/"
    return CERTIFICATE_PAGE.substitute(address=address, capsule=capsule)


def create_app(store: Store | None, state: Path | None = None) -> Application:
    """The demo capsule as an application; its guestbook and wiki keep their files in ``state``."""
    app = Application()
    app.add_route("/certificate", certificate_page)
    app.add_route("/me", identity_page, requires="certificate")
    app.add_route("/allowlist/", allowlist_page, requires="allowlist", lists=[DEMO_LIST])
    app.add_route("/members/", members_page, requires="account", register_url="/account/register")
    app.mount(DEMO_ACCOUNTS, account_app(members_url="/members/"))
    if state is not None:
        demo = state / "demo"
        wiki = demo / "wiki"
        wiki.mkdir(parents=True, exist_ok=True)
        if not (wiki / "index.gmi").exists():
            write_atomically(wiki / "index.gmi", WIKI_PAGE.encode("utf-8"))
        guestbook = {"GUESTBOOK": str(demo / "guestbook.gmi")}
        app.mount("/cgi-bin/", CGIScripts(CGI_BIN, env=guestbook, software=f"hospes/{__version__}"))
        app.mount(
            "/wiki/",
            TitanDirectory(
                TitanMount("/wiki/", wiki, max_size=64 * 1024, require=Requirement.ACCOUNT)
            ),
        )
    app.mount("/", StaticFiles(CAPSULE))
    return app
