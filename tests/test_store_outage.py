"""When the identity store fails, public pages stay up and guarded pages say to come back."""

from __future__ import annotations

from helpers import raw_request
from hospes.app.access import AccessRule, Requirement
from hospes.app.routing import Application
from hospes.app.static import StaticFiles
from hospes.config import Config, HostConfig


def test_store_outage(serve, certs):
    app = Application()
    app.add_route("/", lambda request: "public\n")
    app.add_route("/members/page", lambda request: "members\n")
    config = Config(
        hosts=[HostConfig("localhost")],
        access=[AccessRule("/members/", Requirement.ACCOUNT)],
    )
    server = serve(app, config=config)
    alice = certs.make()
    assert raw_request(server.port, server.url("/members/page"), cert=alice).status == 61
    server.call(server.server.dispatcher.store.close)
    public = raw_request(server.port, server.url("/"), cert=alice)
    assert (public.status, public.body) == (20, b"public\n")
    guarded = raw_request(server.port, server.url("/members/page"), cert=alice)
    assert guarded.status == 40
    assert "identity store is unavailable" in guarded.meta


def test_static_capsule_never_asks_the_store(serve, certs, tmp_path):
    """Files are the same for everyone: no account lookup per request (uses_accounts)."""
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "index.gmi").write_text("# files\n")
    server = serve(StaticFiles(tmp_path / "root"))
    store = server.server.dispatcher.store
    assert raw_request(server.port, server.url("/"), cert=certs.make()).status == 20
    assert len(store._cache) == 0
    app = Application()
    app.add_route("/", lambda request: f"{request.account}\n")
    other = serve(app)
    assert raw_request(other.port, other.url("/"), cert=certs.make()).body == b"None\n"
    assert len(other.server.dispatcher.store._cache) == 1


def test_a_route_that_requires_an_account_says_come_back_not_register(serve, certs):
    """Just after the store failed, requests whose rules do not need the account skip it
    (no wait for the store's timeout); a route that requires an account must still answer
    40, not "your certificate has no account" (61), which would send a member to register."""
    app = Application()
    app.add_route("/", lambda request: "public\n")
    app.add_route("/members", lambda request: "members\n", requires="account")
    server = serve(app, config=Config(hosts=[HostConfig("localhost")]))
    alice = certs.make()
    assert raw_request(server.port, server.url("/members"), cert=alice).status == 61
    server.call(server.server.dispatcher.store.close)
    public = raw_request(server.port, server.url("/"), cert=alice)  # the failure: the window
    assert (public.status, public.body) == (20, b"public\n")
    members = raw_request(server.port, server.url("/members"), cert=alice)
    assert members.status == 40, members.header
    assert "identity store is unavailable" in members.meta
