"""glibc malloc tuning for processes that churn large buffers.

By default glibc serves buffers above 128 KiB with fresh mmaps and hands them back on free, so
every 1 MiB segment costs page faults (measured: the TLS sender's CPU per GB roughly doubles).
Raising the mmap and trim thresholds keeps those buffers in the heap for reuse. Every process of
ours calls this once at start-up; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc caps it at 32 MiB on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds; True when it took effect."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok1 = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    ok2 = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(ok1 and ok2)
