"""Declarative configuration schemas: each key described once, every mistake of a file reported.

A schema is a tree of :class:`Table` s.  Each :class:`Key` says in one place
its TOML name, what it accepts (a :class:`Type`, which validates and
converts), its default, a one-line description, and the keyword of its
table's builder it lands in.  Converting a document walks the whole tree and
records a :class:`Problem` (file, place, what is wrong) for every mistake
instead of stopping at the first, so an operator fixes a file in one pass.
The same tree gives the reference of every key (:func:`reference`, for
``--help`` and a man page) and the "did you mean" hints, including the table
a misplaced key belongs in.

Nothing here knows hospes' keys: :mod:`hospes.config.settings` declares them.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "ArrayOf",
    "Boolean",
    "ConfigError",
    "Context",
    "Entry",
    "FilePath",
    "Integer",
    "Invalid",
    "Key",
    "ListOf",
    "MapOf",
    "Number",
    "OneOf",
    "Problem",
    "Reported",
    "Section",
    "String",
    "Table",
    "Then",
    "Type",
    "convert",
    "location",
    "parse",
    "reference",
    "sections",
]

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K")
E = TypeVar("E", bound=Enum)

_BARE_KEY = re.compile(r"\A[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake: the file (or ``config``), the place in it, and what is wrong."""

    source: str
    where: str
    """The TOML path of the value (``access[0].require``); empty for the document as a whole."""
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.source, self.where, self.message) if part)


class ConfigError(ValueError):
    """A configuration with mistakes: ``problems`` lists every one, ``str`` shows one per line."""

    def __init__(self, problems: str | Problem | Sequence[Problem]) -> None:
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)))


class Invalid(Exception):
    """Raised by a type or a table's builder: the value here is refused, for these reasons."""

    def __init__(self, message: str, *more: str) -> None:
        super().__init__("; ".join((message, *more)))
        self.messages = (message, *more)


class Reported(Exception):
    """The value here is unusable, and why has been reported already."""


@dataclass(frozen=True, slots=True)
class Context:
    """Where a value sits in the document being converted, and where its problems go."""

    source: str
    base: Path
    """The directory relative paths are relative to (the file's)."""
    root: Table[Any]
    problems: list[Problem]
    path: tuple[str | int, ...] = ()

    def at(self, part: str | int) -> Context:
        """The context of a key (a string) or an array element (an index) inside this value."""
        return replace(self, path=(*self.path, part))

    @property
    def where(self) -> str:
        """The TOML path of this value, as problems name it."""
        return location(self.path)

    def report(self, message: str) -> None:
        """Record a problem of this value."""
        self.problems.append(Problem(self.source, self.where, message))


def location(path: Sequence[str | int]) -> str:
    """``("hosts", "a.example", "root")`` as ``hosts."a.example".root``; indexes as ``[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if _BARE_KEY.match(part) else json.dumps(part, ensure_ascii=False)
        text += f".{name}" if text else name
    return text


def shown(value: object) -> str:
    """A TOML value for a message: tables by their kind, booleans as TOML writes them, short."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return "an array of tables"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(name: str, choices: Sequence[str]) -> str | None:
    """The choice ``name`` was most likely meant to be, or None."""
    # Case, then a transposition ("prot") are the likeliest typos; difflib alone prefers "root".
    same = [choice for choice in choices if choice.lower() == name.lower()]
    anagrams = [choice for choice in choices if sorted(choice) == sorted(name)]
    close = same or anagrams or difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


# -- types ----------------------------------------------------------------------------------------


