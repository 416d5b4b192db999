"""File-system steps of the store, on a real temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uploader.storage import fsutil


def test_pwritev_all_writes_more_buffers_than_one_call_takes(tmp_path: Path) -> None:
    chunks = [bytes([i % 256]) * (i % 7 + 1) for i in range(fsutil.IOV_MAX * 2 + 5)]
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        fsutil.pwritev_all(fd, chunks, 10)
        assert os.pread(fd, 10**6, 10) == b"".join(chunks)
    finally:
        os.close(fd)


def test_pwritev_all_finishes_partial_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwritev

    def short(fd: int, buffers: list[bytes], offset: int) -> int:  # a fault: at most 3 bytes a call
        return real(fd, [bytes(b"".join(bytes(x) for x in buffers)[:3])], offset)

    monkeypatch.setattr(os, "pwritev", short)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        fsutil.pwritev_all(fd, [b"hello", b" ", b"world"], 0)
        assert os.pread(fd, 100, 0) == b"hello world"
    finally:
        os.close(fd)


def test_reserve_keeps_zeros_and_takes_space(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert fsutil.reserve(fd, 12, 1 << 20) in (True, False)
        assert os.fstat(fd).st_size == 12 + (1 << 20)
        assert os.pread(fd, 1 << 20, 12) == bytes(1 << 20)
    finally:
        os.close(fd)


def test_make_dirs_and_remove_empty_dirs(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    assert fsutil.make_dirs(deep) == [deep, deep.parent, deep.parent.parent]
    assert fsutil.make_dirs(deep) == []
    fsutil.fsync_dir(deep)
    (tmp_path / "a" / "keep").write_text("x")
    fsutil.remove_empty_dirs(deep, tmp_path)
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a").exists()
    fsutil.unlink_quietly(tmp_path / "a" / "keep")
    fsutil.unlink_quietly(tmp_path / "a" / "keep")
    assert fsutil.statvfs_free(tmp_path) > 0
