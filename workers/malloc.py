"""glibc malloc tuning for processes that move large buffers (storage servers, the network side).

CPython hands buffers of 128 KiB and more straight to glibc's ``malloc``. With the defaults, glibc
serves them with ``mmap``/``munmap`` and gives freed heap memory back eagerly, so a server that
receives megabyte chunks pays page faults and zeroing on every chunk. Raising the mmap threshold
and the trim threshold keeps such buffers in the heap and reuses them.

| mallopt parameter     | number | default (dynamic)        | set to (default here) |
|-----------------------|--------|--------------------------|-----------------------|
| ``M_TRIM_THRESHOLD``  | -1     | 128 KiB, grows           | 256 MiB               |
| ``M_MMAP_THRESHOLD``  | -3     | 128 KiB, grows to 32 MiB | 32 MiB (glibc's max)  |

Setting either one fixes it (glibc stops adjusting it dynamically). On a C library without
``mallopt`` (musl, macOS) nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper bound on 64-bit (HEAP_MAX_SIZE / 2)
DEFAULT_TRIM_THRESHOLD = 256 * 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None


def tune_malloc(
    mmap_threshold: int = DEFAULT_MMAP_THRESHOLD, trim_threshold: int = DEFAULT_TRIM_THRESHOLD
) -> bool:
    """Raise glibc's mmap and trim thresholds (bytes); True when both were applied.

    Safe to call more than once and from any process; call it early, before large buffers exist.
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        log.debug("mallopt is not available; malloc left as it is")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1)
    ok_trim = bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1)
    if not (ok_mmap and ok_trim):
        log.debug("mallopt refused: mmap threshold %s, trim threshold %s", ok_mmap, ok_trim)
    return ok_mmap and ok_trim


__all__ = ["tune_malloc"]
