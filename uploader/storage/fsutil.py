"""Small file-system steps of the share store, each with the durability or cost reason it exists for.

| function            | what                                                                    |
|---------------------|-------------------------------------------------------------------------|
| ``pwritev_all``     | write a list of buffers at an offset in one syscall (retrying partials) |
| ``reserve``         | posix_fallocate where supported: the space is really taken              |
| ``statvfs_free``    | bytes free for unprivileged users                                        |
| ``make_dirs``       | mkdir -p that reports what it made (their parents need an fsync)        |
| ``fsync_dir``       | make a rename or a new entry in a directory durable                     |
| ``unlink_quietly``  | remove a file that may already be gone                                  |
| ``remove_empty_dirs``| prune empty directories up to (not including) a stop directory         |
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path

IOV_MAX = 512  # buffers per pwritev call (the kernel allows 1024)


def pwritev_all(fd: int, chunks: Sequence[bytes], offset: int) -> None:
    for start in range(0, len(chunks), IOV_MAX):
        batch: list[bytes | memoryview] = list(chunks[start : start + IOV_MAX])
        want = sum(len(c) for c in batch)
        while want:
            done = os.pwritev(fd, batch, offset)
            if done == 0:
                raise OSError(errno.EIO, "pwritev wrote nothing")
            offset += done
            want -= done
            while done and batch:  # drop what was written (rare: partial writes)
                if done >= len(batch[0]):
                    done -= len(batch[0])
                    batch.pop(0)
                else:
                    batch[0] = memoryview(batch[0])[done:]
                    done = 0


def statvfs_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reserve(fd: int, offset: int, length: int) -> bool:
    """posix_fallocate where the filesystem supports it (the range still reads as zeros): True if done."""
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        return False
    return True


def make_dirs(directory: Path) -> list[Path]:
    """mkdir -p; return the directories created, deepest first."""
    created: list[Path] = []
    probe = directory
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True)
    return created


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
