"""The last minutes of the daemon, for the status page's chart: pure, bounded, fed once per tick.

Each tick the shell hands ``History.add`` the cumulative counters it has — each worker's busy
seconds (``WorkerPool.busy_s``) and each server's acknowledged bytes (``Budget.bytes_sent``) — and
``History`` keeps one sample per tick: each worker's busy fraction and each server's bytes per second
over that tick. At most ``capacity`` samples are kept (a ring), so memory does not grow with uptime.

``ServerStats`` turns a server's cumulative write counters into what the page shows per server: bytes
in flight, write rate, mean write latency over the last tick, failed writes.

``to_json`` gives columns (one time axis, one list per worker and per server; ``None`` where a series
did not exist yet or any more), and ``since`` lets a poller fetch only what it has not seen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CAPACITY = 300  # samples kept: five minutes at one per second


def rates(
    then: float | None, before: Mapping[str, float], now: float, after: Mapping[str, float]
) -> dict[str, float]:
    """Per-second increase of each cumulative counter between two readings (0 for the first reading,
    for a counter that went down — a restarted worker —, or when no time passed)."""
    wall = now - then if then is not None else 0.0
    out: dict[str, float] = {}
    for key, value in after.items():
        if wall <= 0 or key not in before:
            out[key] = 0.0
        else:
            out[key] = max(0.0, value - before[key]) / wall
    return out


@dataclass(frozen=True)
class Sample:
    seq: int  # 1, 2, …: increases by one per sample, for ``since``
    t: float  # seconds on the caller's clock (the daemon uses its uptime)
    workers: dict[str, float]  # worker index -> busy fraction of the tick, 0..1
    servers: dict[str, float]  # host:port -> bytes acknowledged per second during the tick
    network: float  # the network process's CPU seconds per second
    loop_lag_ms: float = 0.0  # how late this tick ran: the event loop's queue, as every request sees it


class History:
    """A ring of the last ``capacity`` samples, built from cumulative counters."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a history needs room for at least one sample, not {capacity}")
        self.samples: deque[Sample] = deque(maxlen=capacity)
        self._seq = 0
        self._last: tuple[float, dict[str, float], dict[str, float], float] | None = None

    @property
    def capacity(self) -> int:
        assert self.samples.maxlen is not None
        return self.samples.maxlen

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def last_t(self) -> float | None:
        """The time of the last reading (the baseline's too), None before the first."""
        return self._last[0] if self._last is not None else None

    def add(
        self,
        t: float,
        worker_busy_s: Mapping[str, float],
        server_bytes: Mapping[str, float],
        cpu_s: float,
        loop_lag_s: float = 0.0,
    ) -> Sample | None:
        """Record the counters read at time ``t``; the first call only sets the baseline (None).
        ``loop_lag_s``: how much later than asked the caller's tick ran."""
        busy, sent = dict(worker_busy_s), dict(server_bytes)
        last, self._last = self._last, (t, busy, sent, cpu_s)
        if last is None or t <= last[0]:
            return None
        then, busy_then, sent_then, cpu_then = last
        workers = {w: round(min(1.0, f), 3) for w, f in rates(then, busy_then, t, busy).items()}
        servers = {s: round(r, 1) for s, r in rates(then, sent_then, t, sent).items()}
        network = round(max(0.0, cpu_s - cpu_then) / (t - then), 3)
        self._seq += 1
        sample = Sample(self._seq, round(t, 3), workers, servers, network, round(loop_lag_s * 1e3, 1))
        self.samples.append(sample)
        return sample

    def to_json(self, since: int = 0) -> dict[str, Any]:
        """The samples after sequence number ``since``, as columns on one time axis."""
        rows = [s for s in self.samples if s.seq > since]
        worker_keys = sorted({w for s in rows for w in s.workers}, key=_natural)
        server_keys = sorted({k for s in rows for k in s.servers}, key=_natural)
        return {
            "capacity": self.capacity,
            "last_seq": self._seq,
            "seq": [s.seq for s in rows],
            "t": [s.t for s in rows],
            "network": [s.network for s in rows],
            "loop_lag_ms": [s.loop_lag_ms for s in rows],
            "workers": {w: [s.workers.get(w) for s in rows] for w in worker_keys},
            "servers": {k: [s.servers.get(k) for s in rows] for k in server_keys},
        }


def _natural(key: str) -> tuple[str, int, str]:
    """Worker "10" after "9"; host:port names by host, then port as a number."""
    head, _, tail = key.rpartition(":")
    return (head, int(tail), "") if tail.isdigit() and len(tail) < 10 else (key, 0, key)


@dataclass
class ServerStats:
    """One server's write figures between ticks: write rate and mean latency of the last tick."""

    rate: float = 0.0  # bytes acknowledged per second over the last tick
    latency_s: float | None = None  # mean seconds per write over the last tick (kept when idle)
    _last: tuple[float, int, int, float] | None = field(default=None, repr=False)

    def update(self, now: float, bytes_sent: int, writes: int, write_s: float) -> None:
        last, self._last = self._last, (now, bytes_sent, writes, write_s)
        if last is None:  # no rate yet; the latency of the writes so far
            if writes > 0:
                self.latency_s = round(write_s / writes, 4)
            return
        if now <= last[0]:
            return
        then, sent_then, writes_then, write_s_then = last
        self.rate = round(max(0, bytes_sent - sent_then) / (now - then), 1)
        if writes > writes_then:
            self.latency_s = round((write_s - write_s_then) / (writes - writes_then), 4)


__all__ = ["CAPACITY", "History", "Sample", "ServerStats", "rates"]
