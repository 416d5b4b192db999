"""Shared-memory slots for the blocks of encoded segments: one anonymous memfd arena.

The network process creates the arena with ``memfd_create`` (no name in /dev/shm, so nothing can
leak there, even after SIGKILL: the memory goes when the last process holding the fd or a mapping
exits) and hands the fd to each worker over its control socket (SCM_RIGHTS). A job names a slot;
the worker writes the segment's N blocks there, block j at ``j * block_size``, and replies with
hashes only. The network process sends the blocks to servers straight from the mapping and frees
the slot when every write is done.

Measured on this machine (2 cores, (k, N) = (3, 10), 1 MiB segments, a 256 MiB file, W=2;
``python -m tools.bench_encode``, one run): receiving the blocks inline in pipe frames costs the
network process 2.0 CPU-s per GB of plaintext (socket copy + msgpack unpacking copy), against
0.10 through slots (one small control message per segment). Slots it is; inline frames remain
for segments too big for a slot.
"""

from __future__ import annotations

import contextlib
import mmap
import os


class Arena:
    """``count`` slots of ``slot_size`` bytes in one shared mapping."""

    def __init__(self, fd: int, count: int, slot_size: int) -> None:
        self.fd = fd
        self.count = count
        self.slot_size = slot_size
        self._map = mmap.mmap(fd, max(count * slot_size, mmap.PAGESIZE)) if count else None
        self._view = memoryview(self._map) if self._map is not None else memoryview(b"")

    @classmethod
    def create(cls, count: int, slot_size: int) -> Arena:
        fd = os.memfd_create("uploader-slots", os.MFD_CLOEXEC)
        os.ftruncate(fd, max(count * slot_size, mmap.PAGESIZE))
        return cls(fd, count, slot_size)

    def slot(self, index: int) -> memoryview:
        if not 0 <= index < self.count:
            raise IndexError(f"slot {index} outside 0..{self.count - 1}")
        start = index * self.slot_size
        return self._view[start : start + self.slot_size]

    def close(self) -> None:
        self._view.release()
        if self._map is not None:
            # BufferError: a caller still holds a view; the mapping goes with the process
            with contextlib.suppress(BufferError):
                self._map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
