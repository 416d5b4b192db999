"""The utilisation timeline of one upload, traced from real events: does CPU overlap the network?

``python -m tools.timeline --out DIR [--rtt-ms 50] [--mbit 1000] [--size BYTES]`` uploads one file
in ``stock_mode`` and one with the default settings to servers holding each response ``--rtt-ms``
behind a tbf link of ``--mbit`` (``tools/bench_model.servers``; 0: unshaped loopback), with the
event recorder on (``uploader/trace.py``), and writes ``DIR/timeline-<mode>-<mbit>.png`` and
``DIR/timeline-<mbit>.json``:

- each worker's busy intervals (the pool: from a job's start to its answer);
- each server's writes in flight (the upload: from a write's start to its acknowledgement);
- bytes leaving on the shaped interface over time (its ``tx_bytes``, sampled every 5 ms) — the
  link itself, headers included — and share bytes acknowledged per 50 ms.

The figures in ``timeline.json``, over the data phase (first write to last acknowledgement,
after the key pass and placement): the share of time during which some worker was busy
(``cpu_busy``), the link carried data (``link_busy``: a 5 ms sample with at least 10% of the
rate), both at once (``overlap``), and the link use the model predicts for the steady state.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.bench_model import (
    MIB,
    Point,
    calibrate_other_cpu,
    encode_rate,
    key_pass_rate,
    measure,
    predict,
    servers,
)
from tools.netshape import ShapedLink
from uploader import trace

SAMPLE_S = 0.005
BUSY_LINK = 0.1  # a sample with at least this share of the link rate counts as the link busy


class WireSampler:
    """Samples a shaped link's ``tx_bytes`` every ``SAMPLE_S`` in a thread (bounded by duration)."""

    def __init__(self, link: ShapedLink | None, limit: int = 100_000) -> None:
        self.link = link
        self.samples: list[tuple[float, int]] = []
        self.limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        assert self.link is not None
        while not self._stop.is_set() and len(self.samples) < self.limit:
            self.samples.append((time.monotonic(), self.link.tx_bytes()))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> WireSampler:
        if self.link is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.link is not None:
            self._thread.join()


