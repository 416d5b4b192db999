"""ShareStore on a real temporary directory: layout, container bytes, write rules, abort, leases,
space, idle expiry and start-up clean-up. Clocks and the disk's free space are injected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uploader.chk import reference
from uploader.storage import container as c
from uploader.storage.errors import (
    AlreadyComplete,
    ConflictingWrite,
    ShareNotFound,
    StorageError,
    UploadSecretMismatch,
    WriteOutOfBounds,
)
from uploader.storage.store import Bucket, ShareStore, StoreSettings
from uploader.wire.protocol import Span, storage_index_text
from workers.geometry import EncodingParams

SI = bytes(range(16))
R, C, U = b"r" * 32, b"c" * 32, b"u" * 20
GIB = 2**30


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def used_bytes(root: Path) -> int:
    return sum(os.stat(Path(d) / f).st_blocks * 512 for d, _, files in os.walk(root) for f in files)


def make_store(tmp_path: Path, free: int = 10 * GIB, **settings: object) -> tuple[ShareStore, Clock]:
    clock = Clock()
    root = tmp_path / "storage"
    store = ShareStore(
        root,
        StoreSettings(**settings),  # type: ignore[arg-type]
        wall_clock=clock,
        monotonic=clock,
        disk_free=lambda _: free - used_bytes(root),
    )
    return store, clock


def real_share() -> bytes:
    _, shares = reference.encode(bytes(range(256)) * 40, EncodingParams(3, 10, 4096), b"s" * 16)
    return shares[0]


def upload(store: ShareStore, shnum: int, data: bytes, si: bytes = SI, pieces: int = 3) -> Bucket:
    bucket = store.bucket(si, shnum, U)
    fd = store.begin_write(bucket, 0, len(data))
    try:
        step = max(1, len(data) // pieces)
        for off in range(0, len(data), step):
            store.write(bucket, fd, off, [data[off : off + step]])
        assert bucket.complete
        store.start_finish(bucket)
        store.finish_sync(bucket, fd)
        store.end_finish(bucket, True)
    finally:
        store.end_write(bucket, fd)
    return bucket


def test_complete_share_is_a_tahoe_container_in_tahoe_layout(tmp_path: Path) -> None:
    store, clock = make_store(tmp_path)
    data = real_share()
    have, allocated = store.allocate(SI, [0, 1], len(data), R, C, U)
    assert (have, allocated) == ([], [0, 1])
    si = storage_index_text(SI)
    incoming = tmp_path / "storage" / "shares" / "incoming" / si[:2] / si / "0"
    assert incoming.exists()
    assert store.complete_shares(SI) == []
    upload(store, 0, data)
    final = tmp_path / "storage" / "shares" / si[:2] / si / "0"
    assert not incoming.exists()
    raw = final.read_bytes()
    lease = c.new_lease(R, C, clock.now).pack()
    assert raw == c.pack_header(len(data), 1) + data + lease
    assert store.complete_shares(SI) == [0]
    with store.open_share(SI, 0) as reader:
        assert reader.length == len(data)
        assert reader.read(0, len(data)) == data
        assert reader.read(len(data) - 5, 100) == data[-5:]
        assert reader.read(len(data) + 1, 10) == b""


def test_required_ranges_follow_writes(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0], 48, R, C, U)
    bucket = store.bucket(SI, 0, U)
    fd = store.begin_write(bucket, 0, 48)
    try:
        store.write(bucket, fd, 0, [b"a" * 16])
        assert bucket.required() == [Span(16, 48)]
        store.write(bucket, fd, 32, [b"c" * 8, b"c" * 8])
        assert bucket.required() == [Span(16, 32)]
        store.write(bucket, fd, 16, [b"b" * 16])
        assert bucket.required() == [] and bucket.complete
    finally:
        store.end_write(bucket, fd)


def test_overlapping_writes_must_match(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0], 30, R, C, U)
    bucket = store.bucket(SI, 0, U)
    fd = store.begin_write(bucket, 0, 30)
    try:
        store.write(bucket, fd, 0, [b"0123456789"])
        store.write(bucket, fd, 5, [b"56789abcde"])  # same bytes over 5..9, new after: fine
        store.write(bucket, fd, 0, [b"0123456789"])  # an exact rewrite: fine
        with pytest.raises(ConflictingWrite):
            store.write(bucket, fd, 8, [b"XXXXXXXXXX"])
        assert bucket.required() == [Span(15, 30)]  # the conflicting write stored nothing
        assert os.pread(fd, 15, c.HEADER_SIZE) == b"0123456789abcde"
    finally:
        store.end_write(bucket, fd)


def test_bounds_secrets_and_concurrent_writers(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0], 48, R, C, U)
    with pytest.raises(UploadSecretMismatch):
        store.bucket(SI, 0, b"v" * 20)
    with pytest.raises(ShareNotFound):
        store.bucket(SI, 1, U)
    with pytest.raises(ShareNotFound):
        store.bucket(bytes(16), 0, U)
    bucket = store.bucket(SI, 0, U)
    with pytest.raises(WriteOutOfBounds):
        store.begin_write(bucket, 40, 49)
    fd = store.begin_write(bucket, 0, 10)
    fd2 = store.begin_write(bucket, 10, 20)  # a pipelining client writes several ranges at once
    try:
        store.write(bucket, fd2, 10, [b"b" * 10])
        store.write(bucket, fd, 0, [b"a" * 10])
        with pytest.raises(ConflictingWrite, match="differ"):
            store.write(bucket, fd, 5, [b"c" * 10])
    finally:
        store.end_write(bucket, fd)
        store.end_write(bucket, fd2)
    assert bucket.required() == [Span(20, 48)]


def test_allocate_rules(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    data = b"x" * 100
    store.allocate(SI, [0, 1, 2], 100, R, C, U)
    upload(store, 0, data)
    # Complete shares are in already-have (all of them, even unasked); in-progress ones in neither set.
    assert store.allocate(SI, [1, 3], 100, R, C, b"w" * 20) == ([0], [3])
    assert store.allocate(SI, [0, 1, 2, 3], 100, R, C, U) == ([0], [])


def test_abort(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0, 1], 10, R, C, U)
    upload(store, 1, b"y" * 10)
    with pytest.raises(UploadSecretMismatch):
        store.abort(SI, 0, b"v" * 20)
    store.abort(SI, 0, U)
    assert not list((tmp_path / "storage" / "shares" / "incoming").iterdir())
    with pytest.raises(ShareNotFound):
        store.abort(SI, 0, U)
    with pytest.raises(AlreadyComplete):
        store.abort(SI, 1, U)
    assert store.allocate(SI, [0], 10, R, C, U) == ([1], [0])  # space freed, can be made again


def test_abort_while_a_write_holds_the_bucket_then_a_new_upload_of_the_share(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0], 10, R, C, U)
    old = store.bucket(SI, 0, U)
    fd = store.begin_write(old, 0, 10)
    store.write(old, fd, 0, [b"12345"])
    store.abort(SI, 0, U)
    assert not old.incoming.exists()  # gone at once; the writer's fd keeps the nameless inode
    assert store.allocate(SI, [0], 10, R, C, b"v" * 20) == ([], [0])  # a new upload, same share
    new = store.bucket(SI, 0, b"v" * 20)
    fd2 = store.begin_write(new, 0, 5)
    store.write(new, fd2, 0, [b"abcde"])
    store.end_write(new, fd2)
    with pytest.raises(ShareNotFound):
        store.write(old, fd, 5, [b"67890"])
    store.end_write(old, fd)  # the old PATCH lets go: the new upload's file must stay
    assert new.incoming.exists()
    fd2 = store.begin_write(new, 5, 10)
    store.write(new, fd2, 5, [b"fghij"])
    store.start_finish(new)
    store.finish_sync(new, fd2)
    store.end_finish(new, True)
    store.end_write(new, fd2)
    with store.open_share(SI, 0) as reader:
        assert reader.read(0, 10) == b"abcdefghij"


def test_leases_add_and_renew_on_complete_shares(tmp_path: Path) -> None:
    store, clock = make_store(tmp_path)
    store.allocate(SI, [0], 10, R, C, U)
    upload(store, 0, b"z" * 10)
    path = store.share_dir(SI) / "0"
    with pytest.raises(ShareNotFound):
        store.add_or_renew_lease(bytes(16), R, C)
    clock.now += 100
    assert store.add_or_renew_lease(SI, R, C) == 1  # same renew secret: renewed
    raw = path.read_bytes()
    assert c.unpack_header(raw).num_leases == 1
    assert c.unpack_lease(raw[-72:]).expiry == int(clock.now) + c.LEASE_DURATION_S
    store.add_or_renew_lease(SI, b"R" * 32, b"C" * 32)  # new secret: added
    store.allocate(SI, [0], 10, b"Q" * 32, b"C" * 32, U)  # allocate adds leases to complete shares
    raw = path.read_bytes()
    assert c.unpack_header(raw).num_leases == 3
    with store.open_share(SI, 0) as reader:
        assert reader.length == 10 and reader.read(0, 10) == b"z" * 10


def test_space_limits(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path, free=10 * GIB, reserved_space=10 * GIB - 3_000_000)
    info = store.version_info(b"v")
    assert info.available_space == info.maximum_immutable_share_size <= 3_000_000
    # Room for one 2 MB share, not two: preallocation takes the first off the free space.
    assert store.allocate(SI, [0, 1], 2_000_000, R, C, U) == ([], [0])
    assert store.allocate(SI, [1], 2_000_000, R, C, U) == ([], [])
    assert store.version_info(b"v").available_space < 1_100_000


def test_max_share_size(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path, max_share_size=1000)
    assert store.version_info(b"v").maximum_immutable_share_size == 1000
    assert store.allocate(SI, [0], 1001, R, C, U) == ([], [])
    assert store.allocate(SI, [0], 1000, R, C, U) == ([], [0])


def test_idle_buckets_expire(tmp_path: Path) -> None:
    store, clock = make_store(tmp_path, idle_bucket_timeout_s=60.0)
    store.allocate(SI, [0, 1], 10, R, C, U)
    writing = store.bucket(SI, 1, U)
    fd = store.begin_write(writing, 0, 10)
    clock.now += 30
    assert store.expire_idle() == []
    clock.now += 31
    expired = store.expire_idle()
    assert [b.shnum for b in expired] == [0]  # share 1 has a writer: kept
    assert not expired[0].incoming.exists()
    store.end_write(writing, fd)
    with pytest.raises(ShareNotFound):
        store.bucket(SI, 0, U)


def test_start_up_removes_incoming_and_keeps_complete(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0, 1], 10, R, C, U)
    upload(store, 0, b"k" * 10)
    leftover = store.bucket(SI, 1, U).incoming
    assert leftover.exists()
    again, _ = make_store(tmp_path)
    assert not leftover.exists()
    assert again.complete_shares(SI) == [0]
    assert again.allocate(SI, [1], 10, R, C, U) == ([0], [1])


def test_non_immutable_files_are_not_shares(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    directory = store.share_dir(SI)
    directory.mkdir(parents=True)
    (directory / "3").write_bytes(b"Tahoe mutable container v1\n" + bytes(100))
    (directory / "junk").write_bytes(b"")
    (directory / "007").write_bytes(c.pack_header(0, 0))
    assert store.complete_shares(SI) == []
    with pytest.raises(ShareNotFound):
        store.open_share(SI, 3)


def test_a_lease_that_cannot_be_written_leaves_the_share_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0], 10, R, C, U)
    upload(store, 0, b"z" * 10)
    path = store.share_dir(SI) / "0"
    before = path.read_bytes()
    real_pwrite = os.pwrite

    def full_disk(fd: int, data: bytes, offset: int) -> int:  # the appended record gets 20 bytes in
        if len(data) == c.LEASE_SIZE and offset == len(before):
            real_pwrite(fd, data[:20], offset)
            return 20
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(StorageError, match="cannot record a lease on share 0"):
        store.add_or_renew_lease(SI, b"n" * 32, b"m" * 32)
    assert path.read_bytes() == before  # cut back: same length, same header, same single lease
    # allocate still reports the share it holds (the lease is what it could not add)
    assert store.allocate(SI, [0, 1], 10, b"n" * 32, b"m" * 32, U) == ([0], [1])
    assert path.read_bytes() == before
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    store.add_or_renew_lease(SI, b"n" * 32, b"m" * 32)
    assert len(path.read_bytes()) == len(before) + c.LEASE_SIZE


def test_a_corruption_report_that_cannot_be_written_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = make_store(tmp_path)
    store.allocate(SI, [0], 10, R, C, U)
    upload(store, 0, b"k" * 10)

    def full_disk(fd: int, chunks: object, offset: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("uploader.storage.fsutil.pwritev_all", full_disk)
    with pytest.raises(StorageError, match="cannot record the corruption report: No space"):
        store.advise_corrupt(SI, 0, "bad block")
    assert list(store.advisories.iterdir()) == []


def test_corruption_advisory(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    with pytest.raises(ShareNotFound):
        store.advise_corrupt(SI, 0, "bad")
    store.allocate(SI, [0], 10, R, C, U)
    upload(store, 0, b"k" * 10)
    first = store.advise_corrupt(SI, 0, "block 3 hash mismatch")
    second = store.advise_corrupt(SI, 0, "again")
    assert first != second
    assert "block 3 hash mismatch" in first.read_text()
    assert storage_index_text(SI) in first.name


def test_write_behind_follows_the_written_prefix_and_keeps_the_bytes(tmp_path: Path) -> None:
    from uploader.storage.store import WRITE_BEHIND

    store, _ = make_store(tmp_path)
    size = 5 * WRITE_BEHIND + 123
    data = os.urandom(1 << 20) * (size // (1 << 20) + 1)
    data = data[:size]
    store.allocate(SI, [0], size, R, C, U)
    bucket = store.bucket(SI, 0, U)
    fd = store.begin_write(bucket, 0, size)
    try:
        store.write(bucket, fd, WRITE_BEHIND, [data[WRITE_BEHIND : 4 * WRITE_BEHIND]])  # a hole at the front
        assert bucket.behind == 0
        store.write(bucket, fd, 0, [data[:WRITE_BEHIND]])
        assert bucket.behind == 3 * WRITE_BEHIND  # windows 0-2 handed to writeback, lagging the prefix
        store.write(bucket, fd, 4 * WRITE_BEHIND, [data[4 * WRITE_BEHIND :]])
        assert bucket.behind == 4 * WRITE_BEHIND
        store.start_finish(bucket)
        store.finish_sync(bucket, fd)
        store.end_finish(bucket, True)
    finally:
        store.end_write(bucket, fd)
    with store.open_share(SI, 0) as reader:
        assert reader.read(0, size) == data
