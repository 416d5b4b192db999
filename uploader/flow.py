"""Flow control of uploads: shared segment buffers, bytes in flight per server, one upload per file.

| piece | what it bounds |
|---|---|
| ``SegmentHold`` | a segment's blocks (a shared-memory slot) live until the last write carrying them ends |
| ``Budget`` | bytes in flight to one server, shared by every upload of a client (``pipeline_depth``) |
| ``KeyedLocks`` | uploads of the same storage index (identical files) run one after the other |
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """Bytes in flight to one server, granted first come, first served; a write larger than the
    whole budget waits until nothing else is in flight.

    ``release`` is synchronous, so it can run from a task's done-callback: a write task cancelled
    before it ever ran still gives its bytes back (a budget that leaks stalls every later upload
    to that server for good)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
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

    def _fits(self, n: int) -> bool:
        return self.free >= min(n, self.capacity)  # capacity may have shrunk since n was capped

    async def acquire(self, n: int) -> int:
        """Take ``n`` bytes (at most the capacity); returns what was taken, for ``release``."""
        n = min(n, self.capacity)
        if not self._waiters and self._fits(n):
            self.free -= n
            return n
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted just as we were cancelled: give it back
            else:
                self._grant()  # we may have been the head of the queue
            raise
        return n

    @property
    def idle(self) -> bool:
        return self.free == self.capacity

    async def resize(self, capacity: int) -> None:
        """A new capacity (a reloaded ``pipeline_depth``); bytes in flight stay counted."""
        self.free += capacity - self.capacity
        self.capacity = capacity
        self._grant()

    def release(self, n: int) -> None:
        self.free += n
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():  # cancelled while waiting
                self._waiters.popleft()
            elif self._fits(n):
                self._waiters.popleft()
                self.free -= n
                fut.set_result(None)
            else:
                break


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
