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

Stop-and-wait (stock Tahoe-LAFS, our ``stock_mode``): each upload encodes a segment (one worker:
nothing overlaps), buffers each share's block, and once a share's buffer reaches ``write_size``
(Tahoe: 1,000,000 bytes) sends the batches and waits for every ack. So the link idles one RTT per
``m = ceil(write_size / block)`` segments, not per segment (a segment that only fills buffers
waits for nothing). A cycle carries ``U·m·B`` share bytes and lasts
``U·m·S / (min(workers, U)·encode rate) + U·m·S·other CPU-s per MB / cores + U·m·B/bw + RTT``
(the other processes' work on a batch does not overlap the encoding or the wait either).

Pipelined (our default): blocks are coalesced per share into writes of
``w = min(write_size, window/2 blocks)`` (at least a block), and a server acknowledges a whole
write. Each server has ``q = max(1, floor(D / w))`` whole writes in flight (the budget admits a
write only when it fits; a write larger than the budget goes alone); the budget is shared by all
uploads, so this does not grow with ``U``; all in flight is capped by the segments in flight
(``U·window·B``): ``W``. The first ack comes back ``RTT + N·w/bw`` after a cycle starts, so the
link idles ``max(0, RTT + N·w/bw − W/bw)`` per cycle of ``W`` bytes — ARCHITECTURE.md's
``RTT − N·D/bw`` plus the time to send one write to every server, which has to arrive whole
before it is acknowledged. Share rate = ``W / max(W/bw, RTT + N·w/bw)``; with one block per
write and one write per server that is stop-and-wait with free CPU.

Either result is capped by the CPU: ``workers × encode rate`` (per-worker plaintext MB/s,
measured by a microbenchmark) and, when the machine's ``cores`` are given, by
``cores / (1/encode rate + other CPU-s per MB)`` — the network process and local servers share
the cores — and by the link itself (``bw·k/N`` of plaintext).

A whole upload (``upload_mb_per_s``) adds what does not depend on the steady state: the
convergent-key pass over the file (one worker hashes each upload's file: ``size / key pass
rate``, divided by ``min(workers, U)`` for concurrent uploads) and
``FIXED_ROUND_TRIPS`` round trips (list shares, allocate, trailers, the held-back last bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MB = 1e6
FIXED_ROUND_TRIPS = 4  # list shares, allocate, trailers, last bytes: each waits for every server


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
    write_size: int = 4 * 1024 * 1024  # largest write per share (stock Tahoe: 1,000,000)
    key_pass_mb_per_s: float = math.inf  # one worker hashing the plaintext for the convergent key
    # The whole machine: cores shared by the workers and everything else on it (the network
    # process, local servers), which costs other_cpu_s_per_mb CPU-seconds per MB of plaintext.
    cores: float = math.inf
    other_cpu_s_per_mb: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"need 1 <= k <= n, got k={self.k}, n={self.n}")
        if min(self.segment_size, self.workers, self.concurrent_uploads, self.window, self.write_size) < 1:
            raise ValueError("segment_size, workers, concurrent_uploads, window and write_size must be >= 1")
        if self.pipeline_depth < 0 or self.rtt_s < 0 or self.other_cpu_s_per_mb < 0:
            raise ValueError("pipeline_depth, rtt_s and other_cpu_s_per_mb must be >= 0")
        if not self.cores > 0:
            raise ValueError("cores must be > 0")
        if not self.bandwidth > 0 or not self.encode_mb_per_s > 0 or not self.key_pass_mb_per_s > 0:
            raise ValueError("bandwidth, encode_mb_per_s and key_pass_mb_per_s must be > 0")

    @property
    def segment_share_bytes(self) -> float:
        return self.segment_size * self.n / self.k


def _cap(x: ModelInput, share_rate: float) -> float:
    """Plaintext MB/s from a share-byte rate, capped by the CPU and the link."""
    plain = share_rate * x.k / x.n
    link = x.bandwidth * x.k / x.n
    return min(plain, link, cpu_mb_per_s(x) * MB) / MB


def cpu_mb_per_s(x: ModelInput) -> float:
    """Plaintext MB/s the CPU allows: the workers' encoding, and the machine's cores shared by
    encoding and every other process's per-MB cost."""
    workers = x.workers * x.encode_mb_per_s
    if math.isinf(x.cores):
        return workers
    per_mb = 1 / x.encode_mb_per_s + x.other_cpu_s_per_mb
    return min(workers, x.cores / per_mb) if per_mb > 0 else workers


def segments_per_wait(x: ModelInput) -> int:
    """Stop-and-wait: segments buffered per round trip (one batch of ``write_size`` per share)."""
    return max(1, math.ceil(x.write_size / math.ceil(x.segment_size / x.k)))


def stop_and_wait_mb_per_s(x: ModelInput) -> float:
    """Encode, buffer, and every ``segments_per_wait`` segments send and wait one RTT."""
    m, u = segments_per_wait(x), x.concurrent_uploads
    cycle_bytes = u * m * x.segment_share_bytes
    encode_s = u * m * x.segment_size / (min(x.workers, u) * x.encode_mb_per_s * MB)
    # nothing overlaps: the network process's and the servers' work on a batch is serial too
    other_s = u * m * x.segment_size / MB * x.other_cpu_s_per_mb / x.cores
    cycle_s = encode_s + other_s + cycle_bytes / x.bandwidth + x.rtt_s
    if cycle_s == 0:
        return _cap(x, math.inf)
    return _cap(x, cycle_bytes / cycle_s)


def write_bytes(x: ModelInput) -> float:
    """The largest coalesced write to one share: ``min(write_size, window/2 blocks)``, at least a
    block. A server acknowledges a whole write, so this is the unit of the pipeline."""
    block = x.segment_size / x.k
    return max(block, min(x.write_size, max(1, x.window // 2) * block))


def in_flight_bytes(x: ModelInput) -> float:
    """Share bytes in flight on the link in pipelined mode (see the module table): whole writes,
    as many as fit in the depth (a write larger than the depth goes alone), all servers."""
    w = write_bytes(x)
    per_server = w * max(1, math.floor(x.pipeline_depth / w))
    return min(x.n * per_server, x.concurrent_uploads * x.window * x.segment_share_bytes)


def idle_s_per_cycle(x: ModelInput) -> float:
    """Pipelined mode: link idle time per cycle of ``in_flight_bytes`` (0 when the pipe is full)."""
    w = in_flight_bytes(x)
    return max(0.0, x.rtt_s + x.n * write_bytes(x) / x.bandwidth - w / x.bandwidth)


def pipelined_mb_per_s(x: ModelInput) -> float:
    w = in_flight_bytes(x)
    cycle_s = max(w / x.bandwidth, x.rtt_s + x.n * write_bytes(x) / x.bandwidth)
    if cycle_s == 0:
        return _cap(x, math.inf)
    return _cap(x, w / cycle_s)


def predict_mb_per_s(x: ModelInput, stock_mode: bool = False) -> float:
    return stop_and_wait_mb_per_s(x) if stock_mode else pipelined_mb_per_s(x)


def upload_seconds(x: ModelInput, size: int, stock_mode: bool = False) -> float:
    """``size`` bytes in all (split evenly between the concurrent uploads): key pass + fixed round
    trips + the steady state. Each upload's key pass runs on one worker; concurrent uploads' key
    passes run side by side on up to ``workers`` workers."""
    steady = predict_mb_per_s(x, stock_mode) * MB
    key_pass = size / (min(x.workers, x.concurrent_uploads) * x.key_pass_mb_per_s * MB)
    return key_pass + FIXED_ROUND_TRIPS * x.rtt_s + (size / steady if size else 0.0)


def upload_mb_per_s(x: ModelInput, size: int, stock_mode: bool = False) -> float:
    """Plaintext MB/s of one whole upload of ``size`` bytes (what the benchmarks measure)."""
    seconds = upload_seconds(x, size, stock_mode)
    return math.inf if seconds == 0 else size / seconds / MB


def ideal_depth(bandwidth: float, rtt_s: float, n: int, concurrent_uploads: int = 1) -> float:
    """ARCHITECTURE.md's ``bandwidth × RTT / N`` bytes per server, divided by concurrent uploads
    when each upload has its own depth (ours share one budget per server: pass 1)."""
    if rtt_s == 0:
        return 0.0
    return bandwidth * rtt_s / n / concurrent_uploads
