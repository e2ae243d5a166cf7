"""Look-alike account names: UTS #39 skeletons and the key a store keeps unique."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.store import check_name
from hospes.store.names import name_key, skeleton

NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice", "alice"),
        ("aIice", "alice"),  # capital I
        ("a1ice", "alice"),
        ("b0b", "bOb"),
        ("mary", "rnary"),
        ("\u0430lice", "alice"),  # Cyrillic a
        ("\u217cittle", "little"),  # SMALL ROMAN NUMERAL FIFTY
        ("caf\u00e9", "cafe\u0301"),  # NFD
    ],
)
def test_skeleton(text, expected):
    assert skeleton(text) == expected


@pytest.mark.parametrize(
    ("name", "other"),
    [("alice", "aIice"), ("alice", "AIice"), ("alice", "a1ice"), ("bob", "B0B"), ("mary", "rnary")],
)
def test_look_alike_names_share_a_key(name, other):
    assert name_key(name) == name_key(other)


@pytest.mark.parametrize(("name", "other"), [("alice", "alicia"), ("bob", "bop"), ("x-1", "x_1")])
def test_different_names_have_different_keys(name, other):
    assert name_key(name) != name_key(other)


@given(NAME, NAME)
def test_equal_skeletons_mean_equal_keys(name, other):
    check_name(name)  # the strategy makes only valid names: NAME_RULE
    if skeleton(name) == skeleton(other):
        assert name_key(name) == name_key(other)


@given(NAME)
def test_the_key_is_case_folded(name):
    key = name_key(name)
    assert key == key.casefold() == unicodedata.normalize("NFKC", key)
    assert key == skeleton(name).casefold()  # ASCII names: NFKC changes nothing
