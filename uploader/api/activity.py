"""What the daemon is doing, for ``GET /status`` and ``GET /metrics``: pure bookkeeping.

Each upload or download is a ``Transfer`` (an id such as ``u7``/``d3``, the storage index once
known — never the cap —, bytes done, stage, per-server state). ``Activity`` keeps the active ones,
the most recent finished ones and running totals; ``Utilisation`` turns cumulative CPU and busy
seconds into fractions over the last sampling interval. The shell feeds both; nothing here does I/O.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RECENT = 32  # finished transfers kept for /status
RATE_MARKS = 6  # progress readings (one per tick) a transfer's current rate is taken over


def work(kind: str, stage: str, bytes_done: int, size: int) -> tuple[int, int] | None:
    """A transfer's progress as (units done, units in all), or None while it cannot be told.

    An upload reads the file twice — the convergent-key pass ("hashing"), then encoding and sending
    ("uploading") —, so it has twice its size in units; receiving the body is the client's pace and
    is not counted. A download has its size."""
    if size < 0:
        return None
    if kind == "download":
        return (size if stage == "done" else min(bytes_done, size)), size
    total = 2 * size
    if stage == "hashing":
        return min(bytes_done, size), total
    if stage == "encoding":
        return size, total
    if stage == "uploading":
        return size + min(bytes_done, size), total
    if stage == "done":
        return total, total
    if stage == "queued":
        return 0, total
    return None


@dataclass
class Transfer:
    id: str
    kind: str  # "upload" or "download"
    size: int  # bytes of the file (or of the range, for a ranged download); -1 while unknown
    started: float  # monotonic seconds
    stage: str = "receiving"
    bytes_done: int = 0  # within the current stage
    storage_index: str | None = None
    finished: float | None = None
    error: str | None = None
    servers: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # the file name a form upload gave (shown in the shared list)
    tag: str | None = None  # the uploading page's own id for this upload, to follow its progress
    resumed: bool = False  # an upload a previous run of the daemon left unfinished, taken up again
    # (time, stage, bytes_done) once per tick, for the current rate and the ETA
    marks: deque[tuple[float, str, int]] = field(default_factory=lambda: deque(maxlen=RATE_MARKS))
    # Live details (per-server state, storage index) read when a snapshot is taken.
    probe: Callable[[], Mapping[str, Any]] | None = None

    def snapshot(self, now: float) -> dict[str, Any]:
        if self.probe is not None and self.finished is None:
            live = dict(self.probe())
            self.storage_index = live.get("storage_index") or self.storage_index
            self.servers = live.get("servers", self.servers)
        elapsed = max((self.finished or now) - self.started, 1e-9)
        units = work(self.kind, self.stage, self.bytes_done, self.size)
        rate = self.rate()
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "tag": self.tag,
            "storage_index": self.storage_index,
            "size": self.size,
            "stage": self.stage,
            "bytes_done": self.bytes_done,
            "seconds": round(elapsed, 3),
            "mb_per_s": round(self.bytes_done / elapsed / 1e6, 2),
            "rate": None if rate is None else round(rate, 1),
            "progress": None if units is None or units[1] == 0 else round(units[0] / units[1], 4),
            "eta_s": self.eta_s(rate),
            "servers": self.servers,
            **({"resumed": True} if self.resumed else {}),
            **({"error": self.error} if self.error is not None else {}),
        }

    def mark(self, now: float) -> None:
        self.marks.append((now, self.stage, self.bytes_done))

    def rate(self) -> float | None:
        """Bytes per second in the current stage over the recent marks; None without two of them
        in this stage. A finished transfer's is its average over its whole life."""
        if self.finished is not None:
            if self.error is not None or self.size <= 0:
                return None
            return self.size / max(self.finished - self.started, 1e-9)
        same = [m for m in self.marks if m[1] == self.stage]
        if len(same) < 2 or same[-1][0] <= same[0][0]:
            return None
        return max(0, same[-1][2] - same[0][2]) / (same[-1][0] - same[0][0])

    def eta_s(self, rate: float | None) -> float | None:
        """Seconds left at the current rate: in the last stage only (sending an upload's shares, or a
        download), where the rest is that stage's remaining bytes."""
        if self.finished is not None or not rate or self.size < 0:
            return None
        if self.stage not in ("uploading", "downloading", "receiving"):
            return None
        return round(max(0, self.size - self.bytes_done) / rate, 1)


