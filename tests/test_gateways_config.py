"""[[cgi]], [[scgi]] and [[titan]] in hospes.toml: parsing, mistakes named, per-host tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import raw_request
from hospes.app.access import Requirement
from hospes.config import Config, ConfigError, HostConfig, parse_config
from hospes.gateways import CGIMount, SCGIMount, TitanMount


def test_the_tables_and_their_defaults(tmp_path: Path):
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "up").mkdir()
    config = parse_config(
        {
            "cgi": [{"path": "/cgi-bin/", "directory": "cgi-bin", "env": {"A_B": "c"}}],
            "scgi": [{"path": "/app/", "address": "unix:app.sock", "max_upload": 10}],
            "titan": [
                {"path": "/up/", "directory": "up", "require": "allowlist", "lists": ["w"]},
                {"path": "/notes/", "max_size": 5},
            ],
        },
        tmp_path / "hospes.toml",
    )
    assert config.cgi == [
        CGIMount("/cgi-bin/", tmp_path / "cgi-bin", env={"A_B": "c"}),
    ]
    assert config.scgi == [SCGIMount("/app/", f"unix:{tmp_path / 'app.sock'}", max_upload=10)]
    assert config.titan == [
        TitanMount("/up/", tmp_path / "up", require=Requirement.ALLOWLIST, lists=("w",)),
        TitanMount("/notes/", None, max_size=5),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cgi": [{"path": "/c/"}]}, "cgi[0]: missing 'directory'"),
        ({"cgi": [{"path": "/c/", "directory": "nowhere"}]}, "cgi[0].directory: "),
        ({"cgi": [{"path": "c", "directory": "."}]}, "cgi[0].path: must start with '/'"),
        ({"cgi": [{"path": "/c/", "directory": ".", "timeout": 0}]}, "cgi[0].timeout"),
        ({"cgi": [{"path": "/c/", "directory": ".", "env": {"1X": "y"}}]}, "not a variable name"),
        (
            {"scgi": [{"path": "/a/", "address": "nowhere"}]},
            "scgi[0].address: expected 'host:port'",
        ),
        ({"titan": [{"path": "/u/", "require": "allowlist"}]}, "allowlist rule needs"),
        ({"titan": [{"path": "/u/", "max_size": -1}]}, "titan[0].max_size"),
        (
            {"titan": [{"path": "/u/"}, {"path": "/u"}]},
            "titan[1].path: '/u' has a table already",
        ),
        ({"hosts": {"a.example": {"cgi": [{"path": "/c/"}]}}}, 'hosts."a.example".cgi[0]'),
    ],
)
def test_mistakes_name_the_table_and_the_key(tmp_path, raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, tmp_path / "hospes.toml")
    assert message in str(caught.value)


def test_a_hostnames_own_table_wins_at_the_same_path(serve, tmp_path):
    scripts = {}
    for name in ("global", "other"):
        directory = tmp_path / name
        directory.mkdir()
        script = directory / "who"
        script.write_text(f"#!/bin/sh\nprintf '20 text/plain\\r\\n{name}\\n'\n")
        script.chmod(0o755)
        scripts[name] = directory
    config = Config(
        hosts=[
            HostConfig("localhost"),
            HostConfig("other.example", cgi=(CGIMount("/cgi-bin/", scripts["other"]),)),
        ],
        root=tmp_path,
        cgi=[CGIMount("/cgi-bin/", scripts["global"])],
    )
    server = serve(config=config)
    local = raw_request(server.port, f"gemini://localhost:{server.port}/cgi-bin/who")
    other = raw_request(
        server.port,
        f"gemini://other.example:{server.port}/cgi-bin/who",
        server_name="other.example",
    )
    assert (local.body, other.body) == (b"global\n", b"other\n")