def _union_length(intervals: Sequence[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def _covered(intervals: Sequence[tuple[float, float]], t: float) -> bool:
    return any(s <= t < e for s, e in intervals)


def analyse(
    spans: Sequence[trace.Span], samples: Sequence[tuple[float, int]], rate: float | None
) -> dict[str, Any]:
    """Shares of the data phase (first write to last acknowledgement) with CPU busy, link busy,
    and both."""
    if not spans:
        raise ValueError("no events were recorded: was the trace started before the upload?")
    busy = [(s.start, s.end) for s in spans if s.kind == "busy"]
    writes = [(s.start, s.end) for s in spans if s.kind == "write"]
    # the data phase: from the first write (after the key pass and placement) to the last ack
    t0 = min((s for s, _ in writes), default=min(s.start for s in spans))
    t1 = max(s.end for s in spans)
    duration = t1 - t0
    busy = [(max(s, t0), e) for s, e in busy if e > t0]
    out: dict[str, Any] = {
        "seconds": round(duration, 3),
        "cpu_busy": round(_union_length(busy) / duration, 3) if duration else 0.0,
        "writes_in_flight": round(_union_length(writes) / duration, 3) if duration else 0.0,
        "workers": len({s.who for s in spans if s.kind == "busy"}),
        "servers": len({s.who for s in spans if s.kind == "write"}),
        "share_bytes": sum(s.nbytes for s in spans if s.kind == "write"),
        "writes": len(writes),
        "mean_write_bytes": round(sum(s.nbytes for s in spans if s.kind == "write") / max(1, len(writes))),
    }
    if rate and len(samples) > 1:
        inside = [(t, b) for t, b in samples if t0 <= t <= t1]
        steps = list(itertools.pairwise(inside))
        link_busy = [(a[0], b[0]) for a, b in steps if (b[1] - a[1]) / (b[0] - a[0]) >= BUSY_LINK * rate]
        both = [(s, e) for s, e in link_busy if _covered(busy, (s + e) / 2)]
        span = (inside[-1][0] - inside[0][0]) if len(inside) > 1 else 0.0
        if span > 0:
            out["link_busy"] = round(sum(e - s for s, e in link_busy) / span, 3)
            out["overlap"] = round(sum(e - s for s, e in both) / span, 3)
            out["wire_use"] = round((inside[-1][1] - inside[0][1]) / span / rate, 3)
    return out


def plot(
    spans: Sequence[trace.Span],
    samples: Sequence[tuple[float, int]],
    rate: float | None,
    title: str,
    path: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(s.start for s in spans)
    samples = [(t, b) for t, b in samples if t >= t0 - 0.1]
    workers = sorted({s.who for s in spans if s.kind == "busy"}, key=int)
    links = sorted({s.who for s in spans if s.kind == "write"})
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(12, 2.0 + 0.28 * (len(workers) + len(links)) + 2.5),
        sharex=True,
        gridspec_kw={"height_ratios": [max(2, len(workers) + len(links)) * 0.3, 2.5]},
    )
    rows = [f"worker {w}" for w in workers] + [f"server {i + 1}" for i in range(len(links))]
    for i, w in enumerate(workers):
        bars = [(s.start - t0, s.end - s.start) for s in spans if s.kind == "busy" and s.who == w]
        top.broken_barh(bars, (i - 0.4, 0.8), color="tab:orange")
    for j, name in enumerate(links):
        bars = [(s.start - t0, s.end - s.start) for s in spans if s.kind == "write" and s.who == name]
        top.broken_barh(bars, (len(workers) + j - 0.4, 0.8), color="tab:blue", alpha=0.5)
    top.set_yticks(range(len(rows)), rows, fontsize=7)
    top.invert_yaxis()
    top.set_title(title, fontsize=9)
    top.set_ylabel("busy (orange) / writes in flight (blue)", fontsize=8)
    if len(samples) > 1:
        ts = [(a[0] + b[0]) / 2 - t0 for a, b in itertools.pairwise(samples)]
        mbs = [(b[1] - a[1]) / (b[0] - a[0]) / 1e6 for a, b in itertools.pairwise(samples)]
        bottom.plot(ts, mbs, lw=0.6, color="tab:green", label="bytes on the shaped link (5 ms)")
    end = max(s.end for s in spans) - t0
    bins = max(1, int(end / 0.05) + 1)
    acked = [0.0] * bins
    for s in spans:
        if s.kind == "write":
            acked[min(bins - 1, int((s.end - t0) / 0.05))] += s.nbytes
    bottom.step(
        [i * 0.05 for i in range(bins)],
        [a / 0.05 / 1e6 for a in acked],
        where="post",
        color="tab:blue",
        lw=0.8,
        label="share bytes acknowledged (50 ms)",
    )
    if rate:
        bottom.axhline(rate / 1e6, color="grey", ls=":", label="link rate")
    bottom.set(xlabel="seconds since the upload's first event", ylabel="MB/s")
    bottom.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run(
    out: Path,
    rtt_ms: float = 50.0,
    bandwidth_mbit: float = 1000.0,
    size: int = 16 * MIB,
    k: int = 3,
    n: int = 10,
    workers: int = 2,
    modes: Sequence[str] = ("stock", "default"),
    pipeline_depth: int | str = "auto",
    other_cpu: float | None = None,
) -> dict[str, Any]:
    """Trace one upload per mode; write the PNGs and ``timeline-<mbit>.json``; return the figures.
    The model's inputs as in the sweep: encode and key-pass microbenchmarks, and ``other_cpu``
    (CPU-s per MB outside the workers; None: a calibration upload measures it here)."""
    out.mkdir(parents=True, exist_ok=True)
    rate = bandwidth_mbit * 1e6 / 8 if bandwidth_mbit > 0 else None
    encode = encode_rate(MIB, k, n, 8 * MIB)
    key = key_pass_rate(MIB, k, n, 8 * MIB)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="timeline-") as tmp:
        base = Path(tmp)
        if other_cpu is None:
            other_cpu = calibrate_other_cpu(base, k, n, workers, size)
        with servers(base, n, rtt_ms, bandwidth_mbit) as (procs, link):
            nurls = [nurl for _, nurl in procs]
            for mode in modes:
                point = Point(
                    "timeline", mode, rtt_ms, pipeline_depth, bandwidth_mbit=bandwidth_mbit, workers=workers
                )
                recorder = trace.start()
                try:
                    with WireSampler(link) as sampler:
                        got = measure(point, nurls, base, size, k, n, link)
                finally:
                    trace.stop()
                figures = analyse(recorder.spans, sampler.samples, rate)
                _, steady = predict(point, k, n, encode, key, size, other_cpu)
                figures["measured_mb_per_s"] = round(size / got.seconds / 1e6, 2)
                if rate:
                    figures["predicted_steady_link_use"] = round(steady * 1e6 * n / k / rate, 3)
                figures["dropped_events"] = recorder.dropped
                link_text = f"{bandwidth_mbit:g} Mbit/s" if rate else "unshaped"
                title = (
                    f"{mode}: {size / MIB:g} MiB, RTT {rtt_ms:g} ms, {link_text}, k={k} N={n}, "
                    f"{workers} workers — CPU busy {figures['cpu_busy']:.0%}"
                    + (
                        f", link busy {figures['link_busy']:.0%}, both {figures['overlap']:.0%}"
                        if "link_busy" in figures
                        else ""
                    )
                )
                figures["png"] = plot(
                    recorder.spans,
                    sampler.samples,
                    rate,
                    title,
                    out / f"timeline-{mode}-{bandwidth_mbit:g}.png",
                ).name
                results[mode] = figures
    (out / f"timeline-{bandwidth_mbit:g}.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Utilisation timeline of one upload, stock mode and default."
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--mbit", type=float, default=1000.0, help="tbf link rate; 0: unshaped")
    parser.add_argument("--size", type=int, default=16 * MIB)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.out, args.rtt_ms, args.mbit, args.size), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
