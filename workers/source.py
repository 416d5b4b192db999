"""Reading a source file by offset, and noticing when it changes underneath us.

Workers read their segment straight from the file (path + offset), so plaintext never crosses a
process boundary. ``FileIdentity`` (size, mtime, ctime, inode, device) is taken before the key pass and
checked after the encode pass: a file that changed in between must never get a cap. The ctime
catches a rewrite whose mtime was set back (``touch -d``, ``os.utime``): no user can set it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileIdentity:
    size: int
    mtime_ns: int
    inode: int
    device: int
    ctime_ns: int = 0

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileIdentity:
        return cls.from_stat(os.stat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)


def read_exact(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset``; raise EOFError if the file is shorter (it shrank)."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise EOFError(f"file ended at {offset + got} bytes, expected at least {offset + length}")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def iter_chunks(fd: int, size: int, chunk: int = READ_CHUNK) -> Iterator[bytes]:
    """The first ``size`` bytes of ``fd`` in chunks; raise EOFError if the file is shorter."""
    offset = 0
    while offset < size:
        n = min(chunk, size - offset)
        yield read_exact(fd, offset, n)
        offset += n
