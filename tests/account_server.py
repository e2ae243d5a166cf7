"""A capsule for the crash test: the account pages, generous rate limits, run by hospes.runner.

Usage: python tests/account_server.py STATE_DIR; prints "ready PORT" once it listens on a free
port.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hospes.accounts import AccountLimits, account_app
from hospes.app.request import Request
from hospes.app.routing import Application
from hospes.config import Config, HostConfig
from hospes.runner import Started, run


def members(request: Request) -> str:
    assert request.account is not None
    return f"# Hello {request.account.name}\n"


def ready(started: Started, config: Config) -> None:
    print("ready", started.addresses[0][1], flush=True)


def main() -> None:
    state = Path(sys.argv[1])
    app = Application()
    app.add_route("/members/", members, requires="account")
    app.mount(
        "/account/", account_app(limits=AccountLimits(register_rate=1000, register_burst=1000))
    )
    config = Config(hosts=[HostConfig("localhost")], state=state, port=0, access_log="off")
    run(config, app, announce=ready)


if __name__ == "__main__":
    main()
