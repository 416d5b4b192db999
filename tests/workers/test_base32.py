"""Tahoe base32 (chk-format §1.1): lower case, no padding, strict about the last character."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.base32 import b32decode, b32encode
from workers.errors import FormatError, UploaderError

ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"", ""),
        (b"f", "my"),
        (b"fo", "mzxq"),
        (b"foo", "mzxw6"),
        (b"foob", "mzxw6yq"),
        (b"fooba", "mzxw6ytb"),
        (b"foobar", "mzxw6ytboi"),
        (b"hello", "nbswy3dp"),
    ],
)
def test_known_answers(raw: bytes, text: str) -> None:
    # RFC 4648 §10 test vectors, lower-cased with the padding removed.
    assert b32encode(raw) == text
    assert b32decode(text) == raw


def test_hash_and_key_lengths() -> None:
    assert len(b32encode(bytes(16))) == 26
    assert len(b32encode(bytes(32))) == 52
    assert b32decode("yzxcoagbetwet65ltjpbqyli3m", 16).hex() == "c66e2700c124ec49fbab9a5e186168db"


@given(st.binary(max_size=200))
def test_round_trip_and_matches_stdlib(raw: bytes) -> None:
    text = b32encode(raw)
    assert text == base64.b32encode(raw).decode().rstrip("=").lower()
    assert set(text) <= set(ALPHABET)
    assert b32decode(text) == raw
    assert b32decode(text, len(raw)) == raw


@given(st.text(max_size=120))
def test_arbitrary_text_is_a_value_or_format_error(text: str) -> None:
    try:
        raw = b32decode(text)
    except UploaderError as exc:
        assert isinstance(exc, FormatError)
    else:
        # Whatever decodes must be the canonical encoding of what it decodes to.
        assert b32encode(raw) == text


@given(st.text(alphabet=ALPHABET + "=ABC01890 \n", max_size=120))
def test_near_alphabet_text_is_a_value_or_format_error(text: str) -> None:
    try:
        raw = b32decode(text)
    except FormatError:
        return
    assert b32encode(raw) == text


@pytest.mark.parametrize("last", sorted(set(ALPHABET) - set("aeimquy4")))
def test_key_length_rejects_non_zero_spare_bits(last: str) -> None:
    with pytest.raises(FormatError, match="unused bits"):
        b32decode("a" * 25 + last)


@pytest.mark.parametrize("last", "aeimquy4")
def test_key_length_accepts_zero_spare_bits(last: str) -> None:
    assert len(b32decode("a" * 25 + last, 16)) == 16


@pytest.mark.parametrize("last", sorted(set(ALPHABET) - set("aq")))
def test_hash_length_rejects_non_zero_spare_bits(last: str) -> None:
    with pytest.raises(FormatError):
        b32decode("a" * 51 + last)


@pytest.mark.parametrize("length", [1, 3, 6, 9, 11, 14])
def test_rejects_lengths_no_byte_count_encodes_to(length: int) -> None:
    with pytest.raises(FormatError, match="whole number of bytes"):
        b32decode("a" * length)


@pytest.mark.parametrize(
    "text", ["NBSWY3DP", "nbswy3dp=", "nbswy0dp", "nbswy1dp", "nbswy8dp", "nbs wy3dp", "é"]
)
def test_rejects_characters_outside_the_alphabet(text: str) -> None:
    with pytest.raises(FormatError, match="a-z and 2-7"):
        b32decode(text)


def test_expected_length_is_enforced() -> None:
    with pytest.raises(FormatError, match="expected base32 of 16 bytes, got 32"):
        b32decode(b32encode(bytes(32)), 16)
