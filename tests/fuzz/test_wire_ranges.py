"""Fuzz: Content-Range and Range values (requests to our server, 206 answers to our client) built
from near-valid pieces, beyond the arbitrary-text test beside the parsers: a ByteRange whose bounds
are the numbers given, or RangeError — including for Unicode digits and huge numbers."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from uploader.wire import protocol as p
from uploader.wire.protocol import RangeError

numbers = st.one_of(
    st.integers(0, 2**70).map(str),
    st.sampled_from(["", "-1", "٣", "²", "1_0", "0x10", " 5", "9" * 40]),
)


@given(
    numbers, numbers, st.one_of(numbers, st.just("*")), st.sampled_from(["bytes ", "bytes=", "Bytes ", ""])
)
def test_content_ranges_parse_exactly_or_raise_range_error(
    first: str, last: str, total: str, unit: str
) -> None:
    for parse in (p.parse_content_range, p.parse_response_content_range):
        with contextlib.suppress(RangeError):
            r = parse(f"{unit}{first}-{last}/{total}")
            assert (r.first, r.last) == (int(first), int(last)) and first.isascii() and last.isascii()


@given(numbers, numbers, st.sampled_from(["bytes=", "bytes ", ""]))
def test_ranges_parse_exactly_or_raise_range_error(first: str, last: str, unit: str) -> None:
    with contextlib.suppress(RangeError):
        r = p.parse_range(f"{unit}{first}-{last}")
        assert (r.first, r.last) == (int(first), int(last)) and first.isascii() and last.isascii()
