"""Encoding parameters and segment geometry (chk-format §3).

| value | rule |
|---|---|
| segment_size | ``roundup(min(max_segment_size, size), k)`` (may exceed the maximum by < k) |
| num_segments | ``ceil(size / segment_size)`` |
| tail_size | ``size - (num_segments - 1) * segment_size`` (1..segment_size) |
| padded_tail_size | ``roundup(tail_size, k)`` |
| block_size / tail_block_size | ``segment_size / k`` / ``padded_tail_size / k`` |
| share_data_size | ``ceil(size / k)`` |
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.errors import ParameterError

LIT_MAX_SIZE = 55  # files of at most this many bytes become LIT caps: nothing is uploaded
DEFAULT_MAX_SEGMENT_SIZE = 1024 * 1024  # Tahoe >= 1.18's default


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def roundup(a: int, m: int) -> int:
    return ceil_div(a, m) * m


def pow2(x: int) -> int:
    """Smallest power of two >= x (pow2(1) == 1)."""
    p = 1
    while p < x:
        p <<= 1
    return p


@dataclass(frozen=True, slots=True)
class EncodingParams:
    """k (shares needed), N (shares total) and the maximum segment size, all validated."""

    k: int = 3
    n: int = 10
    max_segment_size: int = DEFAULT_MAX_SEGMENT_SIZE

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n <= 256:
            raise ParameterError(
                f"shares needed/total must satisfy 1 <= k <= N <= 256, got k={self.k}, N={self.n}"
            )
        if self.max_segment_size < 1:
            raise ParameterError(f"max segment size must be >= 1 byte, got {self.max_segment_size}")


@dataclass(frozen=True, slots=True)
class Geometry:
    """Everything the format derives from (k, N, max segment size, file size)."""

    k: int
    n: int
    size: int
    segment_size: int
    num_segments: int
    tail_size: int
    padded_tail_size: int

    @classmethod
    def from_params(cls, params: EncodingParams, size: int) -> Geometry:
        if size <= LIT_MAX_SIZE:
            raise ParameterError(f"files of {LIT_MAX_SIZE} bytes or fewer are LIT caps, not CHK (got {size})")
        k = params.k
        segment_size = roundup(min(params.max_segment_size, size), k)
        num_segments = ceil_div(size, segment_size)
        tail_size = size - (num_segments - 1) * segment_size
        return cls(k, params.n, size, segment_size, num_segments, tail_size, roundup(tail_size, k))

    @property
    def block_size(self) -> int:
        return self.segment_size // self.k

    @property
    def tail_block_size(self) -> int:
        return self.padded_tail_size // self.k

    @property
    def share_data_size(self) -> int:
        return (self.num_segments - 1) * self.block_size + self.tail_block_size

    def segment_offset(self, segnum: int) -> int:
        """Byte offset of segment ``segnum`` in the plaintext (and ciphertext)."""
        return segnum * self.segment_size

    def segment_length(self, segnum: int) -> int:
        """Unpadded length of segment ``segnum``."""
        return self.tail_size if segnum == self.num_segments - 1 else self.segment_size

    def padded_segment_length(self, segnum: int) -> int:
        return self.padded_tail_size if segnum == self.num_segments - 1 else self.segment_size

    def block_length(self, segnum: int) -> int:
        return self.padded_segment_length(segnum) // self.k

    def segments_for_range(self, offset: int, length: int) -> range:
        """Segment numbers that hold plaintext bytes [offset, offset+length)."""
        if length <= 0:
            return range(0)
        return range(offset // self.segment_size, ceil_div(offset + length, self.segment_size))
