"""The API key rule both transports share: X-API-Key first, else Authorization: Bearer; str (gRPC) or bytes (REST)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from foretell.serving.api_key import key_given

keys = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@given(keys, keys)
def test_the_key_is_taken_from_either_header_as_text_or_bytes(key: str, other: str) -> None:
    for form in (str, lambda s: s.encode()):
        assert key_given(key, form(key), None)
        assert key_given(key, None, form(f"Bearer {key}"))
        assert key_given(key, form(key), form(f"Bearer {other}"))  # X-API-Key wins
        assert key_given(key, form(other), None) == (key == other)
    assert not key_given(key, None, None)
    assert not key_given(key, "", "")
