"""The examples of the README and docs run as written: the application, the accounts, the config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import hospes.runner
from account_flow import answer
from helpers import CertFactory, raw_request
from hospes.app.routing import Application
from hospes.config import Config, parse_config

ROOT = Path(__file__).parent.parent
FP = "SHA256:" + "3f" * 32


def blocks(document: str, language: str) -> list[str]:
    text = (ROOT / document).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def the_block(document: str, language: str, containing: str) -> str:
    found = [block for block in blocks(document, language) if containing in block]
    assert len(found) == 1, f"{document}: {len(found)} {language} blocks with {containing!r}"
    return found[0]


def test_readme_application_example_runs_as_written(tmp_path, monkeypatch, serve, certs):
    code = the_block("README.md", "python", "run(Config(")
    (tmp_path / "capsule").mkdir()
    (tmp_path / "capsule" / "index.gmi").write_text("# static\n")
    monkeypatch.chdir(tmp_path)
    started: list[tuple[Config, Application]] = []
    # run() would serve port 1965 until a signal; the same config and app are served here instead.
    monkeypatch.setattr(
        hospes.runner, "run", lambda config, app, **_: started.append((config, app))
    )
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    [(config, app)] = started
    assert config.hostnames == ["example.org"]
    server = serve(app, config=config)

    def get(path: str, cert=None):
        url = f"gemini://example.org:{server.port}{path}"
        return raw_request(server.port, url, server_name="example.org", cert=cert)

    assert get("/hello/world").body == b"# Hello, world!\n"
    assert get("/search").header == "10 What are you looking for?"
    assert get("/search?gemini").body == b"You asked for gemini\n"
    assert get("/me").status == 60
    assert get("/").body == b"# static\n"
    alice = certs.make("alice")
    assert get("/members/", alice).meta.endswith("register at /account/register")
    start = get("/account/register", alice)  # to a prompt made for this certificate
    assert get(f"{start.meta}?", alice).header == "30 /members/"
    assert get("/members/", alice).body == b"Welcome back, alice\n"


def test_accounts_guide_example_runs_as_written(serve, certs: CertFactory):
    namespace: dict[str, object] = {"__name__": "accounts_md"}
    exec(
        compile(the_block("docs/accounts.md", "python", "account_app"), "accounts.md", "exec"),
        namespace,
    )
    app = namespace["app"]
    assert isinstance(app, Application)
    server = serve(app)
    alice = certs.make("alice")
    assert raw_request(server.port, server.url("/members/"), cert=alice).status == 61
    assert answer(server.port, "/account/register", alice, "").header == "30 /members/"
    page = raw_request(server.port, server.url("/members/"), cert=alice)
    assert page.body == b"# Welcome, alice\n"


@pytest.mark.parametrize(
    ("document", "containing"),
    [
        ("README.md", "[[redirect]]"),
        ("docs/accounts.md", "[accounts]"),
        ("docs/accounts.md", 'lists = ["friends"]'),
        ("docs/admin.md", "[admin]"),
    ],
)
def test_configuration_examples_are_valid(document, containing):
    text = the_block(document, "toml", containing).replace("SHA256:3f2a…", FP)
    text = text.replace("SHA256:…", FP)
    config = parse_config(without_gateways(tomllib.loads(text)))
    assert config.hosts


def without_gateways(raw: dict[str, object]) -> dict[str, object]:
    """The document without its gateway tables, whose directories must exist to be read."""
    return {key: value for key, value in raw.items() if key not in ("cgi", "scgi", "titan")}


def test_the_readme_configuration_example_means_what_its_comments_say():
    raw = tomllib.loads(the_block("README.md", "toml", "[[redirect]]").replace("SHA256:3f2a…", FP))
    config = parse_config(without_gateways(raw))
    main, other = config.sites()
    assert (main.lang, main.accounts, main.members_url, main.listing) == (
        "en",
        "/account/",
        "/members/",
        True,
    )
    assert (other.lang, other.accounts) == ("fr", None)
    assert (main.admin, main.admins, main.admin_lists) == ("/admin/", {FP}, ("admins",))
    assert main.mime == {".gmi": "text/gemini", ".log": "text/plain"}
    members = next(rule for rule in config.access if rule.path == "/members/")
    assert members.hosts == {"example.org"}
    [redirect] = config.redirects
    assert (redirect.path, redirect.target, redirect.status, redirect.exact) == (
        "/old/",
        "/new/",
        31,
        False,
    )
