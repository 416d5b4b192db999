"""RangeSet against a plain set-of-offsets model."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from uploader.storage.ranges import RangeSet
from uploader.wire.protocol import Span

writes = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 60)), max_size=25)


def test_spec_example() -> None:
    r = RangeSet()
    r.add(0, 16)
    assert r.missing(48) == [Span(16, 48)]
    r.add(32, 48)
    assert r.missing(48) == [Span(16, 32)]
    assert r.prefix() == 16
    assert not r.covers(48)
    r.add(16, 32)
    assert r.missing(48) == []
    assert r.covers(48)
    assert r.spans() == [Span(0, 48)]


def test_touching_intervals_merge_and_overlaps_are_clipped() -> None:
    r = RangeSet()
    r.add(10, 20)
    r.add(20, 30)
    r.add(40, 50)
    assert r.spans() == [Span(10, 30), Span(40, 50)]
    assert r.overlaps(0, 100) == [Span(10, 30), Span(40, 50)]
    assert r.overlaps(25, 45) == [Span(25, 30), Span(40, 45)]
    assert r.overlaps(30, 40) == []
    assert r.covered() == 30
    r.add(5, 5)  # empty: ignored
    assert len(r) == 2


@given(writes, st.integers(1, 260))
def test_matches_a_set_model(ops: list[tuple[int, int]], size: int) -> None:
    r = RangeSet()
    model: set[int] = set()
    for begin, length in ops:
        probe = r.overlaps(begin, begin + length)
        assert {i for s in probe for i in range(s.begin, s.end)} == model & set(range(begin, begin + length))
        r.add(begin, begin + length)
        model |= set(range(begin, begin + length))
    spans = r.spans()
    assert all(a.end < b.begin for a, b in itertools.pairwise(spans))
    assert {i for s in spans for i in range(s.begin, s.end)} == model
    missing = r.missing(size)
    assert {i for s in missing for i in range(s.begin, s.end)} == set(range(size)) - model
    assert r.covers(size) == (not missing)
    assert r.covered() == len(model)
    expected_prefix = 0
    while expected_prefix in model:
        expected_prefix += 1
    assert r.prefix() == expected_prefix
