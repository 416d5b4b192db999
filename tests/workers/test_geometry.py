"""Encoding parameters and segment geometry (chk-format §3).

The full §16 table (geometry plus UEB and share lengths) is in tests/uploader/chk/test_layout.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.errors import ParameterError
from workers.geometry import (
    DEFAULT_MAX_SEGMENT_SIZE,
    LIT_MAX_SIZE,
    EncodingParams,
    Geometry,
    ceil_div,
    pow2,
    roundup,
)


@pytest.mark.parametrize(
    ("x", "p"), [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (17, 32), (256, 256), (257, 512)]
)
def test_pow2(x: int, p: int) -> None:
    assert pow2(x) == p


def test_ceil_div_and_roundup() -> None:
    assert [ceil_div(a, 3) for a in range(7)] == [0, 1, 1, 1, 2, 2, 2]
    assert [roundup(a, 3) for a in range(1, 8)] == [3, 3, 3, 6, 6, 6, 9]


def test_defaults() -> None:
    assert LIT_MAX_SIZE == 55
    assert DEFAULT_MAX_SEGMENT_SIZE == 1048576
    assert EncodingParams() == EncodingParams(3, 10, 1048576)


@pytest.mark.parametrize(
    ("k", "n", "mss"),
    [(0, 1, 10), (2, 1, 10), (1, 257, 10), (257, 257, 10), (-1, 3, 10), (1, 1, 0), (3, 10, -5)],
)
def test_params_outside_their_domain_are_refused(k: int, n: int, mss: int) -> None:
    with pytest.raises(ParameterError):
        EncodingParams(k, n, mss)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 256), (256, 256), (101, 256)])
def test_params_at_the_edges_are_accepted(k: int, n: int) -> None:
    assert EncodingParams(k, n, 1).n == n


@pytest.mark.parametrize("size", [0, 1, 55])
def test_lit_sizes_have_no_geometry(size: int) -> None:
    with pytest.raises(ParameterError, match="LIT"):
        Geometry.from_params(EncodingParams(), size)


def test_segment_size_can_exceed_the_maximum() -> None:
    # §3 trap: the multiple-of-k rounding comes after the clamp.
    g = Geometry.from_params(EncodingParams(3, 10, 131072), 131073)
    assert (g.segment_size, g.num_segments, g.tail_size) == (131073, 1, 131073)


def test_segment_size_can_exceed_the_file() -> None:
    g = Geometry.from_params(EncodingParams(101, 256, 131072), 56)
    assert (g.segment_size, g.padded_tail_size, g.block_size, g.share_data_size) == (101, 101, 1, 1)


def test_exact_multiple_has_a_full_tail() -> None:
    g = Geometry.from_params(EncodingParams(2, 3, 100), 400)
    assert (g.num_segments, g.tail_size, g.padded_tail_size, g.tail_block_size) == (4, 100, 100, 50)


def test_per_segment_helpers() -> None:
    g = Geometry.from_params(EncodingParams(3, 10, 100), 250)
    assert (g.segment_size, g.num_segments, g.tail_size, g.padded_tail_size) == (102, 3, 46, 48)
    assert [g.segment_offset(i) for i in range(3)] == [0, 102, 204]
    assert [g.segment_length(i) for i in range(3)] == [102, 102, 46]
    assert [g.padded_segment_length(i) for i in range(3)] == [102, 102, 48]
    assert [g.block_length(i) for i in range(3)] == [34, 34, 16]
    assert g.share_data_size == 84
    assert list(g.segments_for_range(0, 0)) == []
    assert list(g.segments_for_range(101, 2)) == [0, 1]
    assert list(g.segments_for_range(204, 46)) == [2]


params = st.builds(
    lambda n, kfrac, mss: EncodingParams(max(1, round(n * kfrac)), n, mss),
    st.integers(1, 256),
    st.floats(0, 1),
    st.integers(1, 1 << 20),
)


@given(params, st.integers(LIT_MAX_SIZE + 1, 1 << 34))
def test_geometry_invariants(p: EncodingParams, size: int) -> None:
    g = Geometry.from_params(p, size)
    k = p.k
    assert (g.k, g.n, g.size) == (p.k, p.n, size)
    clamp = min(p.max_segment_size, size)
    assert g.segment_size % k == 0
    assert clamp <= g.segment_size < clamp + k
    assert (g.num_segments - 1) * g.segment_size < size <= g.num_segments * g.segment_size
    assert 1 <= g.tail_size <= g.segment_size
    assert g.padded_tail_size % k == 0
    assert g.tail_size <= g.padded_tail_size < g.tail_size + k
    assert g.block_size * k == g.segment_size
    assert g.tail_block_size * k == g.padded_tail_size
    assert g.share_data_size == ceil_div(size, k)
    assert g.segment_offset(g.num_segments - 1) + g.segment_length(g.num_segments - 1) == size


@given(params, st.integers(LIT_MAX_SIZE + 1, 5000), st.data())
def test_segments_for_range_matches_brute_force(p: EncodingParams, size: int, data: st.DataObject) -> None:
    g = Geometry.from_params(EncodingParams(p.k, p.n, max(p.max_segment_size % 700, 1)), size)
    offset = data.draw(st.integers(0, size - 1))
    length = data.draw(st.integers(0, size - offset))
    # The segments that hold at least one of the bytes, found byte by byte.
    expected = sorted(
        {
            s
            for s in range(g.num_segments)
            for b in range(offset, offset + length)
            if g.segment_offset(s) <= b < g.segment_offset(s) + g.segment_length(s)
        }
    )
    assert list(g.segments_for_range(offset, length)) == expected
    assert sum(g.segment_length(s) for s in range(g.num_segments)) == size