class Type(ABC, Generic[T]):
    """What a key accepts: checks a TOML value's kind, then validates and converts it.

    :meth:`convert` raises :class:`Invalid` for the value as a whole; types
    made of parts (lists, tables) report each part's problems at that part
    and raise :class:`Reported`.
    """

    expected: str = "a value"
    """What is accepted, as a phrase ("a positive number"): in messages and the reference."""
    kinds: tuple[type, ...] = ()
    """The Python types of the TOML values accepted (``bool`` only when listed)."""

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is of a kind this type takes (whatever its content)."""
        if isinstance(value, bool):
            return bool in self.kinds
        return isinstance(value, self.kinds)

    def convert(self, value: object, at: Context) -> T:
        """The converted value; raises :class:`Invalid` or :class:`Reported`."""
        if not self.accepts(value):
            raise self.refuse(value, at)
        return self.make(value, at)

    @abstractmethod
    def make(self, value: Any, at: Context) -> T:
        """Validate and convert a value of an accepted kind."""

    def refuse(self, value: object, at: Context) -> Invalid:
        """The standard complaint: what was expected, what was found."""
        return Invalid(f"expected {self.expected}, got {shown(value)}")

    def then(self, function: Callable[[T], U], expected: str | None = None) -> Then[T, U]:
        """This type followed by ``function``, whose :class:`ValueError` is a problem here.

        ``expected`` describes the result better than this type does (``"a
        fingerprint"`` rather than ``"a string"``).
        """
        return Then(self, function, expected)

    def section(self, header: str) -> Section | None:
        """The table a key of this type opens, under the dotted ``header``; None for a value."""
        return None


def convert(kind: Type[T], value: object, at: Context) -> T:
    """``kind.convert(value, at)``, its :class:`Invalid` reported at ``at`` as :class:`Reported`."""
    try:
        return kind.convert(value, at)
    except Invalid as exc:
        for message in exc.messages:
            at.report(message)
        raise Reported from None


class Then(Type[U], Generic[T, U]):
    """A type whose converted value goes through one more function (see :meth:`Type.then`)."""

    def __init__(
        self, inner: Type[T], function: Callable[[T], U], expected: str | None = None
    ) -> None:
        self.inner = inner
        self.function = function
        self.custom = expected is not None
        self.expected = expected or inner.expected
        self.kinds = inner.kinds

    def accepts(self, value: object) -> bool:
        """What the inner type accepts."""
        return self.inner.accepts(value)

    def refuse(self, value: object, at: Context) -> Invalid:
        """The inner type's complaint, unless this one says better what it expects."""
        return super().refuse(value, at) if self.custom else self.inner.refuse(value, at)

    def make(self, value: Any, at: Context) -> U:
        """The inner type's value, through the function."""
        inner = self.inner.make(value, at)
        try:
            return self.function(inner)
        except (ValueError, OverflowError) as exc:
            raise Invalid(str(exc)) from None

    def section(self, header: str) -> Section | None:
        """The inner type's table, if it is one."""
        return self.inner.section(header)


class Boolean(Type[bool]):
    """``true`` or ``false``."""

    expected = "true or false"
    kinds = (bool,)

    def make(self, value: bool, at: Context) -> bool:
        """The value itself."""
        return value


class String(Type[str]):
    """Any string (validate it further with :meth:`Type.then`)."""

    kinds = (str,)

    def __init__(self, expected: str = "a string") -> None:
        self.expected = expected

    def make(self, value: str, at: Context) -> str:
        """The value itself."""
        return value


def _bounds(minimum: float | None, maximum: float | None, above: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum} to {maximum}"
    parts = []
    if above is not None:
        parts.append(f"more than {above}")
    if minimum is not None:
        parts.append(f"{minimum} or more")
    if maximum is not None:
        parts.append(f"{maximum} or less")
    return ", ".join(parts)


class Integer(Type[int]):
    """A whole number, optionally bounded (inclusive)."""

    kinds = (int,)

    def __init__(
        self, minimum: int | None = None, maximum: int | None = None, *, expected: str = ""
    ) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.custom = bool(expected)
        if expected:
            self.expected = expected
        elif minimum is not None and maximum is not None:
            self.expected = f"{minimum} to {maximum}"
        elif minimum == 1 and maximum is None:
            self.expected = "a positive whole number"
        elif minimum is None and maximum is None:
            self.expected = "a whole number"
        else:
            self.expected = f"a whole number ({_bounds(minimum, maximum, None)})"

    def make(self, value: int, at: Context) -> int:
        """The value, if within the bounds."""
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            if self.minimum == 0 and self.maximum is None and not self.custom:
                raise Invalid(f"must not be negative, got {value}")
            raise self.refuse(value, at)
        return value


class Number(Type[float]):
    """A finite number (integer or float), optionally bounded; converted to a float."""

    kinds = (int, float)

    def __init__(
        self,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        expected: str = "",
    ) -> None:
        self.minimum, self.maximum, self.above = minimum, maximum, above
        self.custom = bool(expected)
        if expected:
            self.expected = expected
        elif above == 0 and minimum is None and maximum is None:
            self.expected = "a positive number"
        elif minimum is None and maximum is None and above is None:
            self.expected = "a number"
        else:
            self.expected = f"a number ({_bounds(minimum, maximum, above)})"

    def make(self, value: float, at: Context) -> float:
        """The value as a float, if finite and within the bounds."""
        if not math.isfinite(value):
            raise Invalid(f"expected a finite number, got {value}")
        if (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
        ):
            if self.minimum == 0 and self.maximum is None and not self.custom:
                raise Invalid(f"must not be negative, got {value}")
            raise self.refuse(value, at)
        return float(value)


class OneOf(Type[T]):
    """One of a fixed set of values (each mapped to what it stands for)."""

    def __init__(self, choices: Mapping[Any, T], *, fold_case: bool = False) -> None:
        self.choices: dict[Any, T] = dict(choices)
        self.fold_case = fold_case
        self.kinds = tuple({type(choice) for choice in self.choices})
        self.expected = "one of " + ", ".join(repr(choice) for choice in self.choices)

    @staticmethod
    def enum(kind: type[E]) -> OneOf[E]:
        """The members of an enumeration, by value."""
        return OneOf({member.value: member for member in kind})

    def make(self, value: Any, at: Context) -> T:
        """What ``value`` stands for; a near miss of a string is named."""
        key = value.lower() if self.fold_case and isinstance(value, str) else value
        if key in self.choices:
            return self.choices[key]
        invalid = self.refuse(value, at)
        if isinstance(key, str):
            close = did_you_mean(
                key, [choice for choice in self.choices if isinstance(choice, str)]
            )
            if close is not None:
                invalid = Invalid(f"{invalid} (did you mean {close!r}?)")
        raise invalid


class FilePath(Type[Path]):
    """A file system path; a relative one is relative to the configuration file."""

    expected = "a path"
    kinds = (str,)

    def make(self, value: str, at: Context) -> Path:
        """The absolute (or home-relative, expanded) path."""
        if not value or "\0" in value:
            raise self.refuse(value, at)
        try:
            path = Path(value).expanduser()
        except RuntimeError as exc:
            raise Invalid(f"cannot expand {value!r}: {exc}") from None
        return path if path.is_absolute() else at.base / path


class ListOf(Type[list[T]]):
    """An array of values of one type; with ``single``, one bare value stands for a list of one."""

    def __init__(
        self, item: Type[T], plural: str, *, single: bool = True, empty: str | None = None
    ) -> None:
        self.item = item
        self.single = single
        self.empty = empty
        self.kinds = (list, *item.kinds) if single else (list,)
        self.expected = (
            f"{item.expected} or a list of {plural}" if single else f"a list of {plural}"
        )

    def accepts(self, value: object) -> bool:
        """A list, or (with ``single``) what the item type accepts."""
        if isinstance(value, list):
            return True
        return self.single and self.item.accepts(value)

    def make(self, value: Any, at: Context) -> list[T]:
        """Every item converted; each refused item is reported at its index."""
        if not isinstance(value, list):
            return [self.item.convert(value, at)]
        if not value and self.empty is not None:
            raise Invalid(self.empty)
        items, failed = [], False
        for index, item in enumerate(value):
            try:
                items.append(convert(self.item, item, at.at(index)))
            except Reported:
                failed = True
        if failed:
            raise Reported
        return items


class MapOf(Type[dict[K, T]]):
    """A table whose keys are names chosen by the operator (``[hosts."a.example"]``)."""

    kinds = (dict,)

    def __init__(
        self, key: Type[K], value: Type[T], *, expected: str, placeholder: str = "NAME"
    ) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        self.placeholder = placeholder

    def make(self, value: dict[str, Any], at: Context) -> dict[K, T]:
        """Each name and value converted; problems are reported at the name."""
        result, failed = {}, False
        for name, item in value.items():
            here = at.at(name)
            try:
                converted = convert(self.key, name, here)
            except Reported:
                failed = True
            try:
                settings = convert(self.value, item, here)
            except Reported:
                failed = True
            if not failed:
                result[converted] = settings
        if failed:
            raise Reported
        return result

    def section(self, header: str) -> Section | None:
        """The table of each value, under a placeholder name."""
        return self.value.section(f"{header}.{json.dumps(self.placeholder)}")


class ArrayOf(Type[list[T]]):
    """An array of tables (``[[access]]``), with an optional check across its elements.

    ``finish`` gets the converted elements (only when all converted) and
    returns the final list; it reports its problems through the context.
    """

    kinds = (list,)
    expected = "an array of tables"

    def __init__(
        self, table: Table[T], finish: Callable[[list[T], Context], list[T]] | None = None
    ) -> None:
        self.table = table
        self.finish = finish

    def refuse(self, value: object, at: Context) -> Invalid:
        """The complaint, naming the array as it is written."""
        name = at.path[-1] if at.path else "..."
        return Invalid(f"expected an array of tables ([[{name}]]), got {shown(value)}")

    def make(self, value: list[Any], at: Context) -> list[T]:
        """Every table converted; each refused one is reported at its index."""
        items, failed = [], False
        for index, item in enumerate(value):
            try:
                items.append(convert(self.table, item, at.at(index)))
            except Reported:
                failed = True
        if failed:
            raise Reported
        return self.finish(items, at) if self.finish is not None else items

    def section(self, header: str) -> Section | None:
        """Each element's table."""
        return Section(header, self.table, array=True)


@dataclass(frozen=True, slots=True)
class Key(Generic[T]):
    """One key of a table, described once."""

    name: str
    """As written in TOML."""
    type: Type[T]
    description: str
    """One line: what it is for (error messages, the reference, the man page)."""
    default: str | None = None
    """The default as the reference shows it (TOML where possible); None: none, or required."""
    required: bool = False
    to: str = ""
    """The keyword of the table's builder the converted value is passed as; empty: ``name``."""

    @property
    def destination(self) -> str:
        """Where the value lands: the builder's keyword."""
        return self.to or self.name


class Table(Type[T]):
    """A TOML table: known keys, each converted, then given to ``build`` as keywords.

    ``build`` receives only the keys present in the file (so the built
    object's own defaults apply to the others) and may raise
    :class:`Invalid` for mistakes that involve several keys.  It is not
    called when a key was refused or a required key is missing.
    """

    kinds = (dict,)
    expected = "a table"

    def __init__(self, keys: Sequence[Key[Any]], build: Callable[..., T]) -> None:
        self.keys = {key.name: key for key in keys}
        if len(self.keys) != len(keys):
            raise ValueError("a table's keys must have distinct names")
        self.build = build

    def make(self, value: dict[str, Any], at: Context) -> T:
        """The built object."""
        return self.build(**self.values(value, at))

    def values(self, raw: Mapping[str, Any], at: Context) -> dict[str, Any]:
        """The converted values of ``raw`` by destination; every problem reported."""
        values, failed = {}, False
        for name, value in raw.items():
            key = self.keys.get(name)
            if key is None:
                at.report(f"unknown setting {name!r}{_hint(name, self, at.root)}")
                continue
            try:
                values[key.destination] = convert(key.type, value, at.at(name))
            except Reported:
                failed = True
        for key in self.keys.values():
            if key.required and key.name not in raw:
                at.report(f"missing {key.name!r} ({key.description})")
                failed = True
        if failed:
            raise Reported
        return values

    def section(self, header: str) -> Section | None:
        """This table."""
        return Section(header, self, array=False)


# -- the tree as a whole --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    """A table of a schema and where it is written: ``header`` is ``limits``, ``hosts."NAME"``."""

    header: str
    table: Table[Any]
    array: bool = False

    @property
    def label(self) -> str:
        """``[limits]``, ``[[access]]``; empty for the top level."""
        if not self.header:
            return ""
        return f"[[{self.header}]]" if self.array else f"[{self.header}]"


def sections(root: Table[Any]) -> Iterator[Section]:
    """Every table of a schema, the top level first, then depth first in key order."""
    yield Section("", root)
    yield from _subsections(root, "")


def _subsections(table: Table[Any], prefix: str) -> Iterator[Section]:
    for key in table.keys.values():
        name = key.name if _BARE_KEY.match(key.name) else json.dumps(key.name)
        found = key.type.section(f"{prefix}.{name}" if prefix else name)
        if found is not None:
            yield found
            yield from _subsections(found.table, found.header)


@dataclass(frozen=True, slots=True)
class Entry:
    """A key of the reference: the section it is written in, and the key."""

    section: str
    """``[limits]``, ``[[access]]``; empty for the top level."""
    key: Key[Any]


def reference(root: Table[Any]) -> list[Entry]:
    """Every key of a schema with its section, in the order a manual lists them."""
    return [
        Entry(found.label, key) for found in sections(root) for key in found.table.keys.values()
    ]


def _hint(name: str, table: Table[Any], root: Table[Any]) -> str:
    """`` (did you mean …?)`` for an unknown key: first a table where it exists, then a spelling."""
    others = [found for found in sections(root) if found.table is not table]
    homes: list[Section] = []
    # A table written in several places ([[cgi]], [[hosts."NAME".cgi]]) is named once, where
    # it is least nested.
    for found in sorted(others, key=lambda section: section.header.count(".")):
        if name in found.table.keys and all(home.table is not found.table for home in homes):
            homes.append(found)
    if homes:
        return f" (did you mean {' or '.join(_in(found, name) for found in homes)}?)"
    close = did_you_mean(name, list(table.keys))
    if close is not None:
        return f" (did you mean {close!r}?)"
    elsewhere = {key: found for found in others for key in found.table.keys}
    close = did_you_mean(name, list(elsewhere))
    return f" (did you mean {_in(elsewhere[close], close)}?)" if close is not None else ""


def _in(found: Section, name: str) -> str:
    if not found.label:
        # The usual cause: a top-level key written below a [table] header, which it joins.
        return f"the top-level {name!r}, above the first [table]"
    return f"{found.label} {name}"


def parse(root: Table[T], raw: Mapping[str, Any], source: str, base: Path) -> T:
    """Convert a whole document; raises :class:`ConfigError` listing every problem in it."""
    at = Context(source, base, root, [])
    try:
        result = convert(root, dict(raw), at)
    except Reported:
        raise ConfigError(at.problems) from None
    if at.problems:
        raise ConfigError(at.problems)
    return result
