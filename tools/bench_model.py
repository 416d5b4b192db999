"""The throughput model (``tools/model.py``) against measured uploads under emulated RTT.

``python -m tools.bench_model [--quick] --out DIR`` starts ``--servers`` of our storage servers on
127.0.0.1 with ``--emulate-rtt-ms`` (every response held that long: ``uploader/storage/app.py``),
and sweeps one factor at a time around a base point (k=3, N=10, 1 MiB segments, the default
``pipeline_depth`` and ``window``, 2 workers):

| sweep | values |
|---|---|
| ``rtt`` | 0, 10, 50 ms, for the default pipeline and for ``stock_mode`` |
| ``depth`` | pipeline depth 128 KiB … 16 MiB at RTT 50 ms |
| ``bandwidth`` | 100 Mbit/s (and 1 Gbit/s in the full sweep) at RTT 50 ms, default and stock |

Each point uploads its own random file (so nothing is deduplicated) through a fresh
``GridClient`` and writes a row of ``DIR/model.csv``; ``DIR/model.png`` plots measured against
predicted. The model's inputs are the settings of the point, the emulated RTT, the link (tbf's
rate on a veth link into a namespace where the servers run, ``tools/netshape``; else loopback,
``bandwidth = inf``) and the per-worker encode rate measured here by a
microbenchmark of ``encode_segment`` before the sweep — never fitted to the sweep.
``measured_mb_per_s`` is plaintext MB/s (MB = 10^6 bytes) from the key pass to the last 201;
``link_utilisation`` is share bytes sent per second over the shaped rate. Shaping needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.model import ModelInput, predict_mb_per_s, upload_mb_per_s
from uploader.config import Config, load_config
from uploader.gridclient import GridClient
from uploader.upload import STOCK_WRITE_SIZE, UploadSettings
from workers.geometry import EncodingParams, Geometry
from workers.keys import ConvergentKeyHasher
from workers.segment import encode_segment

KIB, MIB = 1024, 1024 * 1024
COLUMNS = (
    "sweep",
    "mode",
    "rtt_ms",
    "bandwidth_mbit",
    "pipeline_depth",
    "segment_size",
    "workers",
    "k",
    "n",
    "size",
    "seconds",
    "measured_mb_per_s",
    "predicted_mb_per_s",
    "ratio",
    "link_utilisation",
    "predicted_steady_mb_per_s",
    "encode_mb_per_s",
    "key_pass_mb_per_s",
    "other_cpu_s_per_mb",
    "cores",
)


@dataclass(frozen=True, slots=True)
class Point:
    sweep: str
    mode: str  # "default" or "stock"
    rtt_ms: float
    pipeline_depth: int
    segment_size: int = MIB
    bandwidth_mbit: float = 0.0  # 0: unshaped loopback; else tbf on a veth link (tools/netshape)


def sweep(quick: bool) -> list[Point]:
    """One factor at a time around the base point (RTT 50 ms, 16 MiB depth)."""
    base_depth = Config.pipeline_depth
    points = [
        Point("rtt", mode, rtt, base_depth) for rtt in (0.0, 10.0, 50.0) for mode in ("default", "stock")
    ]
    depths = (128 * KIB, 1 * MIB, 16 * MIB) if quick else (128 * KIB, 512 * KIB, 1 * MIB, 4 * MIB, 16 * MIB)
    points += [Point("depth", "default", 50.0, d) for d in depths]
    rates = (100.0,) if quick else (100.0, 1000.0)
    points += [Point("bandwidth", m, 50.0, base_depth, MIB, r) for r in rates for m in ("default", "stock")]
    return points


def encode_rate(segment_size: int, k: int, n: int, total: int) -> float:
    """One worker's plaintext MB/s through ``encode_segment`` (AES-CTR, erasure code, hashes)."""
    data = os.urandom(segment_size)
    key = os.urandom(16)
    count = max(total // segment_size, 4)
    encode_segment(data, key, 0, k, n)  # warm up (tables, imports)
    start = time.perf_counter()
    for i in range(count):
        encode_segment(data, key, i * segment_size, k, n)
    return count * segment_size / (time.perf_counter() - start) / 1e6


def key_pass_rate(segment_size: int, k: int, n: int, total: int) -> float:
    """One worker's plaintext MB/s hashing for the convergent key (the upload's first pass)."""
    g = Geometry.from_params(EncodingParams(k, n, segment_size), total)
    hasher = ConvergentKeyHasher.for_geometry(b"bench", g)
    data = os.urandom(MIB)
    start = time.perf_counter()
    for _ in range(max(total // MIB, 1)):
        hasher.update(data)
    hasher.key()
    return max(total // MIB, 1) * MIB / (time.perf_counter() - start) / 1e6


@contextlib.contextmanager
def servers(
    directory: Path, count: int, rtt_ms: float, bandwidth_mbit: float
) -> Iterator[list[tuple[int, str]]]:
    """``count`` storage server processes holding each response ``rtt_ms``, behind a link shaped
    to ``bandwidth_mbit`` (0: on 127.0.0.1, unshaped); yields their (pid, NURL)s."""
    from tools.measure import storage_server
    from tools.netshape import shaped_link

    with contextlib.ExitStack() as stack:
        prefix: list[str] = []
        host = "127.0.0.1"
        if bandwidth_mbit > 0:
            link = stack.enter_context(shaped_link(int(bandwidth_mbit * 1e6)))
            prefix, host = link.exec_prefix(), link.ns_ip
        nurls = []
        for i in range(count):
            args = ("--emulate-rtt-ms", str(rtt_ms)) if rtt_ms > 0 else ()
            where = directory / f"rtt{rtt_ms:g}-bw{bandwidth_mbit:g}-s{i}"
            nurls.append(stack.enter_context(storage_server(where, args, prefix, host)))
        yield nurls


def _config(directory: Path, nurls: Sequence[str], settings: dict[str, Any]) -> Config:
    toml = directory / "uploader.toml"
    toml.write_text("".join(f'[[servers]]\nnurl = "{nurl}"\n' for nurl in nurls))
    return load_config(toml, {"HOME": str(directory)}, settings)


async def _upload(config: Config, path: Path) -> tuple[float, int]:
    async with GridClient(config, max_uploads=1) as client:
        result = await client.upload(path)
    return result.seconds, result.share_bytes_sent


def measure(
    point: Point, nurls: Sequence[str], directory: Path, size: int, k: int, n: int, workers: int
) -> tuple[float, int]:
    """Seconds to upload ``size`` fresh random bytes at ``point``, and the share bytes sent."""
    path = directory / "file"
    path.write_bytes(os.urandom(size))
    config = _config(
        directory,
        nurls,
        {
            "shares_needed": k,
            "shares_total": n,
            "shares_happy": n,
            "max_segment_size": point.segment_size,
            "pipeline_depth": point.pipeline_depth,
            "workers": workers,
            "stock_mode": point.mode == "stock",
        },
    )
    try:
        return asyncio.run(_upload(config, path))
    finally:
        path.unlink()


def calibrate_other_cpu(directory: Path, k: int, n: int, workers: int, size: int) -> float:
    """CPU-seconds per MB of plaintext spent outside the encode workers — this (network) process
    and the storage servers — during one upload of its own file on an unshaped grid at RTT 0.
    A cost per byte, measured apart from the sweep; no throughput of the sweep goes into it."""
    from tools.measure import process_cpu_s, self_cpu_s

    with servers(directory / "calibration", n, 0.0, 0.0) as procs:
        nurls = [nurl for _, nurl in procs]
        path = directory / "calibration-file"
        path.write_bytes(os.urandom(size))
        config = _config(
            directory,
            nurls,
            {"shares_needed": k, "shares_total": n, "shares_happy": n, "workers": workers},
        )
        before = self_cpu_s() + sum(process_cpu_s(pid) for pid, _ in procs)
        asyncio.run(_upload(config, path))
        after = self_cpu_s() + sum(process_cpu_s(pid) for pid, _ in procs)
        path.unlink()
    return (after - before) / (size / 1e6)


def predict(
    point: Point,
    k: int,
    n: int,
    workers: int,
    rate: float,
    key_rate: float,
    size: int,
    other_cpu: float = 0.0,
) -> tuple[float, float]:
    """(whole-upload MB/s, steady-state MB/s) the model predicts for ``point``."""
    x = ModelInput(
        k=k,
        n=n,
        segment_size=point.segment_size,
        pipeline_depth=point.pipeline_depth,
        rtt_s=point.rtt_ms / 1000,
        bandwidth=point.bandwidth_mbit * 1e6 / 8 if point.bandwidth_mbit > 0 else math.inf,
        encode_mb_per_s=rate,
        workers=workers,
        window=1 if point.mode == "stock" else Config.window,
        write_size=STOCK_WRITE_SIZE if point.mode == "stock" else UploadSettings.write_size,
        key_pass_mb_per_s=key_rate,
        cores=float(os.cpu_count() or 1) if other_cpu > 0 else math.inf,
        other_cpu_s_per_mb=other_cpu,
    )
    stock = point.mode == "stock"
    return upload_mb_per_s(x, size, stock), predict_mb_per_s(x, stock)


def run(
    out: Path,
    quick: bool = False,
    points: Sequence[Point] | None = None,
    size: int | None = None,
    k: int = 3,
    n: int = 10,
    workers: int = 2,
    plot: bool = True,
    calibrate: bool = True,
) -> dict[str, Any]:
    """Sweep, write ``out/model.csv`` (and ``out/model.png``); return a summary."""
    out.mkdir(parents=True, exist_ok=True)
    points = list(points) if points is not None else sweep(quick)
    size = size if size is not None else (16 if quick else 64) * MIB
    bench_bytes = 4 * MIB if quick else 16 * MIB
    rates = {s: encode_rate(s, k, n, bench_bytes) for s in {p.segment_size for p in points}}
    key_rate = key_pass_rate(MIB, k, n, bench_bytes)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        base = Path(tmp)
        other_cpu = calibrate_other_cpu(base, k, n, workers, size) if calibrate else 0.0
        for rtt, bw in sorted({(p.rtt_ms, p.bandwidth_mbit) for p in points}):
            with servers(base, n, rtt, bw) as procs:
                nurls = [nurl for _, nurl in procs]
                for point in (p for p in points if (p.rtt_ms, p.bandwidth_mbit) == (rtt, bw)):
                    seconds, sent = measure(point, nurls, base, size, k, n, workers)
                    measured = size / seconds / 1e6
                    predicted, steady = predict(
                        point, k, n, workers, rates[point.segment_size], key_rate, size, other_cpu
                    )
                    row = {**asdict(point), "workers": workers, "k": k, "n": n, "size": size}
                    row |= {
                        "seconds": round(seconds, 3),
                        "measured_mb_per_s": round(measured, 2),
                        "predicted_mb_per_s": round(predicted, 2),
                        "ratio": round(measured / predicted, 3),
                        "link_utilisation": (round(sent / seconds / (bw * 1e6 / 8), 3) if bw > 0 else ""),
                        "predicted_steady_mb_per_s": round(steady, 2),
                        "encode_mb_per_s": round(rates[point.segment_size], 1),
                        "key_pass_mb_per_s": round(key_rate, 1),
                        "other_cpu_s_per_mb": round(other_cpu, 4),
                        "cores": os.cpu_count() or 1,
                    }
                    rows.append(row)
    order = {p: i for i, p in enumerate(points)}
    fields = Point.__slots__
    rows.sort(key=lambda r: order[Point(**{f: r[f] for f in fields})])
    csv_path = out / "model.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary: dict[str, Any] = {"csv": str(csv_path), "points": len(rows)}
    if plot:
        summary["png"] = str(plot_rows(rows, out / "model.png"))
    return summary


def plot_rows(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Measured against predicted: one panel per sweep, and all points against y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    rtt, depth, scatter = axes
    for mode, colour in (("default", "tab:blue"), ("stock", "tab:red")):
        sel = [r for r in rows if r["sweep"] == "rtt" and r["mode"] == mode]
        xs = [r["rtt_ms"] for r in sel]
        rtt.plot(xs, [r["measured_mb_per_s"] for r in sel], "o-", color=colour, label=f"{mode} measured")
        rtt.plot(xs, [r["predicted_mb_per_s"] for r in sel], "x--", color=colour, label=f"{mode} predicted")
    rtt.set(
        xlabel="emulated RTT (ms)", ylabel="MB/s of plaintext", title="RTT sweep (k=3, N=10, 1 MiB segments)"
    )
    rtt.legend(fontsize=8)
    sel = [r for r in rows if r["sweep"] == "depth"]
    xs = [r["pipeline_depth"] / KIB for r in sel]
    depth.plot(xs, [r["measured_mb_per_s"] for r in sel], "o-", label="measured")
    depth.plot(xs, [r["predicted_mb_per_s"] for r in sel], "x--", label="predicted")
    depth.set_xscale("log", base=2)
    depth.set(xlabel="pipeline_depth (KiB per server)", ylabel="MB/s", title="depth sweep at RTT 50 ms")
    depth.legend(fontsize=8)
    top = max([r["measured_mb_per_s"] for r in rows] + [r["predicted_mb_per_s"] for r in rows] + [1.0])
    for mode, colour in (("default", "tab:blue"), ("stock", "tab:red")):
        sel = [r for r in rows if r["mode"] == mode]
        scatter.scatter(
            [r["predicted_mb_per_s"] for r in sel],
            [r["measured_mb_per_s"] for r in sel],
            c=colour,
            label=mode,
        )
    scatter.plot([0, top], [0, top], "k:", label="y = x")
    scatter.plot([0, top], [0, 0.8 * top], color="grey", lw=0.5, label="-20%")
    scatter.set(xlabel="predicted MB/s", ylabel="measured MB/s", title="all points")
    scatter.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure uploads under emulated RTT against tools/model.py.")
    parser.add_argument("--quick", action="store_true", help="reduced sweep, 16 MiB per point")
    parser.add_argument("--out", type=Path, required=True, help="directory for model.csv and model.png")
    parser.add_argument("--size", type=int, help="bytes per point")
    args = parser.parse_args(argv)
    summary = run(args.out, quick=args.quick, size=args.size)
    with (args.out / "model.csv").open() as fh:
        print(fh.read(), end="")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
