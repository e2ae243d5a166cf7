"""Link codes: random, easy to type, forgiving in what they accept, hashed for the store."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from hospes.accounts import CODE_ALPHABET, code_hash, new_link_code, normalize_code


def test_new_codes_are_canonical_and_distinct():
    codes = {new_link_code() for _ in range(1000)}
    assert len(codes) == 1000
    for code in codes:
        assert len(code) == 11
        assert code[5] == "-"
        assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
        assert normalize_code(code) == code.replace("-", "")


def test_alphabet_has_no_lookalikes():
    assert len(CODE_ALPHABET) == 32
    assert not set("ILOU") & set(CODE_ALPHABET)


def test_typing_is_forgiving():
    assert normalize_code(" 7kx2m - q9dfa ") == "7KX2MQ9DFA"
    assert normalize_code("OIL23-45678") == "01123" + "45678"
    assert normalize_code("7KX2M-Q9DF") is None
    assert normalize_code("7KX2M-Q9DFAA") is None
    assert normalize_code("7KX2M-Q9DFU") is None
    assert normalize_code("") is None


def test_hash_is_sha256_of_the_canonical_code():
    assert len(code_hash("7KX2MQ9DFA")) == 32
    assert code_hash("7KX2MQ9DFA") != code_hash("7KX2MQ9DFB")


@given(st.text(alphabet=CODE_ALPHABET, min_size=10, max_size=10), st.data())
def test_any_spelling_of_a_code_normalises_to_it(code, data):
    spelled = "".join(
        data.draw(st.sampled_from([char, char.lower()]))
        + data.draw(st.sampled_from(["", "-", " "]))
        for char in code
    )
    assert normalize_code(spelled) == code


@given(st.text(alphabet=string.printable + "äß\u202e", max_size=30))
def test_normalize_never_fails(text):
    result = normalize_code(text)
    assert result is None or (len(result) == 10 and set(result) <= set(CODE_ALPHABET))
