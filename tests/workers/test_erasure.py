"""zfec erasure coding (chk-format §7): systematic, decodable from any k of N blocks."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers import erasure


@st.composite
def coded(draw: st.DrawFn) -> tuple[int, int, list[bytes]]:
    n = draw(st.one_of(st.integers(1, 12), st.integers(13, 40), st.sampled_from([255, 256])), label="n")
    k = draw(st.integers(1, n), label="k")
    length = draw(st.integers(0, 64), label="piece length")
    rnd = random.Random(draw(st.integers(0, 2**32), label="seed"))
    return k, n, [rnd.randbytes(length) for _ in range(k)]


@given(coded())
def test_encode_is_systematic(case: tuple[int, int, list[bytes]]) -> None:
    k, n, pieces = case
    blocks = erasure.encode(pieces, k, n)
    assert len(blocks) == n
    assert [bytes(b) for b in blocks[:k]] == pieces
    assert all(len(b) == len(pieces[0]) for b in blocks)


@given(coded(), st.data())
def test_decode_from_any_k_subset_in_any_order(
    case: tuple[int, int, list[bytes]], data: st.DataObject
) -> None:
    k, n, pieces = case
    blocks = erasure.encode(pieces, k, n)
    nums = data.draw(st.permutations(range(n)), label="order")[:k]
    assert erasure.decode([blocks[i] for i in nums], nums, k, n) == pieces


def test_decode_from_check_blocks_only() -> None:
    k, n = 3, 6
    pieces = [b"abcd", b"efgh", b"ijkl"]
    blocks = erasure.encode(pieces, k, n)
    assert len({bytes(b) for b in blocks}) == n  # the check blocks are not copies of the data
    assert erasure.decode(blocks[3:], [3, 4, 5], k, n) == pieces


def test_decode_needs_exactly_k_distinct_blocks() -> None:
    blocks = erasure.encode([b"ab", b"cd"], 2, 4)
    with pytest.raises(ValueError):
        erasure.decode(blocks[:1], [0], 2, 4)
    with pytest.raises(ValueError):
        erasure.decode([blocks[1], blocks[1]], [1, 1], 2, 4)
    with pytest.raises(ValueError):
        erasure.decode(blocks[:3], [0, 1, 2], 2, 4)


def test_accepts_memoryviews() -> None:
    data = memoryview(b"0123456789ab")
    pieces = [data[0:4], data[4:8], data[8:12]]
    blocks = erasure.encode(pieces, 3, 5)
    assert erasure.decode([memoryview(bytes(blocks[i])) for i in (4, 1, 3)], [4, 1, 3], 3, 5) == [
        b"0123",
        b"4567",
        b"89ab",
    ]
