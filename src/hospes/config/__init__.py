"""Server configuration: TOML file and command-line flags → one validated :class:`Config`.

:mod:`.schema` is the generic machinery (keys, types, tables, problems);
:mod:`.settings` declares hospes' keys and the objects they build.
"""

from .schema import ConfigError, Problem
from .settings import (
    DEFAULT_RATE_RULE,
    SCHEMA,
    AccountsConfig,
    AdminConfig,
    Config,
    HostConfig,
    Site,
    load_config,
    parse_config,
    parse_rate,
    read_config_file,
)

__all__ = [
    "DEFAULT_RATE_RULE",
    "SCHEMA",
    "AccountsConfig",
    "AdminConfig",
    "Config",
    "ConfigError",
    "HostConfig",
    "Problem",
    "Site",
    "load_config",
    "parse_config",
    "parse_rate",
    "read_config_file",
]