class Activity:
    """Active and recent transfers, and totals by kind and result (for the metrics)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.active: dict[str, Transfer] = {}
        self.recent: deque[Transfer] = deque(maxlen=RECENT)
        self._ids = {"upload": itertools.count(1), "download": itertools.count(1)}
        self.totals: dict[tuple[str, str], int] = {}  # (kind, result) -> transfers
        self.bytes: dict[str, int] = {"upload": 0, "download": 0}  # file bytes of finished transfers

    def start(self, kind: str, size: int = -1, stage: str = "receiving") -> Transfer:
        prefix = "u" if kind == "upload" else "d"
        t = Transfer(f"{prefix}{next(self._ids[kind])}", kind, size, self.clock(), stage)
        self.active[t.id] = t
        return t

    def finish(self, t: Transfer, error: str | None = None) -> None:
        """Move ``t`` to the recent list; ``error`` None means it succeeded."""
        if t.probe is not None:
            t.snapshot(self.clock())  # keep the last per-server view
            t.probe = None
        t.finished = self.clock()
        t.error = error
        if error is None:
            t.stage = "done"
            self.bytes[t.kind] += max(t.size, 0)
        elif t.stage != "cancelled":
            t.stage = "failed"
        result = "ok" if error is None else t.stage
        self.totals[(t.kind, result)] = self.totals.get((t.kind, result), 0) + 1
        self.active.pop(t.id, None)
        self.recent.appendleft(t)

    def tick(self) -> None:
        """Note each active transfer's progress (once per sampling interval), for rates and ETAs."""
        now = self.clock()
        for t in self.active.values():
            t.mark(now)

    def count(self, kind: str) -> int:
        return sum(1 for t in self.active.values() if t.kind == kind)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "active": [t.snapshot(now) for t in self.active.values()],
            "recent": [t.snapshot(now) for t in self.recent],
        }


def upload_progress(t: Transfer, size: int) -> Callable[[int], None]:
    """A progress callback for ``GridClient.upload``: it reports the convergent-key pass over the
    file first, then the bytes whose shares were sent — stages "hashing", then "encoding" (the key
    pass is done, no segment's shares are acknowledged yet: waiting for workers and servers), then
    "uploading"."""
    seen = 0

    def progress(nbytes: int) -> None:
        nonlocal seen
        seen += nbytes
        if seen < size:
            t.stage, t.bytes_done = "hashing", seen
        elif seen == size:
            t.stage, t.bytes_done = "encoding", 0
        else:
            t.stage, t.bytes_done = "uploading", min(seen - size, size)

    return progress


class Utilisation:
    """Fractions of the last interval spent busy: the network process's CPU, each worker's jobs."""

    def __init__(self) -> None:
        self._last: tuple[float, float, dict[int, float]] | None = None
        self.network = 0.0
        self.workers: dict[int, float] = {}

    def sample(self, now: float, cpu_s: float, busy_s: Mapping[int, float]) -> None:
        if self._last is not None:
            then, cpu_then, busy_then = self._last
            wall = now - then
            if wall > 0:
                self.network = round(max(0.0, cpu_s - cpu_then) / wall, 3)
                self.workers = {
                    w: round(min(1.0, max(0.0, s - busy_then.get(w, 0.0)) / wall), 3)
                    for w, s in busy_s.items()
                }
        self._last = (now, cpu_s, dict(busy_s))


__all__ = ["RATE_MARKS", "RECENT", "Activity", "Transfer", "Utilisation", "upload_progress", "work"]
