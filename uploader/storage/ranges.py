"""Which bytes of an in-progress share have been written, and which are still required.

A sorted list of disjoint, non-touching half-open intervals ``[begin, end)``. ``add`` merges;
``overlaps`` says which parts of a new write land on bytes already written (those must match,
gbs-http-protocol §6.3); ``missing`` is the ``required`` answer of a PATCH.
"""

from __future__ import annotations

import bisect

from uploader.wire.protocol import Span


class RangeSet:
    """Disjoint half-open intervals, kept merged; all sizes and offsets in bytes."""

    __slots__ = ("_begins", "_ends")

    def __init__(self) -> None:
        self._begins: list[int] = []
        self._ends: list[int] = []

    def __len__(self) -> int:
        return len(self._begins)

    def spans(self) -> list[Span]:
        return [Span(b, e) for b, e in zip(self._begins, self._ends, strict=True)]

    def covered(self) -> int:
        """Total bytes in the set."""
        return sum(e - b for b, e in zip(self._begins, self._ends, strict=True))

    def add(self, begin: int, end: int) -> None:
        """Add ``[begin, end)``, merging with any interval it overlaps or touches."""
        if begin >= end:
            return
        # First interval whose end >= begin (it may touch or overlap), last whose begin <= end.
        lo = bisect.bisect_left(self._ends, begin)
        hi = bisect.bisect_right(self._begins, end)
        if lo < hi:
            begin = min(begin, self._begins[lo])
            end = max(end, self._ends[hi - 1])
        self._begins[lo:hi] = [begin]
        self._ends[lo:hi] = [end]

    def overlaps(self, begin: int, end: int) -> list[Span]:
        """The parts of ``[begin, end)`` already in the set, ascending."""
        out = []
        i = bisect.bisect_right(self._ends, begin)
        while i < len(self._begins) and self._begins[i] < end:
            out.append(Span(max(begin, self._begins[i]), min(end, self._ends[i])))
            i += 1
        return out

    def missing(self, size: int) -> list[Span]:
        """The parts of ``[0, size)`` not in the set, ascending."""
        out = []
        pos = 0
        for b, e in zip(self._begins, self._ends, strict=True):
            if b >= size:
                break
            if b > pos:
                out.append(Span(pos, b))
            pos = max(pos, e)
        if pos < size:
            out.append(Span(pos, size))
        return out

    def prefix(self) -> int:
        """How many bytes from offset 0 on are all in the set."""
        return self._ends[0] if self._begins and self._begins[0] == 0 else 0

    def covers(self, size: int) -> bool:
        """True when every byte of ``[0, size)`` is in the set."""
        return size == 0 or (bool(self._begins) and self._begins[0] == 0 and self._ends[0] >= size)
