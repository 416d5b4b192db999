"""The download job: find shares, check their metadata, fetch blocks through a window, decode on the pool.

One download, step by step:

1. ``FileShares.discover``: every server's share list, at once; ``pick`` opens k shares (header, the
   UEB — checked against the cap —, the crypttext tree, block tree and share hash chain): primary
   shares first (zfec is systematic, so they need no decoding), on healthy, fast servers.
2. Segments flow through a window of ``window`` segments, in batches of consecutive segments: per
   batch one ranged read per share (several batches in flight, so several reads per server). The
   k blocks of each segment go into a shared-memory slot; a worker checks every block against its
   share's block-tree leaf, decodes, checks the segment against the crypttext tree, decrypts, and
   pwrites the plaintext into the output's temp file (or leaves it in the slot for a stream).
3. In file order, the network process feeds each segment's ciphertext, still in its slot, to the
   flat ciphertext hash (in a thread: hashlib lets go of the GIL), writes stream output, and frees
   the slot. Memory: ``window × k × block size`` plus the hashes, never the file.
4. Only when the flat hash equals the UEB's is the temp file renamed into place. A ranged download
   cannot check the flat hash (it needs every byte); each segment's hashes are still checked.

A read that fails, or a block whose hash does not match, takes its share out of use (a corrupt one is
reported to its server); the batch reads another share instead and decodes again. A read that takes
far longer than reads usually take is hedged: another share is read beside it, and its server is
avoided from then on. The download fails only when fewer than k good shares remain.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from uploader.chk.caps import ChkCap
from uploader.errors import IntegrityError, LocalIOError, UploaderError
from uploader.gbs import StorageClient
from uploader.gbs.errors import ServerError
from uploader.output import Output
from uploader.shares import CorruptShare, FileShares, ShareSource
from uploader.supervisor import JobError, SlotSet, WorkerPool
from workers.hashes import TAG_CRYPTTEXT, TaggedHasher
from workers.messages import DecodeSegment, SegmentDecoded

Progress = Callable[[int], None]


@dataclass(frozen=True)
class DownloadSettings:
    """Reads of about ``read_size`` bytes (fewer, larger HTTP requests cost both ends less CPU: on
    this machine 2 MiB reads take ~0.5 CPU-s/GB less than 350 KiB ones); at least two reads' worth
    of segments in flight, and at least ``window``, at most ``max_window`` segments."""

    window: int = 16  # segments in flight (each holds a slot of k blocks), at least
    read_size: int = 2 * 1024 * 1024  # bytes per ranged read: consecutive blocks of one share
    max_window: int = 128
    hedge_min_s: float = 3.0  # never hedge a read younger than this
    hedge_factor: float = 4.0  # ... nor one younger than this many typical reads
    list_grace_s: float = 0.5  # wait this long for slow share lists once k shares are known


@dataclass
class DownloadResult:
    storage_index: bytes
    file_size: int
    offset: int
    length: int  # plaintext bytes output
    seconds: float
    flat_hash_checked: bool  # False for a ranged download
    shares_used: dict[str, list[int]] = field(default_factory=dict)
    corrupt: list[CorruptShare] = field(default_factory=list)
    failed_servers: dict[str, str] = field(default_factory=dict)


class Sink(Protocol):
    """Where the plaintext goes. ``dest`` is a file the workers pwrite into at ``file offset - base``;
    when it is "", the network process calls ``write`` with the bytes in file order instead."""

    dest: str
    base: int

    async def write(self, data: memoryview) -> None: ...


class FileSink:
    """A temp file beside ``path`` that the workers write into; moved into place by ``commit``
    (``uploader.output``: until then nothing at ``path`` changes, so unverified bytes never look
    like a finished file). ``path`` must not be a device or FIFO: see ``output_sink``."""

    def __init__(self, output: Path | Output, base: int) -> None:
        self.output = output if isinstance(output, Output) else Output(output)
        if self.output.temp is None:
            self.output.close()
            raise LocalIOError(f"{self.output.path} is not a regular file: it cannot be written out of order")
        self.path = self.output.path
        self.base = base
        self.dest = self.output.temp
        self.output.close()  # the workers open it by name

    async def write(self, data: memoryview) -> None:  # pragma: no cover - workers write files
        raise AssertionError("a file sink is written by the workers")

    def commit(self) -> None:
        self.output.commit()

    def discard(self) -> None:
        self.output.discard()


class StreamSink:
    """A file descriptor (stdout, a device, a FIFO) written in file order, from a thread so the event
    loop never blocks. ``output``: the opened ``-o`` destination it writes, closed by ``close``."""

    dest = ""

    def __init__(self, fd: int, base: int = 0, output: Output | None = None) -> None:
        self.fd = fd
        self.base = base
        self.output = output

    async def write(self, data: memoryview) -> None:
        await asyncio.get_running_loop().run_in_executor(None, _write_all, self.fd, data)

    def commit(self) -> None:
        if self.output is not None:
            self.output.commit()

    def discard(self) -> None:
        if self.output is not None:
            self.output.discard()


def output_sink(path: Path, base: int) -> FileSink | StreamSink:
    """The sink for ``get -o PATH`` (``uploader.output``): a temp file the workers write, or, for a
    device or FIFO, the opened file written in file order."""
    output = Output(path)
    return StreamSink(output.fd, base, output) if output.in_place else FileSink(output, base)


class BufferSink:
    """Collects the plaintext in memory (tests, small reads)."""

    dest = ""

    def __init__(self, base: int = 0) -> None:
        self.base = base
        self.data = bytearray()

    async def write(self, data: memoryview) -> None:
        self.data += data


def _write_all(fd: int, data: memoryview) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise LocalIOError(f"cannot write the output: {exc.strerror}") from None


@dataclass
class _Done:
    """A decoded segment waiting for its turn in file order."""

    slot: int
    ciphertext: bytes | None = None  # inline jobs
    plaintext: bytes | None = None


class Download:
    """One file's download (or a byte range of it); create, then ``await run()`` once."""

    def __init__(
        self,
        pool: WorkerPool,
        clients: list[StorageClient],
        cap: ChkCap,
        sink: Sink,
        *,
        offset: int = 0,
        length: int | None = None,
        settings: DownloadSettings | None = None,
        progress: Progress | None = None,
        unreachable: Mapping[str, str] | None = None,
    ) -> None:
        self.pool = pool
        self.cap = cap
        self.sink = sink
        self.settings = settings or DownloadSettings()
        self.progress = progress
        self.offset = min(max(offset, 0), cap.size)
        end = cap.size if length is None else min(cap.size, self.offset + max(length, 0))
        self.length = end - self.offset
        self.shares = FileShares(clients, cap, unreachable)
        self.client_id = object()
        self._read_s: float | None = None  # EWMA of batch read times, for hedging
        self._done: dict[int, asyncio.Future[_Done]] = {}
        self._used: set[ShareSource] = set()
        self._lease: SlotSet | None = None
        self._inline: asyncio.Semaphore | None = None
        self._held: set[int] = set()  # slots taken and not yet given back

    # ---- the job ----------------------------------------------------------------------------
    async def run(self) -> DownloadResult:
        start = time.monotonic()
        whole = self.offset == 0 and self.length == self.cap.size
        try:  # even an empty range finds and checks k shares: a cap of nothing is an error
            await self._download(whole)
        finally:
            await self.shares.close()
            if self._lease is not None:
                self._lease.give(*self._held)  # a failed download leaves none behind
                self._held.clear()
                self._lease.close()
        s = self.shares
        # servers that could not be connected to or listed count too, not only those that failed mid-read
        failed = {**s.listing_errors, **{srv.name: srv.error for srv in s.servers if srv.error is not None}}
        return DownloadResult(
            self.cap.storage_index,
            self.cap.size,
            self.offset,
            self.length,
            time.monotonic() - start,
            whole,
            s.shares_used(self._used),
            list(s.corrupt),
            failed,
        )

    async def _download(self, whole: bool) -> None:
        k = self.cap.k
        await self.shares.discover(k, self.settings.list_grace_s)
        first = await self.shares.pick(k, set(), self._hedge_s())
        info = self.shares.info
        if len(first) < k or info is None:
            raise self.shares.not_enough(len(self.shares.distinct()))
        g = info.geometry
        self.geometry = g
        segments = g.segments_for_range(self.offset, self.length)
        per_read = max(1, min(self.settings.read_size // g.block_size, self.settings.max_window // 2))
        window = max(self.settings.window, 2 * per_read)
        need = k * g.block_size + (g.segment_size if not self.sink.dest else 0)
        if 0 < need <= self.pool.slot_size:
            self._lease = await self.pool.slots.lease(window)
            per_read = min(per_read, max(1, self._lease.size // 2))
        else:  # segments too big for the pool's slots travel inline
            self._inline = asyncio.Semaphore(window)
        flat = TaggedHasher(TAG_CRYPTTEXT) if whole else None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._consume(segments, flat))
                for seg in range(segments.start, segments.stop, per_read):
                    count = min(per_read, segments.stop - seg)
                    slots = await self._take(count)
                    tg.create_task(self._batch(seg, count, slots))
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        if flat is not None and flat.digest() != info.ueb.crypttext_hash:
            raise IntegrityError(
                f"every segment of storage index {self.shares.si_text} matched its hash, but the whole "
                "ciphertext does not match the UEB's crypttext hash"
            )

    async def _take(self, count: int) -> list[int]:
        if self._lease is not None:
            slots = await self._lease.take_many(count)
            self._held.update(slots)
            return slots
        assert self._inline is not None
        for _ in range(count):
            await self._inline.acquire()
        return [-1] * count

    def _give(self, slot: int) -> None:
        if slot >= 0:
            if slot in self._held:
                assert self._lease is not None
                self._held.discard(slot)
                self._lease.give(slot)
        elif self._inline is not None:
            self._inline.release()

    def _future(self, seg: int) -> asyncio.Future[_Done]:
        fut = self._done.get(seg)
        if fut is None:
            fut = self._done[seg] = asyncio.get_running_loop().create_future()
        return fut

    def _hedge_s(self) -> float:
        typical = self._read_s or 0.0
        return max(self.settings.hedge_min_s, self.settings.hedge_factor * typical)

    # ---- one batch: consecutive segments, one read per share --------------------------------
    async def _batch(self, first: int, count: int, slots: list[int]) -> None:
        k = self.cap.k
        todo = dict(zip(range(first, first + count), slots, strict=True))
        have: dict[int, tuple[ShareSource, bytes]] = {}
        while todo:
            await self._gather(first, count, have)
            chosen = [have[shnum] for shnum in sorted(have)[:k]]
            replies = await asyncio.gather(
                *(self._decode(seg, slot, first, chosen) for seg, slot in todo.items())
            )
            for reply in replies:
                if reply.bad_blocks == [-1]:
                    raise IntegrityError(
                        f"segment {reply.segment} of storage index {self.shares.si_text}: blocks that match "
                        "their hashes decode to ciphertext that does not match the crypttext hash tree"
                    )
                for shnum in reply.bad_blocks:
                    entry = have.pop(shnum, None)
                    if entry is not None:
                        self.shares.mark_corrupt(
                            entry[0], f"block {reply.segment} does not match the share's block hash tree"
                        )
                if not reply.bad_blocks:
                    slot = todo.pop(reply.segment)
                    self._future(reply.segment).set_result(_Done(slot, reply.ciphertext, reply.plaintext))
            self._used.update(src for src, _ in chosen if src.usable)

    async def _gather(self, first: int, count: int, have: dict[int, tuple[ShareSource, bytes]]) -> None:
        """Read this batch's blocks from shares until ``have`` holds k shares' worth."""
        k = self.cap.k
        pending: dict[asyncio.Task[bytes], ShareSource] = {}
        hedged: set[asyncio.Task[bytes]] = set()

        def launch(sources: list[ShareSource]) -> None:
            for src in sources:
                pending[asyncio.create_task(self._read_batch(src, first, count))] = src

        def busy() -> set[int]:
            return set(have) | {s.shnum for s in pending.values()}

        try:
            launch(await self.shares.pick(k - len(have), busy(), self._hedge_s()))
            while len(have) < k:
                if not pending:
                    more = await self.shares.pick(k - len(have), busy(), self._hedge_s())
                    if not more:
                        raise self.shares.not_enough(len(self.shares.distinct()))
                    launch(more)
                    continue
                fresh = [t for t in pending if t not in hedged]
                timeout = self._hedge_s() if fresh else None
                done, _ = await asyncio.wait(
                    list(pending), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # slow reads: ask other shares beside them, and avoid their servers
                    for task in fresh:
                        hedged.add(task)
                        pending[task].server.slow += 1
                    launch(await self.shares.pick(len(fresh), busy(), self._hedge_s()))
                    continue
                for task in done:
                    src = pending.pop(task)
                    exc = task.exception()
                    if exc is None:
                        if src.usable:
                            have[src.shnum] = (src, task.result())
                    elif isinstance(exc, ServerError | IntegrityError):
                        self.shares.fail(src, exc)
                    else:
                        raise exc
        finally:
            for task in pending:
                task.cancel()

    async def _read_batch(self, src: ShareSource, first: int, count: int) -> bytes:
        g = self.geometry
        assert src.layout is not None
        last = first + count - 1
        length = (count - 1) * g.block_size + g.block_length(last)
        start = time.monotonic()
        data = await self.shares.read(src, src.layout.block_offset(first), length)
        seconds = time.monotonic() - start
        self._read_s = seconds if self._read_s is None else 0.8 * self._read_s + 0.2 * seconds
        if len(data) != length:
            raise IntegrityError(
                f"share is cut short: blocks {first}-{last} hold {len(data)} of {length} bytes"
            )
        return data

    async def _decode(
        self, seg: int, slot: int, first: int, chosen: list[tuple[ShareSource, bytes]]
    ) -> SegmentDecoded:
        g = self.geometry
        bl = g.block_length(seg)
        at = (seg - first) * g.block_size
        blocks = [memoryview(body)[at : at + bl] for _, body in chosen]
        inline: list[bytes] = []
        if slot >= 0:
            view = self.pool.slot_view(slot)
            try:
                for i, block in enumerate(blocks):
                    view[i * bl : (i + 1) * bl] = block
            finally:
                view.release()
        else:
            inline = [bytes(b) for b in blocks]
        hashes = []
        for src, _ in chosen:
            assert src.hashes is not None
            hashes.append(src.hashes.leaf(seg))
        msg = DecodeSegment(
            0,
            seg,
            self.cap.key,
            g.segment_offset(seg),
            g.segment_length(seg),
            g.k,
            g.n,
            [src.shnum for src, _ in chosen],
            inline,
            hashes,
            self.shares.crypttext_leaves[32 * seg : 32 * seg + 32],
            slot,
            bl,
            self.offset,
            self.offset + self.length,
            self.sink.dest,
            self.sink.base,
        )
        try:
            return await self.pool.decode(self.client_id, msg)
        except JobError as exc:
            if exc.error_class == "DestinationError":
                raise LocalIOError(str(exc)) from None
            raise

    # ---- in file order ----------------------------------------------------------------------
    async def _consume(self, segments: range, flat: TaggedHasher | None) -> None:
        g = self.geometry
        loop = asyncio.get_running_loop()
        for seg in segments:
            done = await self._future(seg)
            del self._done[seg]
            try:
                seg_off = g.segment_offset(seg)
                out_len = min(self.offset + self.length, seg_off + g.segment_length(seg)) - max(
                    self.offset, seg_off
                )
                view = self.pool.slot_view(done.slot) if done.slot >= 0 else None
                try:
                    if flat is not None:
                        ct = view[: g.segment_length(seg)] if view is not None else done.ciphertext
                        assert ct is not None
                        await loop.run_in_executor(None, flat.update, ct)
                    if not self.sink.dest:
                        if view is not None:
                            at = g.k * g.block_length(seg)
                            await self.sink.write(view[at : at + out_len])
                        else:
                            assert done.plaintext is not None
                            await self.sink.write(memoryview(done.plaintext))
                finally:
                    if view is not None:
                        view.release()
            finally:
                self._give(done.slot)
            if self.progress is not None:
                self.progress(out_len)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception to report from a task group: an UploaderError if there is one."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, UploaderError):
            return exc
    for exc in leaves:
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return leaves[0]


__all__ = [
    "BufferSink",
    "Download",
    "DownloadResult",
    "DownloadSettings",
    "FileSink",
    "Sink",
    "StreamSink",
    "output_sink",
]
