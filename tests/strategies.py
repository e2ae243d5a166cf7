"""Hypothesis strategies for what a server may send: valid statuses, metas and MIME types."""

from __future__ import annotations

from hypothesis import strategies as st

from hospes.gemini.protocol import Status

TOKEN_CHARACTERS = "!#$%&'*+-.^_`{|}~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
CONTROLS = "".join(chr(code) for code in range(0x20)) + "\x7f"

tokens = st.text(TOKEN_CHARACTERS, min_size=1, max_size=12)
quoted = st.text(
    st.characters(codec="utf-8", exclude_characters=CONTROLS + '"\\'), max_size=12
).map(lambda text: f'"{text}"')
parameters = st.lists(st.tuples(tokens, tokens | quoted, st.sampled_from(["; ", ";", " ; "])))


@st.composite
def mime_types(draw: st.DrawFn) -> str:
    """``type/subtype`` with zero or more ``; name=value`` parameters (RFC 2045)."""
    text = f"{draw(tokens)}/{draw(tokens)}"
    for name, value, separator in draw(parameters):
        text += f"{separator}{name}={value}"
    return text


# At most 256 characters: never more than 1024 bytes of UTF-8.
metas = st.text(st.characters(codec="utf-8", exclude_characters=CONTROLS), max_size=256)


@st.composite
def headers(draw: st.DrawFn) -> tuple[int, str]:
    """A status the specification defines with a meta that fits it."""
    status = draw(st.sampled_from(list(Status)))
    if status // 10 == 2:
        meta = draw(mime_types().filter(lambda text: len(text.encode()) <= 1024))
    elif status // 10 == 3:
        meta = draw(metas.filter(bool))
    else:
        meta = draw(metas)
    return status, meta
