"""The bundled demo capsule: what hospes is for, in four pages.

A public page, a page showing your identity (60 without a certificate), an
allow-listed page (the store's ``demo`` list), and a members' page (an
``account`` rule), with the account flows mounted under ``/account/``.
"""

from __future__ import annotations

from pathlib import Path

from ..accounts.pages import account_app
from ..app.request import Request
from ..app.routing import Application
from ..app.static import StaticFiles
from ..store import Store

__all__ = ["CAPSULE", "create_app"]

CAPSULE = Path(__file__).parent / "capsule"
DEMO_LIST = "demo"


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
        "=> /account/register Register an account" if account is None else "=> /members/ Members",
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


def members_page(request: Request) -> str:
    """The members' lounge, for registered accounts only."""
    assert request.account is not None
    return (
        f"# Members' lounge\n\nWelcome back, {request.account.name}.\n\n"
        "=> /account/ Your account and certificates\n=> / Back\n"
    )


def create_app(store: Store | None) -> Application:
    """The demo capsule as an application."""
    app = Application()
    app.add_route("/me", identity_page, requires="certificate")
    app.add_route("/allowlist/", allowlist_page, requires="allowlist", lists=[DEMO_LIST])
    app.add_route("/members/", members_page, requires="account", register_url="/account/register")
    app.mount("/account/", account_app(members_url="/members/"))
    app.mount("/", StaticFiles(CAPSULE))
    return app
