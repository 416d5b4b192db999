"""Per-segment encode and decode (chk-format §6-§8)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.aes import aes_ctr
from workers.errors import IntegrityError
from workers.hashes import TAG_BLOCK, TAG_CRYPTTEXT_SEGMENT, tagged_hash
from workers.segment import (
    decode_ciphertext,
    decode_segment,
    encode_ciphertext,
    encode_segment,
    split_pieces,
)

KEY = bytes(range(16))


@st.composite
def segments(draw: st.DrawFn) -> tuple[int, int, int, bytes]:
    n = draw(st.one_of(st.integers(1, 10), st.integers(11, 30)), label="n")
    k = draw(st.integers(1, n), label="k")
    offset = draw(st.integers(0, 2**32), label="offset")
    length = draw(st.integers(1, 3000), label="length")
    return k, n, offset, random.Random(draw(st.integers(0, 2**32))).randbytes(length)


def test_split_pieces() -> None:
    assert [bytes(p) for p in split_pieces(b"abcdef", 3)] == [b"ab", b"cd", b"ef"]
    assert [bytes(p) for p in split_pieces(b"abcdef", 1)] == [b"abcdef"]


@given(segments())
def test_encode_segment(case: tuple[int, int, int, bytes]) -> None:
    k, n, offset, plaintext = case
    enc = encode_segment(plaintext, KEY, offset, k, n)
    ciphertext = aes_ctr(KEY, offset, plaintext)
    padded = ciphertext + bytes(-len(ciphertext) % k)
    assert enc.crypttext_hash == tagged_hash(TAG_CRYPTTEXT_SEGMENT, ciphertext)  # the unpadded ciphertext
    assert len(enc.blocks) == len(enc.block_hashes) == n
    assert {len(b) for b in enc.blocks} == {len(padded) // k}
    assert b"".join(bytes(b) for b in enc.blocks[:k]) == padded  # systematic, zero-padded tail
    assert enc.block_hashes == [tagged_hash(TAG_BLOCK, bytes(b)) for b in enc.blocks]
    assert encode_ciphertext(ciphertext, k, n).block_hashes == enc.block_hashes


@given(segments(), st.data())
def test_decode_from_any_k_blocks(case: tuple[int, int, int, bytes], data: st.DataObject) -> None:
    k, n, offset, plaintext = case
    enc = encode_segment(plaintext, KEY, offset, k, n)
    nums = data.draw(st.permutations(range(n)), label="order")[:k]
    extra = data.draw(st.integers(0, n - k), label="extra blocks")
    nums = nums + [i for i in range(n) if i not in nums][:extra]
    blocks = {i: enc.blocks[i] for i in nums}
    assert decode_segment(blocks, KEY, offset, k, n, len(plaintext)) == plaintext
    assert decode_ciphertext(blocks, k, n, len(plaintext)) == aes_ctr(KEY, offset, plaintext)


def test_decode_needs_k_blocks() -> None:
    enc = encode_segment(b"x" * 30, KEY, 0, 3, 5)
    with pytest.raises(IntegrityError, match="needs 3 blocks"):
        decode_ciphertext({0: enc.blocks[0], 4: enc.blocks[4]}, 3, 5, 30)


def test_decode_refuses_blocks_of_different_lengths() -> None:
    enc = encode_segment(b"x" * 30, KEY, 0, 3, 5)
    with pytest.raises(IntegrityError, match="differ in length"):
        decode_ciphertext({0: enc.blocks[0], 1: enc.blocks[1], 2: bytes(enc.blocks[2])[:-1]}, 3, 5, 30)


def test_decode_refuses_a_length_longer_than_the_blocks() -> None:
    enc = encode_segment(b"x" * 30, KEY, 0, 3, 5)
    with pytest.raises(IntegrityError, match="expected at least 31"):
        decode_ciphertext(dict(enumerate(enc.blocks)), 3, 5, 31)
