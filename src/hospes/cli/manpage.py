"""The manual pages ``hospes(1)`` and ``hospes.toml(5)``, from ``--help`` and the schema.

``hospes(1)`` walks the argument parsers of :mod:`hospes.cli` (every command,
action, argument and help text); ``hospes.toml(5)`` walks
:func:`hospes.config.schema.reference` of :data:`hospes.config.SCHEMA` (every
key, its type, default and one-line description).  So a flag or a key is
documented once, where it is declared, and the pages cannot drift: the test
suite regenerates them and compares them with the committed ``man/`` files.

Regenerate after changing a flag, a help text or a key::

    python -m hospes.cli.manpage man/          # writes man/hospes.1 and man/hospes.toml.5
    python -m hospes.cli.manpage --check man/  # exit 1 if they are out of date

The package installs them in ``share/man/man1`` and ``share/man/man5`` of its
prefix (``pipx`` links them into ``~/.local/share/man``); ``man -l
man/hospes.1`` reads one from the source tree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import __version__
from ..config import SCHEMA
from ..config.schema import reference, sections
from . import build_parser
from .store import CONFIG_VARIABLE, SYSTEM_CONFIG

__all__ = ["PAGES", "hospes_page", "main", "toml_page"]

_SOURCE = f"hospes {__version__}"


def escape(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = text.split("\n")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in lines)


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def _subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(choice) for choice in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _synopsis_item(action: argparse.Action) -> str:
    if not action.option_strings:
        name = _italic(_metavar(action))
        return f"[{name}]" if action.nargs == "?" else name
    option = _bold(action.option_strings[-1])
    if _takes_value(action):
        option += " " + _italic(_metavar(action))
    return f"[{option}]"


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and action.help != argparse.SUPPRESS
    ]


def _describe(action: argparse.Action) -> Iterator[str]:
    if action.option_strings:
        names = ", ".join(_bold(option) for option in action.option_strings)
        head = names + (" " + _italic(_metavar(action)) if _takes_value(action) else "")
    else:
        head = _italic(_metavar(action))
    yield ".TP"
    yield head
    yield escape(action.help or "")


def _commands(
    parser: argparse.ArgumentParser, words: Sequence[str]
) -> Iterator[tuple[list[str], argparse.ArgumentParser, str]]:
    """Every runnable command under ``parser``: (its words, its parser, its one-line help)."""
    subcommands = _subcommands(parser)
    if subcommands is None:
        return
    helps = {choice.dest: choice.help or "" for choice in subcommands._choices_actions}
    for name, child in subcommands.choices.items():
        path = [*words, name]
        if _subcommands(child) is None:
            yield path, child, helps.get(name, "")
        else:
            yield from _commands(child, path)


def hospes_page() -> str:
    """``hospes(1)``: every command with its arguments, from the argument parsers."""
    parser = build_parser()
    lines = [
        f'.TH HOSPES 1 "" "{_SOURCE}" "hospes manual"',
        ".SH NAME",
        "hospes \\- " + escape((parser.description or "").rstrip(".")),
        ".SH SYNOPSIS",
        f"{_bold('hospes')} {_italic('COMMAND')} [{_italic('ARGUMENTS')}]",
        ".br",
        f"{_bold('hospes')} [{_bold('--version')}] [{_bold('--help')}]",
        ".SH DESCRIPTION",
        escape(
            "hospes serves Gemini capsules over TLS and identifies visitors by their client "
            "certificates under trust on first use; its client pins each server's key the "
            "same way. Every command and action takes --help."
        ),
        ".SH COMMANDS",
    ]
    for words, command, summary in _commands(parser, ["hospes"]):
        lines.append(f'.SS "{escape(" ".join(words))}"')
        usage = " ".join(_synopsis_item(action) for action in _arguments(command))
        lines += [f"{_bold(' '.join(words))} {usage}".rstrip(), ".PP"]
        description = command.description or summary
        lines.append(escape(description[:1].upper() + description[1:]))
        for action in _arguments(command):
            lines += list(_describe(action))
    lines += [
        ".SH EXIT STATUS",
        ".TP",
        "0",
        "success",
        ".TP",
        "1",
        escape("a failure at run time (a store that cannot be opened, a network error)"),
        ".TP",
        "2",
        escape(
            "a mistake in what was typed: a bad flag, an unknown name, a malformed "
            "fingerprint, an invalid configuration"
        ),
        ".TP",
        "130",
        "interrupted (Ctrl\\-C)",
        ".TP",
        "141",
        escape("the reader of the output went away (hospes bans | head -1)"),
        ".PP",
        escape(
            "hospes get has statuses of its own for what the server answered: see "
            "hospes get --help."
        ),
        ".SH ENVIRONMENT",
        ".TP",
        _bold(CONFIG_VARIABLE),
        escape(
            f"the configuration file of hospes serve and the admin commands when --config "
            f"is not given; else {SYSTEM_CONFIG} if it exists"
        ),
        ".TP",
        _bold("XDG_STATE_HOME"),
        escape("the default state directory is $XDG_STATE_HOME/hospes (~/.local/state/hospes)"),
        ".TP",
        _bold("HOSPES_DATA_DIR, XDG_DATA_HOME"),
        escape(
            "the client's known hosts and identities: $HOSPES_DATA_DIR, else "
            "$XDG_DATA_HOME/hospes (~/.local/share/hospes)"
        ),
        ".SH FILES",
        ".TP",
        _bold(str(SYSTEM_CONFIG)),
        escape("the configuration, see hospes.toml(5)"),
        ".TP",
        _bold("STATE/certs/NAME.crt, STATE/certs/NAME.key"),
        escape("each hostname's certificate and key (0600), created on first run"),
        ".TP",
        _bold("STATE/hospes.sqlite3"),
        escape(
            "the identity store: accounts, allow-lists, bans (0600); the state "
            "directory is created 0700"
        ),
        ".SH SIGNALS",
        escape(
            "SIGTERM and SIGINT stop hospes serve gracefully; SIGHUP reloads the "
            "configuration and certificates and reopens the access log; SIGUSR1 logs "
            "the counters."
        ),
        ".SH SEE ALSO",
        f"{_bold('hospes.toml')}(5)",
    ]
    return "\n".join(lines) + "\n"


def toml_page() -> str:
    """``hospes.toml(5)``: every key of the configuration, from the schema."""
    lines = [
        f'.TH HOSPES.TOML 5 "" "{_SOURCE}" "hospes manual"',
        ".SH NAME",
        "hospes.toml \\- configuration of the hospes Gemini server",
        ".SH DESCRIPTION",
        escape(
            "A TOML file read by hospes serve --config FILE (or $HOSPES_CONFIG, or "
            f"{SYSTEM_CONFIG}) and by the admin commands, which find the server's identity "
            "store through it. Every key below may be left out (its default applies); "
            "command-line flags override the file. Relative paths are relative to the "
            "file. Every mistake of a file is reported at once, naming the file, the "
            "table and the key, and hospes serve exits with status 2; SIGHUP re-reads "
            "the file, keeping the running configuration if the new one is wrong."
        ),
    ]
    entries = reference(SCHEMA)
    # What each table is for: the description of the key that opens it, at any depth.
    purposes = {}
    for found in sections(SCHEMA):
        for key in found.table.keys.values():
            name = key.name if re.fullmatch(r"[A-Za-z0-9_-]+", key.name) else json.dumps(key.name)
            opened = key.type.section(f"{found.header}.{name}" if found.header else name)
            if opened is not None:
                purposes[opened.label] = key.description
    section = None
    for entry in entries:
        if entry.section != section:
            section = entry.section
            heading = escape(section or "TOP-LEVEL KEYS").replace('"', '""')
            lines.append(f'.SH "{heading}"')
            if section in purposes:
                purpose = purposes[section]
                lines.append(escape(purpose[:1].upper() + purpose[1:] + "."))
        key = entry.key
        kind = key.type
        if kind.section("") is not None:
            continue  # a table: its keys follow under its own heading
        head = f"{_bold(key.name)} = {_italic(kind.expected)}"
        lines += [".TP", head]
        text = key.description[:1].upper() + key.description[1:]
        if key.default is not None:
            text += f". Default: {key.default}"
        elif key.required:
            text += ". Required"
        lines.append(escape(text + "."))
    lines += [
        ".SH EXAMPLE",
        ".nf",
        escape(
            'hostnames = ["example.org"]\n'
            'root = "/srv/gemini/example.org"\n'
            'state = "/var/lib/hospes"\n'
            "\n"
            "[[access]]\n"
            'path = "/private/"\n'
            'require = "allowlist"\n'
            'lists = ["friends"]\n'
            "\n"
            "[limits]\n"
            "request_timeout = 10"
        ),
        ".fi",
        ".SH SEE ALSO",
        f"{_bold('hospes')}(1)",
    ]
    return "\n".join(lines) + "\n"


PAGES = {"hospes.1": hospes_page, "hospes.toml.5": toml_page}
"""Each page's file name and the function that writes it."""


def main(argv: Sequence[str] | None = None) -> int:
    """Write the pages into a directory, or with ``--check`` compare them (exit 1 if stale)."""
    parser = argparse.ArgumentParser(
        prog="python -m hospes.cli.manpage",
        description="Write hospes(1) and hospes.toml(5) from the parsers and the schema.",
    )
    parser.add_argument("directory", type=Path, help="where the pages go (man/ in the repository)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, page in PAGES.items():
        path = args.directory / name
        text = page()
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        args.directory.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date: {', '.join(stale)} (run: python -m hospes.cli.manpage {args.directory})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
