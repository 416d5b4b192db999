"""Erasure coding: zfec's systematic Reed-Solomon over GF(2^8) (chk-format §7).

``encode(pieces)`` takes k equal-length pieces and returns N blocks (blocks 0..k-1 are the pieces
themselves); ``decode(blocks, nums)`` takes any k blocks with their block numbers and returns the
k pieces. Encoders and decoders hold per-(k, N) tables, so they are cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import zfec

from workers.hashes import BytesLike


@lru_cache(maxsize=64)
def _encoder(k: int, n: int) -> Any:
    return zfec.Encoder(k, n)


@lru_cache(maxsize=64)
def _decoder(k: int, n: int) -> Any:
    return zfec.Decoder(k, n)


def encode(pieces: Sequence[BytesLike], k: int, n: int) -> list[BytesLike]:
    """N blocks from k pieces of equal length; the first k returned are the inputs (not copies)."""
    blocks: list[BytesLike] = _encoder(k, n).encode(tuple(pieces))
    return blocks


def decode(blocks: Sequence[BytesLike], nums: Sequence[int], k: int, n: int) -> list[bytes]:
    """The k primary pieces from any k distinct blocks ``blocks`` numbered ``nums``."""
    if len(blocks) != k or len(set(nums)) != k:
        raise ValueError(f"decode needs exactly {k} distinct blocks, got numbers {list(nums)}")
    if all(num == i for i, num in enumerate(nums)):
        return [bytes(b) for b in blocks]
    pieces: list[bytes] = _decoder(k, n).decode(tuple(blocks), tuple(nums))
    return pieces
