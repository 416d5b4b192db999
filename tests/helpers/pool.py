"""Encode a file through the real worker pool and assemble whole shares in memory, for comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from uploader.chk.caps import Cap
from uploader.encoding import encode_file_pooled, slot_size_for
from uploader.prespawn import Spawned
from uploader.supervisor import EncodeResult, WorkerPool
from workers.geometry import EncodingParams


async def pool_encode_shares(
    pool: WorkerPool, path: Path, params: EncodingParams, secret: bytes | None, *, window: int = 4
) -> tuple[Cap, list[bytes]]:
    """(cap, every share's bytes) from the pool's blocks and the trailer, as an uploader would write them."""
    data: list[bytearray] = [bytearray() for _ in range(params.n)]

    async def collect(result: EncodeResult) -> None:
        with result:
            for j, block in enumerate(result.blocks):
                data[j] += block

    cap, trailer = await encode_file_pooled(pool, path, params, secret, window=window, on_segment=collect)
    if trailer is None:
        return cap, []
    header = trailer.layout.pack_header()
    return cap, [header + bytes(data[j]) + trailer.share_trailer(j) for j in range(params.n)]


def new_pool(workers: int, params: EncodingParams | None = None, **kw: object) -> WorkerPool:
    size = slot_size_for(params or EncodingParams())
    return WorkerPool(workers, slot_count=8, slot_size=size, **kw)  # type: ignore[arg-type]


class StartKiller:
    """A fault: the next ``count`` workers the pool starts (all of them when None) are SIGKILLed
    before the pool's hello reaches them."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, count: int | None = None, spare: frozenset[int] = frozenset()
    ) -> None:
        """``spare``: the starts (0 for the first) that are left alone, and count for nothing."""
        import uploader.supervisor as supervisor

        self.count = count
        self.spare = spare
        self.calls = 0
        self.killed = 0
        self._real = supervisor.start_worker
        monkeypatch.setattr(supervisor, "start_worker", self)

    def __call__(self, backend: str, nice: int = 0) -> Spawned:
        spawned = self._real(backend, nice)
        self.calls += 1
        if self.calls - 1 in self.spare:
            return spawned
        if self.count is None or self.killed < self.count:
            spawned.process.kill()
            spawned.process.join(10)
            self.killed += 1
        return spawned
