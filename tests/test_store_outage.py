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
