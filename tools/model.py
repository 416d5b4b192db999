"""The throughput model of ARCHITECTURE.md ("Throughput model"): predicted upload MB/s, pure arithmetic.

Units: sizes in bytes, times in seconds, rates in bytes/s (``math.inf`` for an unshaped link);
results in MB/s of plaintext (MB = 10^6 bytes), as the benchmarks report them.

| symbol | meaning |
|---|---|
| ``S`` | segment size (plaintext bytes) |
| ``B = S·N/k`` | share bytes one segment puts on the wire (all N blocks) |
| ``D`` | ``pipeline_depth``: bytes in flight per server |
| ``U`` | concurrent uploads |
| ``bw``, ``RTT`` | the client's upstream link rate and the round trip to every server |

Stop-and-wait (stock Tahoe-LAFS, our ``stock_mode``): each upload sends one segment's N blocks,
waits for every ack, then sends the next. A cycle carries ``U·B`` share bytes and lasts
``U·B/bw + RTT`` (the link idles one RTT per segment).

Pipelined (our default): ``W = N·max(D, S/k)`` share bytes are in flight (a write never carries
less than one block, and the per-server budget is shared by all uploads, so ``W`` does not grow
with ``U``), capped by the segments in flight (``U·window·B``). The first ack comes back
``RTT + B/bw`` after a cycle starts, so the link idles ``max(0, RTT + B/bw − W/bw)`` per cycle of
``W`` bytes — ARCHITECTURE.md's ``RTT − N·D/bw`` plus the time to send one segment, which has to
arrive whole before it is acknowledged. Share rate = ``W / max(W/bw, RTT + B/bw)``; with
``D = 0`` (or ``W = B``) that is exactly stop-and-wait.

Either result is capped by the CPU: ``workers × encode rate`` (per-worker plaintext MB/s,
measured by a microbenchmark), and by the link itself (``bw·k/N`` of plaintext).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MB = 1e6


@dataclass(frozen=True, slots=True)
class ModelInput:
    k: int
    n: int
    segment_size: int  # bytes of plaintext per segment
    pipeline_depth: int  # bytes in flight per server (0: nothing beyond one segment)
    rtt_s: float  # round trip from the client to each server
    bandwidth: float  # upstream bytes/s shared by every server link; math.inf: unshaped
    encode_mb_per_s: float  # one worker's measured plaintext encode rate; math.inf: free CPU
    workers: int = 1
    concurrent_uploads: int = 1
    window: int = 16  # segments in flight per upload (pipelined mode only)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"need 1 <= k <= n, got k={self.k}, n={self.n}")
        if self.segment_size < 1 or self.workers < 1 or self.concurrent_uploads < 1 or self.window < 1:
            raise ValueError("segment_size, workers, concurrent_uploads and window must be >= 1")
        if self.pipeline_depth < 0 or self.rtt_s < 0:
            raise ValueError("pipeline_depth and rtt_s must be >= 0")
        if not self.bandwidth > 0 or not self.encode_mb_per_s > 0:
            raise ValueError("bandwidth and encode_mb_per_s must be > 0")

    @property
    def segment_share_bytes(self) -> float:
        return self.segment_size * self.n / self.k


def _cap(x: ModelInput, share_rate: float) -> float:
    """Plaintext MB/s from a share-byte rate, capped by the CPU and the link."""
    plain = share_rate * x.k / x.n
    link = x.bandwidth * x.k / x.n
    cpu = x.workers * x.encode_mb_per_s * MB
    return min(plain, link, cpu) / MB


def cpu_mb_per_s(x: ModelInput) -> float:
    return x.workers * x.encode_mb_per_s


def stop_and_wait_mb_per_s(x: ModelInput) -> float:
    """One segment per upload in flight; the link idles one RTT per segment."""
    cycle_bytes = x.concurrent_uploads * x.segment_share_bytes
    cycle_s = cycle_bytes / x.bandwidth + x.rtt_s
    if cycle_s == 0:
        return _cap(x, math.inf)
    return _cap(x, cycle_bytes / cycle_s)


def in_flight_bytes(x: ModelInput) -> float:
    """Share bytes in flight on the link in pipelined mode (see the module table)."""
    per_server = max(x.pipeline_depth, x.segment_size / x.k)
    return min(x.n * per_server, x.concurrent_uploads * x.window * x.segment_share_bytes)


def idle_s_per_cycle(x: ModelInput) -> float:
    """Pipelined mode: link idle time per cycle of ``in_flight_bytes`` (0 when the pipe is full)."""
    w = in_flight_bytes(x)
    return max(0.0, x.rtt_s + x.segment_share_bytes / x.bandwidth - w / x.bandwidth)


def pipelined_mb_per_s(x: ModelInput) -> float:
    w = in_flight_bytes(x)
    cycle_s = max(w / x.bandwidth, x.rtt_s + x.segment_share_bytes / x.bandwidth)
    if cycle_s == 0:
        return _cap(x, math.inf)
    return _cap(x, w / cycle_s)


def predict_mb_per_s(x: ModelInput, stock_mode: bool = False) -> float:
    return stop_and_wait_mb_per_s(x) if stock_mode else pipelined_mb_per_s(x)


def ideal_depth(bandwidth: float, rtt_s: float, n: int, concurrent_uploads: int = 1) -> float:
    """ARCHITECTURE.md's ``bandwidth × RTT / N`` bytes per server, divided by concurrent uploads
    when each upload has its own depth (ours share one budget per server: pass 1)."""
    if rtt_s == 0:
        return 0.0
    return bandwidth * rtt_s / n / concurrent_uploads
