"""The share store: Tahoe's storage directory layout, in-progress buckets, space and leases.

| path (under the server's ``storage/``)          | what                                         |
|--------------------------------------------------|----------------------------------------------|
| ``shares/<si[:2]>/<si>/<shnum>``                 | a complete share in its container (§10.4)    |
| ``shares/incoming/<si[:2]>/<si>/<shnum>``        | an upload in progress (deleted at start-up)  |
| ``corruption-advisories/<time>--<si>-<shnum>``   | one file per corruption report               |

``si`` is the lower-case base32 storage index (26 characters), so a Tahoe storage directory and
ours are interchangeable. A share is written under ``incoming``; when its last missing byte
arrives, the file is fsynced, renamed into place, and the directory fsynced before the 201
(``finish_sync``), so a crash never leaves a complete-looking partial share.

Synchronous and free of asyncio: the server's async shell calls these methods on its event loop
(all cheap: small reads and writes into the page cache) and runs only ``finish_sync`` (fsync) in
a thread. The rules follow gbs-http-protocol §6: allocate (already-have, in-progress shares in
neither set, free space less outstanding allocations), one upload (one upload secret) per
(SI, shnum) — whose PATCHes may overlap in time, each ``write`` call being atomic on the event
loop — idempotent overlapping writes and 409 on a difference, abort, leases (container module).
Once a write completes the share, later writes and aborts of it see it as gone or complete.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hmac
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uploader.storage import container, fsutil
from uploader.storage.errors import (
    AlreadyComplete,
    ConflictingWrite,
    ContainerError,
    ShareNotFound,
    StorageError,
    UploadSecretMismatch,
    WriteOutOfBounds,
)
from uploader.storage.ranges import RangeSet
from uploader.wire.protocol import MAX_UINT, Span, VersionInfo, storage_index_text

log = logging.getLogger("uploader.storage")

IDLE_BUCKET_TIMEOUT_S = 30 * 60.0
# Bytes per write-behind window (see ShareStore._write_behind). 4 MiB against 8 MiB, tools.bench_upload
# on 2026-12-06 (2 cores, 10 servers, runs alternated): one 256 MiB put 135-137 vs 120-126 MB/s; four
# 64 MiB puts at once 127 vs 94-129 MB/s. With 8 MiB windows a 64 MiB file's 22 MB shares were mostly
# written into fresh pages and flushed by the final fsync, in the servers' time (their system CPU
# doubled).
WRITE_BEHIND = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoreSettings:
    reserved_space: int = 0  # bytes of free disk the server never allocates
    max_share_size: int | None = None  # bytes; None: only the free space limits a share
    idle_bucket_timeout_s: float = IDLE_BUCKET_TIMEOUT_S  # in-progress bucket without writes → aborted


class BucketState(enum.Enum):
    OPEN = "open"
    COMPLETING = "completing"  # every byte written; being fsynced and renamed
    DONE = "done"
    ABORTED = "aborted"


@dataclass(eq=False, slots=True)
class Bucket:
    """One in-progress share upload."""

    storage_index: bytes
    shnum: int
    allocated_size: int  # bytes of share data
    upload_secret: bytes
    incoming: Path
    final: Path
    last_activity: float  # monotonic seconds
    written: RangeSet = field(default_factory=RangeSet)
    state: BucketState = BucketState.OPEN
    writers: int = 0  # PATCHes now writing this bucket (several may, on any ranges)
    preallocated: bool = True  # its blocks were reserved with fallocate (already off the free space)
    behind: int = 0  # write-behind has started writeback of share bytes [0, behind)

    @property
    def key(self) -> tuple[bytes, int]:
        return (self.storage_index, self.shnum)

    def required(self) -> list[Span]:
        return self.written.missing(self.allocated_size)

    @property
    def complete(self) -> bool:
        return self.written.covers(self.allocated_size)


class ShareReader:
    """An open complete share: ``length`` bytes of share data, read with ``read(offset, size)``."""

    __slots__ = ("_fd", "length")

    def __init__(self, fd: int, length: int) -> None:
        self._fd = fd
        self.length = length

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``, cut short at the end of the share."""
        size = max(0, min(size, self.length - offset))
        if size == 0:
            return b""
        return os.pread(self._fd, size, container.HEADER_SIZE + offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ShareReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShareStore:
    def __init__(
        self,
        root: Path,
        settings: StoreSettings | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        disk_free: Callable[[Path], int] | None = None,
    ) -> None:
        self.root = root
        self.settings = settings or StoreSettings()
        self.shares = root / "shares"
        self.incoming = self.shares / "incoming"
        self.advisories = root / "corruption-advisories"
        self._wall = wall_clock
        self._mono = monotonic
        self._disk_free = disk_free or fsutil.statvfs_free
        self._buckets: dict[tuple[bytes, int], Bucket] = {}
        self.shares.mkdir(parents=True, exist_ok=True)
        self.clean_incoming()

    # --- layout ---------------------------------------------------------------------------------

    def share_dir(self, storage_index: bytes) -> Path:
        si = storage_index_text(storage_index)
        return self.shares / si[:2] / si

    def incoming_dir(self, storage_index: bytes) -> Path:
        si = storage_index_text(storage_index)
        return self.incoming / si[:2] / si

    def clean_incoming(self) -> None:
        """Remove what uploads left behind when a previous run stopped (never complete shares)."""
        shutil.rmtree(self.incoming, ignore_errors=True)
        self.incoming.mkdir(parents=True, exist_ok=True)

    # --- space ----------------------------------------------------------------------------------

    def remaining_space(self) -> int:
        """Free bytes less the reserve less what in-progress buckets may still write.

        Buckets whose blocks were preallocated are already off the disk's free space; others
        (filesystems without fallocate) count for their unwritten bytes.
        """
        free = self._disk_free(self.root) - self.settings.reserved_space
        outstanding = sum(
            b.allocated_size - b.written.covered() for b in self._buckets.values() if not b.preallocated
        )
        return max(0, min(MAX_UINT, free - outstanding))

    def version_info(self, application_version: bytes) -> VersionInfo:
        remaining = self.remaining_space()
        largest = (
            remaining
            if self.settings.max_share_size is None
            else min(remaining, self.settings.max_share_size)
        )
        return VersionInfo(largest, 0, remaining, application_version)

    # --- complete shares ------------------------------------------------------------------------

    def complete_shares(self, storage_index: bytes) -> list[int]:
        """Share numbers of the complete immutable shares held for this SI, ascending."""
        directory = self.share_dir(storage_index)
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.isascii() and name.isdigit() and int(name) <= 255 and str(int(name)) == name:
                try:
                    with open(directory / name, "rb") as fh:
                        container.unpack_header(fh.read(container.HEADER_SIZE))
                except (OSError, ContainerError):
                    continue
                out.append(int(name))
        return sorted(out)

    def open_share(self, storage_index: bytes, shnum: int) -> ShareReader:
        """Open a complete share for reading; ShareNotFound when it is not complete or absent."""
        path = self.share_dir(storage_index) / str(shnum)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ShareNotFound(f"no complete share {shnum} for this storage index") from None
        try:
            header = container.unpack_header(os.pread(fd, container.HEADER_SIZE, 0))
            length = container.share_length(os.fstat(fd).st_size, header)
        except ContainerError:
            os.close(fd)
            raise ShareNotFound(f"share {shnum} for this storage index is not an immutable share") from None
        except BaseException:
            os.close(fd)
            raise
        return ShareReader(fd, length)

    # --- leases ---------------------------------------------------------------------------------

    def _add_or_renew(self, path: Path, renew: bytes, cancel: bytes, now_s: float) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            header = container.unpack_header(os.pread(fd, container.HEADER_SIZE, 0))
            size = os.fstat(fd).st_size
            lease_offset = container.HEADER_SIZE + container.share_length(size, header)
            area = os.pread(fd, container.LEASE_SIZE * header.num_leases, lease_offset)
            update = container.plan_add_or_renew(header, area, lease_offset, renew, cancel, now_s)
            if update is None:
                return
            appended = update.num_leases != header.num_leases
            try:
                if os.pwrite(fd, update.record, update.offset) != len(update.record):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                if appended:
                    os.pwrite(
                        fd, container.pack_header(header.legacy_size, update.num_leases, header.version), 0
                    )
            except OSError as exc:
                # The share's length is the file's size less its leases: a record appended in part,
                # or without the header counting it, would change the share. Cut the file back.
                if appended:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                raise StorageError(f"cannot record a lease on share {path.name}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def add_or_renew_lease(self, storage_index: bytes, renew: bytes, cancel: bytes) -> int:
        """Renew the matching lease (or add one) on every complete share; ShareNotFound if none.
        Returns how many shares were touched."""
        shnums = self.complete_shares(storage_index)
        if not shnums:
            raise ShareNotFound("no shares for this storage index")
        now = self._wall()
        directory = self.share_dir(storage_index)
        for shnum in shnums:
            self._add_or_renew(directory / str(shnum), renew, cancel, now)
        return len(shnums)

    # --- allocate -------------------------------------------------------------------------------

    def allocate(
        self,
        storage_index: bytes,
        share_numbers: Iterable[int],
        allocated_size: int,
        renew: bytes,
        cancel: bytes,
        upload_secret: bytes,
    ) -> tuple[list[int], list[int]]:
        """(already_have, allocated), by gbs-http-protocol §6.2.

        Every complete share gets the lease; requested shares that are complete or in progress
        (any client) are skipped; the rest get an empty bucket of ``allocated_size`` bytes while
        there is room (and the size is within ``max_share_size``).
        """
        have = self.complete_shares(storage_index)
        now = self._wall()
        directory = self.share_dir(storage_index)
        for shnum in have:
            try:
                self._add_or_renew(directory / str(shnum), renew, cancel, now)
            except StorageError as exc:  # e.g. a full disk: the share is still here, and said so
                log.warning("allocate: %s", exc)
        room = self.remaining_space()
        limit = self.settings.max_share_size
        allocated: list[int] = []
        for shnum in sorted(set(share_numbers)):
            if shnum in have or (storage_index, shnum) in self._buckets:
                continue
            if allocated_size > room or (limit is not None and allocated_size > limit):
                continue
            if self._create_bucket(storage_index, shnum, allocated_size, renew, cancel, upload_secret, now):
                room -= allocated_size
                allocated.append(shnum)
        return have, allocated

    def _create_bucket(
        self, si: bytes, shnum: int, size: int, renew: bytes, cancel: bytes, secret: bytes, now: float
    ) -> bool:
        """Create the incoming container; False when the disk has no room for it after all."""
        incoming_dir = self.incoming_dir(si)
        incoming_dir.mkdir(parents=True, exist_ok=True)
        path = incoming_dir / str(shnum)
        lease = container.new_lease(renew, cancel, now).pack()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.pwrite(fd, container.pack_header(size, 1), 0)
                os.pwrite(fd, lease, container.HEADER_SIZE + size)
                # Reserve the blocks now: the space is really ours, a full disk shows up here rather
                # than mid-upload, and writes into allocated extents cost the kernel less.
                preallocated = fsutil.reserve(fd, container.HEADER_SIZE, size)
            finally:
                os.close(fd)
        except OSError as exc:
            fsutil.unlink_quietly(path)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise StorageError(f"cannot create an incoming share: {exc.strerror}") from None
        bucket = Bucket(si, shnum, size, secret, path, self.share_dir(si) / str(shnum), self._mono())
        bucket.preallocated = preallocated
        self._buckets[bucket.key] = bucket
        return True

    # --- write ----------------------------------------------------------------------------------

    def bucket(self, storage_index: bytes, shnum: int, upload_secret: bytes) -> Bucket:
        """The open in-progress bucket; ShareNotFound (404) or UploadSecretMismatch (401)."""
        bucket = self._buckets.get((storage_index, shnum))
        if bucket is None or bucket.state is not BucketState.OPEN:
            raise ShareNotFound(f"no upload in progress for share {shnum} of this storage index")
        if not hmac.compare_digest(bucket.upload_secret, upload_secret):
            raise UploadSecretMismatch(f"wrong upload secret for share {shnum} of this storage index")
        return bucket

    def begin_write(self, bucket: Bucket, first: int, end: int) -> int:
        """Claim the bucket for one PATCH of bytes ``[first, end)`` and open its file: the fd.

        WriteOutOfBounds (416) past the allocation. Several PATCHes may write one share at once
        (a client pipelines them); overlapping bytes must still agree (``write``). Pair with ``end_write``.
        """
        if end > bucket.allocated_size:
            raise WriteOutOfBounds(
                f"write of bytes {first}..{end - 1} runs past the allocated size of {bucket.allocated_size} bytes"
            )
        try:
            fd = os.open(bucket.incoming, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ShareNotFound(f"no upload in progress for share {bucket.shnum}") from None
        bucket.writers += 1
        bucket.last_activity = self._mono()
        return fd

    def write(self, bucket: Bucket, fd: int, offset: int, chunks: Sequence[bytes]) -> None:
        """Store ``chunks`` (contiguous, starting at share byte ``offset``).

        Bytes that overlap what is already written must be equal (ConflictingWrite otherwise,
        and then nothing of this call is stored). ShareNotFound if the upload was aborted
        meanwhile. The buffers are not kept.
        """
        if bucket.state is not BucketState.OPEN:
            raise ShareNotFound(f"the upload of share {bucket.shnum} was aborted")
        size = sum(len(c) for c in chunks)
        if size == 0:
            return
        end = offset + size
        overlaps = bucket.written.overlaps(offset, end)
        if overlaps:
            data = b"".join(chunks)
            for span in overlaps:
                have = os.pread(fd, span.end - span.begin, container.HEADER_SIZE + span.begin)
                if have != data[span.begin - offset : span.end - offset]:
                    raise ConflictingWrite(
                        f"bytes {span.begin}..{span.end - 1} of share {bucket.shnum} differ from those already written"
                    )
            if overlaps == [Span(offset, end)]:
                bucket.last_activity = self._mono()
                return  # an exact rewrite: nothing new
            chunks = [data]
        try:
            fsutil.pwritev_all(fd, chunks, container.HEADER_SIZE + offset)
        except OSError as exc:
            raise StorageError(f"cannot write share data: {exc.strerror}") from None
        bucket.written.add(offset, end)
        bucket.last_activity = self._mono()
        self._write_behind(bucket, fd)

    @staticmethod
    def _write_behind(bucket: Bucket, fd: int) -> None:
        """Keep an upload's page-cache footprint to a few windows (uploads are write-once data).

        Once two windows past ``behind`` are written, POSIX_FADV_DONTNEED on the window at
        ``behind`` starts its writeback, and on the window two before it (clean by now) drops its
        pages. Recycled pages are much cheaper to write into than fresh ones (markedly so on VMs),
        and the final fsync has little left to do. Tahoe writes shares front to back, so the
        written prefix is what moves.
        """
        prefix = bucket.written.prefix()
        while prefix - bucket.behind >= 2 * WRITE_BEHIND:
            start = container.HEADER_SIZE + bucket.behind
            os.posix_fadvise(fd, start, WRITE_BEHIND, os.POSIX_FADV_DONTNEED)
            if bucket.behind >= 2 * WRITE_BEHIND:
                os.posix_fadvise(fd, start - 2 * WRITE_BEHIND, WRITE_BEHIND, os.POSIX_FADV_DONTNEED)
            bucket.behind += WRITE_BEHIND

    def end_write(self, bucket: Bucket, fd: int) -> None:
        os.close(fd)
        bucket.writers -= 1
        bucket.last_activity = self._mono()

    def start_finish(self, bucket: Bucket) -> None:
        """Every byte is written: no more writes or aborts; ``finish_sync`` comes next."""
        bucket.state = BucketState.COMPLETING

    @staticmethod
    def finish_sync(bucket: Bucket, fd: int) -> None:
        """fsync the share, move it into place and fsync the directories (blocking: run in a thread)."""
        try:
            os.fsync(fd)
            # The bytes are on disk: let the kernel reuse their page-cache pages for the next upload.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            created = fsutil.make_dirs(bucket.final.parent)
            os.rename(bucket.incoming, bucket.final)
            # The new entry lives in the share's directory; each directory made here lives in its parent.
            for directory in {bucket.final.parent, *(d.parent for d in created)}:
                fsutil.fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot complete share {bucket.shnum}: {exc.strerror}") from None

    def end_finish(self, bucket: Bucket, ok: bool) -> None:
        """After ``finish_sync``: forget the bucket (on failure too: its upload is lost)."""
        bucket.state = BucketState.DONE if ok else BucketState.ABORTED
        self._buckets.pop(bucket.key, None)
        if not ok:
            fsutil.unlink_quietly(bucket.incoming)
        fsutil.remove_empty_dirs(bucket.incoming.parent, self.incoming)

    # --- abort and timeouts ---------------------------------------------------------------------

    def abort(self, storage_index: bytes, shnum: int, upload_secret: bytes) -> None:
        """Delete an in-progress upload: 405 if already complete, 401 wrong secret, 404 none."""
        bucket = self._buckets.get((storage_index, shnum))
        if bucket is None or bucket.state is BucketState.COMPLETING:
            if bucket is not None or shnum in self.complete_shares(storage_index):
                raise AlreadyComplete(
                    f"share {shnum} of this storage index is complete and cannot be aborted"
                )
            raise ShareNotFound(f"no upload in progress for share {shnum} of this storage index")
        if not hmac.compare_digest(bucket.upload_secret, upload_secret):
            raise UploadSecretMismatch(f"wrong upload secret for share {shnum} of this storage index")
        self._drop(bucket)

    def _drop(self, bucket: Bucket) -> None:
        # The file goes now, even while a PATCH still has it open: that writer's fd keeps the
        # (nameless) inode until it lets go, and its next write fails on the state. Unlinking later,
        # by path, would delete the file of a new upload of the same share allocated meanwhile.
        bucket.state = BucketState.ABORTED
        self._buckets.pop(bucket.key, None)
        fsutil.unlink_quietly(bucket.incoming)
        fsutil.remove_empty_dirs(bucket.incoming.parent, self.incoming)

    def expire_idle(self) -> list[Bucket]:
        """Abort open buckets that saw no write for ``idle_bucket_timeout_s``; returns them."""
        deadline = self._mono() - self.settings.idle_bucket_timeout_s
        idle = [
            b
            for b in self._buckets.values()
            if b.state is BucketState.OPEN and not b.writers and b.last_activity <= deadline
        ]
        for bucket in idle:
            self._drop(bucket)
        return idle

    def in_progress(self) -> list[Bucket]:
        return list(self._buckets.values())

    # --- corruption advisories ------------------------------------------------------------------

    def advise_corrupt(self, storage_index: bytes, shnum: int, reason: str) -> Path:
        """Record a client's report that a complete share is corrupt; ShareNotFound if absent."""
        if shnum not in self.complete_shares(storage_index):
            raise ShareNotFound(f"no complete share {shnum} for this storage index")
        si = storage_index_text(storage_index)
        self.advisories.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(self._wall()))
        text = (
            "report: Share Corruption\ntype: immutable\n"
            f"storage_index: {si}\nshare_number: {shnum}\n\n{reason}\n\n"
        ).encode()
        n = 0
        while True:
            path = self.advisories / (f"{stamp}--{si}-{shnum}" if n == 0 else f"{stamp}.{n}--{si}-{shnum}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                n += 1
                continue
            except OSError as exc:
                raise StorageError(f"cannot record the corruption report: {exc.strerror}") from None
            break
        try:
            fsutil.pwritev_all(fd, [text], 0)
        except OSError as exc:
            fsutil.unlink_quietly(path)  # no half-written report
            raise StorageError(f"cannot record the corruption report: {exc.strerror}") from None
        finally:
            os.close(fd)
        return path


__all__ = [
    "IDLE_BUCKET_TIMEOUT_S",
    "Bucket",
    "BucketState",
    "ShareReader",
    "ShareStore",
    "StoreSettings",
]
