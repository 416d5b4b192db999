"""Flow control of uploads: shared segment buffers, bytes in flight per server, one upload per file.

| piece | what it bounds |
|---|---|
| ``SegmentHold`` | a segment's blocks (a shared-memory slot) live until the last write carrying them ends |
| ``Budget`` | bytes in flight to one server, shared by every upload of a client (``pipeline_depth``) |
| ``KeyedLocks`` | uploads of the same storage index (identical files) run one after the other |
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uploader.supervisor import EncodeResult


class SegmentHold:
    """A segment's blocks, shared by the writes that carry them; released after the last one."""

    __slots__ = ("on_done", "refs", "result")

    def __init__(self, result: EncodeResult, refs: int, on_done: Callable[[int], None] | None) -> None:
        self.result = result
        self.refs = refs
        self.on_done = on_done
        if refs == 0:
            self._finish()

    def drop(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self._finish()

    def _finish(self) -> None:
        segment = self.result.segment
        self.result.release()
        if self.on_done is not None:
            self.on_done(segment)


class Budget:
    """Bytes in flight to one server; a write larger than the whole budget waits for all of it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._cond = asyncio.Condition()
        # Cumulative, across the uploads sharing this server, for the status page.
        self.bytes_sent = 0  # bytes of writes the server acknowledged
        self.writes = 0  # acknowledged writes
        self.write_s = 0.0  # their summed round-trip seconds
        self.failures = 0  # write attempts that failed (retried or not)

    def record(self, nbytes: int, seconds: float) -> None:
        """An acknowledged write of ``nbytes`` that took ``seconds`` to answer."""
        self.bytes_sent += nbytes
        self.writes += 1
        self.write_s += seconds

    @property
    def in_flight(self) -> int:
        return self.capacity - self.free

    async def acquire(self, n: int) -> int:
        n = min(n, self.capacity)
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        return n

    @property
    def idle(self) -> bool:
        return self.free == self.capacity

    async def resize(self, capacity: int) -> None:
        """A new capacity (a reloaded ``pipeline_depth``); bytes in flight stay counted."""
        async with self._cond:
            self.free += capacity - self.capacity
            self.capacity = capacity
            self._cond.notify_all()

    async def release(self, n: int) -> None:
        async with self._cond:
            self.free += n
            self._cond.notify_all()


class KeyedLocks:
    """One lock per storage index: concurrent uploads of the same file (the same convergent SI)
    take turns, so the second finds the first's shares complete instead of being refused."""

    def __init__(self) -> None:
        self._locks: dict[bytes, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: bytes) -> None:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(key)
            raise

    def release(self, key: bytes) -> None:
        self._locks[key][0].release()
        self._forget(key)

    def _forget(self, key: bytes) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)
