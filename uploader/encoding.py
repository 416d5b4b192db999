"""Encoding one whole file: the key pass, then every segment, then the trees — streaming.

``FileEncoder`` is the network-process side of pass 2: it takes each segment's hashes (in any
order) for the trees, and the first k blocks of each segment (the padded ciphertext, zfec being
systematic) in file order for the flat ciphertext hash — the one sequential per-byte cost the
network process keeps. ``encode_file_inline`` runs both passes in this process, one segment at
a time: the single-process baseline that the worker pool is measured against.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from pathlib import Path

from uploader.chk.caps import Cap, ChkCap, LitCap
from uploader.chk.trees import FileTrailer, HashCollector
from uploader.errors import LocalIOError, SourceChanged
from uploader.supervisor import EncodeResult, JobError, SlotSet, WorkerPool
from workers.geometry import LIT_MAX_SIZE, EncodingParams, Geometry
from workers.hashes import TAG_CRYPTTEXT, BytesLike, TaggedHasher
from workers.keys import ConvergentKeyHasher, random_key, storage_index
from workers.segment import EncodedSegment, encode_segment
from workers.source import FileIdentity, iter_chunks, read_exact

Progress = Callable[[int], None]  # called with a count of bytes just done


class FileEncoder:
    """Collects one file's per-segment results; memory: hashes only, plus out-of-order ciphertext."""

    def __init__(self, geometry: Geometry, key: bytes) -> None:
        self.geometry = geometry
        self.key = key
        self._hashes = HashCollector(geometry)
        self._flat = TaggedHasher(TAG_CRYPTTEXT)
        self._next_flat = 0
        self._waiting: dict[int, Sequence[BytesLike]] = {}

    def add(
        self, segnum: int, crypttext_hash: bytes, block_hashes: list[bytes], blocks: Sequence[BytesLike]
    ) -> None:
        """Record segment ``segnum``; ``blocks`` needs only the first k (the ciphertext)."""
        self._hashes.add(segnum, crypttext_hash, block_hashes)
        self._waiting[segnum] = blocks[: self.geometry.k]
        while self._next_flat in self._waiting:
            seg = self._next_flat
            pieces = self._waiting.pop(seg)
            remaining = self.geometry.segment_length(seg)
            for piece in pieces:  # the tail's zero padding is not ciphertext: trim it
                view = memoryview(piece)[:remaining]
                self._flat.update(view)
                remaining -= len(view)
            self._next_flat += 1

    def finish(self, layout_version: int | None = None) -> FileTrailer:
        if self._next_flat != self.geometry.num_segments:
            raise ValueError(f"segment {self._next_flat} never arrived")
        return self._hashes.finish(self._flat.digest(), layout_version)


