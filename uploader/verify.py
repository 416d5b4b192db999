"""``verify``: every share on every server read in full and checked, like Tahoe's ``check --verify``.

For each share a server lists: the header against the layout the UEB implies; the UEB against the
cap; the unused plaintext hash tree area (zero); the crypttext tree against the UEB; the block tree
and the share hash chain against the UEB's share root; the UEB copy; then every block against its
leaf of the block tree, read in ranges of about ``read_size`` bytes and hashed in threads (hashlib
lets go of the GIL), so memory stays at ``parallel × read_size``. Nothing is decrypted, so a verify
cap is enough. Corrupt shares are reported to their servers.

The file is healthy when every share number 0..N-1 has a good copy and no copy is corrupt;
recoverable when at least k share numbers have a good copy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from uploader.chk.caps import ChkCap, VerifyCap
from uploader.errors import IntegrityError
from uploader.gbs import StorageClient
from uploader.gbs.errors import ServerError
from uploader.shares import FileShares, ShareSource
from workers.hashes import block_hash

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ShareStatus:
    server: str
    shnum: int
    status: str  # "good", "corrupt" or "unreadable"
    reason: str = ""


@dataclass
class VerifyReport:
    storage_index: bytes
    k: int
    n: int
    size: int
    seconds: float = 0.0
    shares: list[ShareStatus] = field(default_factory=list)
    servers: dict[str, str | None] = field(default_factory=dict)  # name -> None, or why unreachable

    @property
    def good(self) -> set[int]:
        return {s.shnum for s in self.shares if s.status == "good"}

    @property
    def corrupt(self) -> list[ShareStatus]:
        return [s for s in self.shares if s.status == "corrupt"]

    @property
    def missing(self) -> list[int]:
        return sorted(set(range(self.n)) - self.good)

    @property
    def healthy(self) -> bool:
        return not self.missing and not self.corrupt

    @property
    def recoverable(self) -> bool:
        return len(self.good) >= self.k


class Verify:
    def __init__(
        self,
        clients: list[StorageClient],
        cap: ChkCap | VerifyCap,
        *,
        unreachable: dict[str, str] | None = None,
        read_size: int = 1024 * 1024,
        parallel: int = 16,
        progress: Progress | None = None,
    ) -> None:
        self.cap = cap
        self.shares = FileShares(clients, cap, unreachable)
        self.unreachable = dict(unreachable or {})
        self.read_size = read_size
        self.parallel = asyncio.Semaphore(parallel)
        self.progress = progress

    async def run(self) -> VerifyReport:
        start = time.monotonic()
        cap = self.cap
        report = VerifyReport(cap.storage_index, cap.k, cap.n, cap.size)
        try:
            await self.shares.discover(cap.n, wait_all=True)
            if not self.shares.sources:  # absent (6), or absent from the servers up (4, as get says)
                raise self.shares.not_enough(0)
            results = await asyncio.gather(*(self._share(src) for src in self.shares.sources))
        finally:
            await self.shares.close()
        report.shares = sorted(results, key=lambda s: (s.shnum, s.server))
        report.servers = {srv.name: srv.error for srv in self.shares.servers}
        report.servers.update(self.unreachable)
        report.seconds = time.monotonic() - start
        return report

    async def _share(self, src: ShareSource) -> ShareStatus:
        async with self.parallel:
            try:
                if await self.shares.open(src, full=True):
                    await self._blocks(src)
            except (ServerError, IntegrityError) as exc:
                self.shares.fail(src, exc)
        if src.corrupt is not None:
            return ShareStatus(src.server.name, src.shnum, "corrupt", src.corrupt)
        if src.bad is not None or src.hashes is None:
            return ShareStatus(src.server.name, src.shnum, "unreadable", src.bad or src.server.error or "")
        return ShareStatus(src.server.name, src.shnum, "good")

    async def _blocks(self, src: ShareSource) -> None:
        info, layout, hashes = self.shares.info, src.layout, src.hashes
        assert info is not None and layout is not None and hashes is not None
        g = info.geometry
        per_read = max(1, self.read_size // g.block_size)
        for first in range(0, g.num_segments, per_read):
            segs = range(first, min(first + per_read, g.num_segments))
            lengths = [g.block_length(seg) for seg in segs]
            want = sum(lengths)
            data = await self.shares.read(src, layout.block_offset(first), want)
            if len(data) != want:
                raise IntegrityError(
                    f"share is cut short: blocks from {first} hold {len(data)} of {want} bytes"
                )
            got = await asyncio.to_thread(_hash_blocks, data, g.block_size, lengths)
            for seg, h in zip(segs, got, strict=True):
                if h != hashes.leaf(seg):
                    raise IntegrityError(f"block {seg} does not match the share's block hash tree")
            if self.progress is not None:
                self.progress(want)


def _hash_blocks(data: bytes, stride: int, lengths: list[int]) -> list[bytes]:
    view = memoryview(data)
    return [block_hash(view[i * stride : i * stride + n]) for i, n in enumerate(lengths)]


__all__ = ["ShareStatus", "Verify", "VerifyReport"]
