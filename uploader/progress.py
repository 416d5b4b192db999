"""A progress bar on stderr, only when stderr is a terminal (CONVENTIONS.md)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Bytes done of a total, with MB/s (MB = 10^6 bytes); redraws at most 10 times a second."""

    def __init__(
        self, label: str, total: int, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.start = time.monotonic()
        self._last_draw = 0.0

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        rate = self.done / max(now - self.start, 1e-9) / 1e6
        filled = int(frac * 30)
        bar = "#" * filled + "-" * (30 - filled)
        self.stream.write(
            f"\r{self.label[:30]:30} [{bar}] {frac * 100:5.1f}% {self.done / 1e6:9.1f}/{self.total / 1e6:.1f} MB {rate:7.1f} MB/s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