def open_source(path: Path) -> tuple[int, FileIdentity]:
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LocalIOError(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd, FileIdentity.from_stat(st)


def check_unchanged(path: Path, before: FileIdentity) -> None:
    """Raise SourceChanged if the file's size, mtime, ctime, inode or device moved since ``before``."""
    try:
        now = FileIdentity.of(path)
    except OSError as exc:
        raise SourceChanged(f"{path} vanished while it was being encoded: {exc.strerror}") from None
    if now != before:
        moved = ", ".join(
            f"{name} {getattr(before, name)} -> {getattr(now, name)}"
            for name in ("size", "mtime_ns", "ctime_ns", "inode", "device")
            if getattr(before, name) != getattr(now, name)
        )
        raise SourceChanged(
            f"{path} changed while it was being read ({moved}); no cap is given for changed data "
            "(an upload of it is aborted)"
        )


def small_file_cap(path: Path) -> tuple[LitCap | None, FileIdentity]:
    """The LIT cap of a file of at most 55 bytes (None for a bigger one), and the file's identity."""
    fd, identity = open_source(path)
    try:
        if identity.size > LIT_MAX_SIZE:
            return None, identity
        data = read_exact(fd, 0, identity.size)
    finally:
        os.close(fd)
    check_unchanged(path, identity)
    return LitCap(data), identity


def key_pass(
    fd: int,
    identity: FileIdentity,
    params: EncodingParams,
    secret: bytes | None,
    progress: Progress | None = None,
) -> tuple[Geometry, bytes]:
    """Pass 1 in this process: geometry and key (convergent hash of the whole file, or random)."""
    g = Geometry.from_params(params, identity.size)
    if secret is None:
        return g, random_key()
    hasher = ConvergentKeyHasher.for_geometry(secret, g)
    try:
        for chunk in iter_chunks(fd, identity.size):
            hasher.update(chunk)
            if progress:
                progress(len(chunk))
    except EOFError as exc:
        raise SourceChanged(f"source shrank during the key pass: {exc}") from None
    return g, hasher.key()


def encode_file_inline(
    path: Path, params: EncodingParams, secret: bytes | None, progress: Progress | None = None
) -> tuple[Cap, FileTrailer | None]:
    """Both passes in this process, no workers: (cap, trailer); LIT files have no trailer."""
    lit, _ = small_file_cap(path)
    if lit is not None:
        return lit, None
    fd, identity = open_source(path)
    try:
        g, key = key_pass(fd, identity, params, secret, progress)
        enc = FileEncoder(g, key)
        for seg in range(g.num_segments):
            off = g.segment_offset(seg)
            try:
                plain = read_exact(fd, off, g.segment_length(seg))
            except EOFError as exc:
                raise SourceChanged(f"{path} shrank while it was being encoded: {exc}") from None
            out: EncodedSegment = encode_segment(plain, key, off, g.k, g.n)
            enc.add(seg, out.crypttext_hash, out.block_hashes, out.blocks)
            if progress:
                progress(len(plain))
        trailer = enc.finish()
        check_unchanged(path, identity)
    finally:
        os.close(fd)
    cap: ChkCap = trailer.cap(key)
    return cap, trailer


def slot_size_for(params: EncodingParams) -> int:
    """Bytes for the N blocks of the largest segment these parameters can make."""
    largest_segment = params.max_segment_size + params.k - 1
    return params.n * -(-largest_segment // params.k)


async def encode_file_pooled(
    pool: WorkerPool,
    path: Path,
    params: EncodingParams,
    secret: bytes | None,
    *,
    window: int,
    client: Hashable | None = None,
    progress: Progress | None = None,
    on_segment: Callable[[EncodeResult], Awaitable[None]] | None = None,
    on_key: Callable[[bytes, bytes], Awaitable[None]] | None = None,
    slots: SlotSet | None = None,
    identity: FileIdentity | None = None,
    key: bytes | None = None,
) -> tuple[Cap, FileTrailer | None]:
    """Both passes on the worker pool; at most ``window`` segments in flight, results taken in order.

    Workers read the file themselves (path + offset). ``on_segment`` receives each segment's result
    in file order and owns it: it must ``release()`` it once the blocks are sent (the upload holds
    blocks in shared-memory slots until their writes finish).
    ``on_key(key, storage_index)`` runs between the passes (the upload places its shares there).
    ``slots`` is a lease of shared-memory slots (``await pool.slots.lease(window)``) the caller
    holds until every result is released; without one, a lease is taken here for pass 2 — then
    ``on_segment`` must have released each result by the time it returns.

    ``identity``: the file as the caller saw it (its geometry, or a journal's record); the file
    must still match it now and after pass 2. ``key``: a known key (a resumed upload) — no key pass.
    The identity is checked again between the passes, so a file changed during the key pass fails
    before anything is sent, and after pass 2, before the caller sends the shares' last bytes.
    """
    client = client if client is not None else object()
    lit, found = small_file_cap(path)
    if lit is not None:
        return lit, None
    if identity is None:
        identity = found
    elif found != identity:
        check_unchanged(path, identity)  # raises, naming what moved
    g = Geometry.from_params(params, identity.size)
    source = str(path)
    try:
        if key is None and secret is None:
            key = random_key()
        elif key is None:
            assert secret is not None
            key = await pool.key_pass(client, source, identity.size, secret, g.k, g.n, g.segment_size)
            check_unchanged(path, identity)
        if progress:
            progress(identity.size)
        if on_key is not None:
            await on_key(key, storage_index(key))
        enc = FileEncoder(g, key)
        own_lease = slots is None
        lease = await pool.slots.lease(window) if slots is None else slots
        pending: deque[asyncio.Task[EncodeResult]] = deque()
        next_seg = 0
        try:
            while next_seg < g.num_segments or pending:
                while next_seg < g.num_segments and len(pending) < window:
                    off, length = g.segment_offset(next_seg), g.segment_length(next_seg)
                    pending.append(
                        asyncio.create_task(
                            pool.encode(
                                client, next_seg, key, off, length, g.k, g.n, source=source, slots=lease
                            )
                        )
                    )
                    next_seg += 1
                result = await pending.popleft()
                try:
                    enc.add(result.segment, result.crypttext_hash, result.block_hashes, result.blocks)
                except BaseException:
                    result.release()
                    raise
                if on_segment is not None:
                    await on_segment(result)  # it owns the result now, and releases it
                else:
                    result.release()
                if progress:
                    progress(g.segment_length(result.segment))
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    (await task).release()
            if own_lease:
                lease.close()
    except JobError as exc:
        if exc.error_class == "SourceError":
            raise SourceChanged(f"{path}: {exc}") from None
        raise
    trailer = enc.finish()
    check_unchanged(path, identity)
    return trailer.cap(key), trailer
