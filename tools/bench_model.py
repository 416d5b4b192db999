"""The throughput model (``tools/model.py``) against measured uploads under emulated RTT and bandwidth.

``python -m tools.bench_model [--quick] [--tahoe] --out DIR`` (and ``python -m tools.bench --out
DIR``, which adds the utilisation timeline) starts ``N`` of our storage servers with
``--emulate-rtt-ms`` (every response held that long: ``uploader/storage/app.py``), behind a tbf-shaped
veth link into a namespace for the shaped points (``tools/netshape``), and sweeps one factor at a
time around a base point (k=3, N=10, 1 MiB segments, ``pipeline_depth = "auto"``, window 16,
2 workers, 1 upload, RTT 50 ms, unshaped), a fixed number of bytes per point:

| sweep | values (quick: fewer) |
|---|---|
| ``rtt`` | 0, 10, 50 ms, default and ``stock_mode`` |
| ``depth`` | stop-and-wait (stock mode), then 128 KiB … 64 MiB per server |
| ``segment`` | 64 KiB … 4 MiB |
| ``workers`` | 1, 2 |
| ``uploads`` | 1, 2, 4 concurrent uploads (the bytes split between them), default and stock |
| ``bandwidth`` | 100 Mbit/s and 1 Gbit/s: ``auto`` (told the link rate), 16 MiB, and stock |
| ``auto`` | unshaped, RTT 0: ``auto`` against the former default 16 MiB, side by side |
| ``tahoe`` (``--tahoe``) | a stock Tahoe 1.20 client (web API ``PUT /uri``, its 128 KiB segments) against our stock mode (128 KiB) and default, at RTT 0, 10, 50 ms |

Each point uploads fresh random files (nothing deduplicates) through a fresh ``GridClient``
and writes a row of ``DIR/model.csv``; ``DIR/model.png`` plots measured against predicted. The
model's inputs are the point's settings, the emulation's RTT and link rate (``inf`` unshaped),
the per-worker encode and key-pass rates from microbenchmarks run first, and the other
processes' CPU-s per MB from a separate calibration upload — never fitted to the sweep.
``measured_mb_per_s`` is plaintext MB/s (MB = 10^6 bytes) over the uploads' wall time, the
fastest of a few rounds over the whole sweep (the machine is shared: the fastest run is the one
least disturbed; ``slowest_mb_per_s`` shows the spread), after an unrecorded warm-up upload to
each new set of servers;
``link_utilisation`` is share bytes acknowledged per second over the shaped rate,
``wire_utilisation`` the bytes the shaped interface sent (headers included) over the rate.
The ``tahoe`` rows have no prediction: a Tahoe client's CPU cost is not microbenchmarked.
Shaping needs root; without it, shaped points fail.
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
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.model import ModelInput, predict_mb_per_s, upload_mb_per_s
from tools.netshape import ShapedLink
from uploader import depth
from uploader.config import Config, load_config
from uploader.gbs import StorageClient
from uploader.gridclient import GridClient
from uploader.upload import STOCK_WRITE_SIZE, UploadSettings
from workers.geometry import EncodingParams, Geometry
from workers.keys import ConvergentKeyHasher
from workers.segment import encode_segment

KIB, MIB = 1024, 1024 * 1024
MIN_FREE_CORES = 0.25  # /proc/stat ticks are coarse; never model less than this
TAHOE_SEGMENT = 128 * KIB  # Tahoe-LAFS's default max segment size (a client node cannot change it)
COLUMNS = (
    "sweep",
    "mode",
    "rtt_ms",
    "bandwidth_mbit",
    "pipeline_depth",
    "resolved_depth",
    "segment_size",
    "workers",
    "uploads",
    "k",
    "n",
    "size",
    "seconds",
    "measured_mb_per_s",
    "predicted_mb_per_s",
    "ratio",
    "runs",
    "slowest_mb_per_s",
    "link_utilisation",
    "wire_utilisation",
    "predicted_steady_mb_per_s",
    "free_cores",
    "predicted_free_cores_mb_per_s",
    "ratio_free_cores",
    "encode_mb_per_s",
    "key_pass_mb_per_s",
    "other_cpu_s_per_mb",
    "cores",
)


@dataclass(frozen=True, slots=True)
class Point:
    sweep: str
    mode: str  # "default" (our pipeline), "stock" (stock_mode) or "tahoe" (a stock Tahoe client)
    rtt_ms: float
    pipeline_depth: int | str = depth.AUTO
    segment_size: int = MIB
    bandwidth_mbit: float = 0.0  # 0: unshaped loopback; else tbf on a veth link (tools/netshape)
    workers: int = 2
    uploads: int = 1  # concurrent uploads sharing the point's bytes


def sweep(quick: bool, tahoe: bool = False) -> list[Point]:
    """One factor at a time around the base point (RTT 50 ms, unshaped, depth "auto")."""
    P, base = Point, 50.0
    points = [
        P("rtt", m, r) for r in ((0.0, 50.0) if quick else (0.0, 10.0, 50.0)) for m in ("default", "stock")
    ]
    depths = (128 * KIB, 16 * MIB) if quick else (128 * KIB, 512 * KIB, 1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB)
    points += [P("depth", "stock", base)] + [P("depth", "default", base, d) for d in depths]
    segments = (256 * KIB, 4 * MIB) if quick else (64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB)
    points += [P("segment", "default", base, segment_size=s) for s in segments]
    points += [P("workers", "default", base, workers=w) for w in ((1,) if quick else (1, 2))]
    uploads = ((2, ("default",)),) if quick else tuple((u, ("default", "stock")) for u in (1, 2, 4))
    points += [P("uploads", m, base, uploads=u) for u, modes in uploads for m in modes]
    rates = (100.0,) if quick else (100.0, 1000.0)
    variants = (("default", depth.AUTO), ("default", 16 * MIB), ("stock", depth.AUTO))
    points += [P("bandwidth", m, base, d, bandwidth_mbit=r) for r in rates for m, d in variants]
    points += [P("auto", "default", 0.0, d) for d in (depth.AUTO, 16 * MIB)]
    if tahoe:
        trio = (("tahoe", TAHOE_SEGMENT), ("stock", TAHOE_SEGMENT), ("default", MIB))
        points += [P("tahoe", m, r, segment_size=s) for r in (0.0, 10.0, 50.0) for m, s in trio]
    return points


def encode_rate(segment_size: int, k: int, n: int, total: int) -> float:
    """One worker's plaintext MB/s through ``encode_segment`` (AES-CTR, erasure code, hashes), per
    CPU-second of this process (so other work on the machine does not slow the figure down)."""
    data = os.urandom(segment_size)
    key = os.urandom(16)
    count = max(total // segment_size, 4)
    encode_segment(data, key, 0, k, n)  # warm up (tables, imports)
    start = time.process_time()
    for i in range(count):
        encode_segment(data, key, i * segment_size, k, n)
    return count * segment_size / (time.process_time() - start) / 1e6


def key_pass_rate(segment_size: int, k: int, n: int, total: int) -> float:
    """One worker's plaintext MB/s hashing for the convergent key (the upload's first pass), per
    CPU-second."""
    g = Geometry.from_params(EncodingParams(k, n, segment_size), total)
    hasher = ConvergentKeyHasher.for_geometry(b"bench", g)
    data = os.urandom(MIB)
    start = time.process_time()
    for _ in range(max(total // MIB, 1)):
        hasher.update(data)
    hasher.key()
    return max(total // MIB, 1) * MIB / (time.process_time() - start) / 1e6


@contextlib.contextmanager
def servers(
    directory: Path, count: int, rtt_ms: float, bandwidth_mbit: float
) -> Iterator[tuple[list[tuple[int, str]], ShapedLink | None]]:
    """``count`` storage server processes holding each response ``rtt_ms``, behind a link shaped
    to ``bandwidth_mbit`` (0: on 127.0.0.1, unshaped); yields their (pid, NURL)s and the link."""
    from tools.measure import storage_server
    from tools.netshape import shaped_link

    with contextlib.ExitStack() as stack:
        prefix: list[str] = []
        host = "127.0.0.1"
        link = None
        if bandwidth_mbit > 0:
            link = stack.enter_context(shaped_link(int(bandwidth_mbit * 1e6)))
            prefix, host = link.exec_prefix(), link.ns_ip
        nurls = []
        for i in range(count):
            args = ("--emulate-rtt-ms", str(rtt_ms)) if rtt_ms > 0 else ()
            where = directory / f"rtt{rtt_ms:g}-bw{bandwidth_mbit:g}-s{i}"
            nurls.append(stack.enter_context(storage_server(where, args, prefix, host)))
        yield nurls, link


def point_settings(point: Point, k: int, n: int) -> dict[str, Any]:
    """The uploader settings of a point (``link_mbit_per_s`` told to "auto" on shaped links)."""
    settings: dict[str, Any] = {
        "shares_needed": k,
        "shares_total": n,
        "shares_happy": n,
        "max_segment_size": point.segment_size,
        "pipeline_depth": point.pipeline_depth,
        "workers": point.workers,
        "stock_mode": point.mode == "stock",
    }
    if point.pipeline_depth == depth.AUTO and point.bandwidth_mbit > 0:
        settings["link_mbit_per_s"] = point.bandwidth_mbit
    return settings


def config_for(directory: Path, nurls: Sequence[str], settings: dict[str, Any]) -> Config:
    toml = directory / "uploader.toml"
    toml.write_text("".join(f'[[servers]]\nnurl = "{nurl}"\n' for nurl in nurls))
    return load_config(toml, {"HOME": str(directory)}, settings)


@dataclass
class Measured:
    seconds: float
    share_bytes: int
    resolved_depth: int | None = None
    wire_bytes: int | None = None
    free_cores: float | None = None  # cores the rest of the machine left free during the upload


def write_files(directory: Path, size: int, count: int) -> list[Path]:
    """``count`` fresh random files sharing ``size`` bytes (nothing deduplicates)."""
    paths = []
    for i in range(count):
        path = directory / f"file{i}"
        path.write_bytes(os.urandom(size // count + (1 if i < size % count else 0)))
        paths.append(path)
    return paths


def machine_busy_s() -> float:
    """CPU-seconds the whole machine has spent busy (every core; /proc/stat's first line)."""
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def ours_busy_s(pids: Sequence[int]) -> float:
    """CPU-seconds of this process and the live processes ``pids`` (workers, servers)."""
    from tools.measure import process_cpu_s, self_cpu_s

    total = self_cpu_s()
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += process_cpu_s(pid)
    return total


def measure(
    point: Point,
    nurls: Sequence[str],
    directory: Path,
    size: int,
    k: int,
    n: int,
    link: ShapedLink | None = None,
    server_pids: Sequence[int] = (),
) -> Measured:
    """Upload ``size`` fresh random bytes at ``point`` (split between ``point.uploads`` concurrent
    uploads); wall time from the first upload's start to the last one's cap. Also the cores the
    rest of the machine left free meanwhile: ``cores`` minus the CPU-seconds per second that
    processes other than this one, its workers and ``server_pids`` spent (/proc/stat)."""
    files = write_files(directory, size, point.uploads)
    config = config_for(directory, nurls, point_settings(point, k, n))

    async def go() -> Measured:
        async with GridClient(config, max_uploads=point.uploads) as client:
            pids = [*client.pool.worker_pids(), *server_pids]
            wire = link.tx_bytes() if link is not None else 0
            machine, ours = machine_busy_s(), ours_busy_s(pids)
            start = time.monotonic()
            results = await asyncio.gather(*(client.upload(f) for f in files))
            seconds = time.monotonic() - start
            others = (machine_busy_s() - machine) - (ours_busy_s(pids) - ours)
            wire = link.tx_bytes() - wire if link is not None else 0
            cores = float(os.cpu_count() or 1)
            return Measured(
                seconds,
                sum(r.share_bytes_sent for r in results),
                client.settings.pipeline_depth,
                wire if link is not None else None,
                max(MIN_FREE_CORES, min(cores, cores - others / seconds)),
            )

    try:
        return asyncio.run(go())
    finally:
        for f in files:
            f.unlink()


async def _lease_seeds(nurls: Sequence[str]) -> list[bytes]:
    clients = [StorageClient(nurl) for nurl in nurls]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        return [c.lease_seed for c in clients]
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


@contextlib.contextmanager
def tahoe_client(directory: Path, nurls: Sequence[str], k: int, n: int, tahoe_bin: Path) -> Iterator[Any]:
    """A started stock Tahoe client node whose only servers are ``nurls`` (ours)."""
    from tools.stock_tahoe import StockClientNode, servers_yaml_for, stock_env

    seeds = asyncio.run(_lease_seeds(nurls))
    home = directory / "tahoe-home"
    home.mkdir(parents=True, exist_ok=True)
    env = stock_env({**os.environ, "HOME": str(home)})
    node = StockClientNode(
        directory / f"tahoe-{os.urandom(3).hex()}",
        tahoe_bin,
        servers_yaml_for(zip(nurls, seeds, strict=True)),
        k,
        n,
        n,
        env=env,
    )
    node.create()
    node.start()
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()


def tahoe_put(node: Any, directory: Path, size: int) -> Measured:
    """``PUT /uri`` of a fresh random file to a stock client node's web API (no CLI start-up)."""
    (path,) = write_files(directory, size, 1)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with path.open("rb") as fh:
            request = urllib.request.Request(
                node.web_url + "uri", data=fh, method="PUT", headers={"Content-Length": str(size)}
            )
            start = time.monotonic()
            with opener.open(request, timeout=600) as resp:
                cap = resp.read().decode()
            seconds = time.monotonic() - start
        if not cap.startswith("URI:CHK:"):
            raise RuntimeError(f"the stock client answered {cap[:12]!r}…, not a CHK cap")
    finally:
        path.unlink()
    return Measured(seconds, 0)


def calibrate_other_cpu(directory: Path, k: int, n: int, workers: int, size: int, runs: int = 3) -> float:
    """CPU-seconds per MB of plaintext spent outside the encode workers — this (network) process
    and the storage servers — during an upload of its own file on an unshaped grid at RTT 0; the
    least of ``runs`` uploads (contention inflates CPU time, as it does wall time). A cost per
    byte, measured apart from the sweep; no throughput of the sweep goes into it."""
    from tools.measure import process_cpu_s, self_cpu_s

    costs = []
    with servers(directory / "calibration", n, 0.0, 0.0) as (procs, _):
        nurls = [nurl for _, nurl in procs]
        point = Point("calibration", "default", 0.0, workers=workers)
        for _ in range(runs):
            before = self_cpu_s() + sum(process_cpu_s(pid) for pid, _ in procs)
            measure(point, nurls, directory, size, k, n)
            after = self_cpu_s() + sum(process_cpu_s(pid) for pid, _ in procs)
            costs.append((after - before) / (size / 1e6))
    return min(costs)


def model_depth(point: Point, k: int, n: int) -> int:
    """The depth "auto" resolves to from the emulation's settings (or the point's integer)."""
    return depth.resolve(
        point.pipeline_depth,
        rtt_s=point.rtt_ms / 1000,
        link_mbit_per_s=point.bandwidth_mbit if point.bandwidth_mbit > 0 else None,
        n=n,
        k=k,
        write_size=UploadSettings.write_size,
    )


def predict(
    point: Point,
    k: int,
    n: int,
    rate: float,
    key_rate: float,
    size: int,
    other_cpu: float = 0.0,
    cores: float | None = None,
) -> tuple[float, float]:
    """(whole-upload MB/s, steady-state MB/s) the model predicts for ``point``, on ``cores``
    (default: the machine's, when ``other_cpu`` is known)."""
    stock = point.mode == "stock"
    x = ModelInput(
        k=k,
        n=n,
        segment_size=point.segment_size,
        pipeline_depth=model_depth(point, k, n),
        rtt_s=point.rtt_ms / 1000,
        bandwidth=point.bandwidth_mbit * 1e6 / 8 if point.bandwidth_mbit > 0 else math.inf,
        encode_mb_per_s=rate,
        workers=point.workers,
        concurrent_uploads=point.uploads,
        window=1 if stock else Config.window,
        write_size=STOCK_WRITE_SIZE if stock else UploadSettings.write_size,
        key_pass_mb_per_s=key_rate,
        cores=cores if cores is not None else float(os.cpu_count() or 1) if other_cpu > 0 else math.inf,
        other_cpu_s_per_mb=other_cpu,
    )
    return upload_mb_per_s(x, size, stock), predict_mb_per_s(x, stock)


def run(
    out: Path,
    quick: bool = False,
    points: Sequence[Point] | None = None,
    size: int | None = None,
    k: int = 3,
    n: int = 10,
    plot: bool = True,
    calibrate: bool = True,
    tahoe_bin: Path | None = None,
    repeats: int | None = None,
    warm_up: bool = True,
) -> dict[str, Any]:
    """Sweep, write ``out/model.csv`` (and ``out/model.png``); return a summary. The ``tahoe``
    points need ``tahoe_bin`` (a stock ``tahoe`` executable). Each point is the fastest of
    ``repeats`` rounds over the whole sweep (default 2)."""
    repeats = repeats if repeats is not None else 2
    out.mkdir(parents=True, exist_ok=True)
    points = list(points) if points is not None else sweep(quick, tahoe=tahoe_bin is not None)
    size = size if size is not None else (16 if quick else 64) * MIB
    bench_bytes = 4 * MIB if quick else 16 * MIB
    rates = {s: encode_rate(s, k, n, bench_bytes) for s in {p.segment_size for p in points}}
    key_rate = key_pass_rate(MIB, k, n, bench_bytes)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        base = Path(tmp)
        workers = max(p.workers for p in points)
        other_cpu = calibrate_other_cpu(base, k, n, workers, size) if calibrate else 0.0
        tries: dict[Point, list[Measured]] = {p: [] for p in points}
        for _ in range(repeats):  # rounds, so a burst of load hits different points each time
            for rtt, bw in sorted({(p.rtt_ms, p.bandwidth_mbit) for p in points}):
                group = [p for p in points if (p.rtt_ms, p.bandwidth_mbit) == (rtt, bw)]
                with servers(base, n, rtt, bw) as (procs, link), contextlib.ExitStack() as stack:
                    nurls = [nurl for _, nurl in procs]
                    node = None
                    if any(p.mode == "tahoe" for p in group):
                        if tahoe_bin is None:
                            raise ValueError("tahoe points need tahoe_bin, a stock `tahoe` executable")
                        node = stack.enter_context(tahoe_client(base, nurls, k, n, tahoe_bin))
                    # warm the servers up (first connections, imports) with an unrecorded upload
                    if warm_up:
                        measure(Point("warm-up", "default", rtt, workers=1), nurls, base, MIB, k, n)
                    for point in group:
                        if point.mode == "tahoe":
                            tries[point].append(tahoe_put(node, base, size))
                        else:
                            pids = [pid for pid, _ in procs]
                            tries[point].append(measure(point, nurls, base, size, k, n, link, pids))
        for point, got in tries.items():
            best = min(got, key=lambda m: m.seconds)
            row = _row(point, best, k, n, size, rates, key_rate, other_cpu)
            rows.append(
                row
                | {"runs": len(got), "slowest_mb_per_s": round(size / max(m.seconds for m in got) / 1e6, 2)}
            )
    order = {p: i for i, p in enumerate(points)}
    rows.sort(key=lambda r: order[r["_point"]])
    csv_path = out / "model.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summary: dict[str, Any] = {
        "csv": str(csv_path),
        "points": len(rows),
        "sweep_seconds": round(time.monotonic() - started, 1),
    }
    summary["other_cpu_s_per_mb"] = round(other_cpu, 4)
    modelled = [r for r in rows if r["ratio"] != ""]
    summary["within_20_percent"] = sum(1 for r in modelled if 0.8 <= r["ratio"] <= 1.2)
    summary["modelled_points"] = len(modelled)
    if plot:
        summary["png"] = str(plot_rows(rows, out / "model.png"))
    return summary


def _row(
    point: Point,
    got: Measured,
    k: int,
    n: int,
    size: int,
    rates: dict[int, float],
    key_rate: float,
    other_cpu: float,
) -> dict[str, Any]:
    measured = size / got.seconds / 1e6
    bw = point.bandwidth_mbit * 1e6 / 8
    row = {**asdict(point), "_point": point, "k": k, "n": n, "size": size}
    row |= {
        "resolved_depth": got.resolved_depth if got.resolved_depth is not None else "",
        "seconds": round(got.seconds, 3),
        "measured_mb_per_s": round(measured, 2),
        "predicted_mb_per_s": "",
        "ratio": "",
        "predicted_steady_mb_per_s": "",
        "link_utilisation": round(got.share_bytes / got.seconds / bw, 3)
        if bw > 0 and got.share_bytes
        else "",
        "wire_utilisation": round(got.wire_bytes / got.seconds / bw, 3) if bw > 0 and got.wire_bytes else "",
        "encode_mb_per_s": round(rates[point.segment_size], 1),
        "key_pass_mb_per_s": round(key_rate, 1),
        "other_cpu_s_per_mb": round(other_cpu, 4),
        "cores": os.cpu_count() or 1,
    }
    if point.mode != "tahoe":
        predicted, steady = predict(point, k, n, rates[point.segment_size], key_rate, size, other_cpu)
        row |= {
            "predicted_mb_per_s": round(predicted, 2),
            "ratio": round(measured / predicted, 3),
            "predicted_steady_mb_per_s": round(steady, 2),
        }
    if point.mode != "tahoe" and got.free_cores is not None:
        free, _ = predict(point, k, n, rates[point.segment_size], key_rate, size, other_cpu, got.free_cores)
        row |= {
            "free_cores": round(got.free_cores, 2),
            "predicted_free_cores_mb_per_s": round(free, 2),
            "ratio_free_cores": round(measured / free, 3),
        }
    return row


def read_rows(path: Path) -> list[dict[str, Any]]:
    """``model.csv`` back, numbers as numbers (empty cells stay "")."""

    def value(text: str) -> Any:
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text else number

    with path.open() as fh:
        return [{key: value(v) for key, v in row.items()} for row in csv.DictReader(fh)]


# x axis of each sweep's panel: (column, label, log scale)
PANELS = {
    "rtt": ("rtt_ms", "emulated RTT (ms), unshaped", False),
    "depth": ("pipeline_depth", "pipeline_depth (KiB per server) at RTT 50 ms; stock at the left", True),
    "segment": ("segment_size", "segment size (KiB) at RTT 50 ms", True),
    "workers": ("workers", "workers at RTT 50 ms", False),
    "uploads": ("uploads", "concurrent uploads at RTT 50 ms", False),
    "bandwidth": ("bandwidth_mbit", "tbf link (Mbit/s) at RTT 50 ms", True),
    "tahoe": ("rtt_ms", "RTT (ms): stock Tahoe client vs ours", False),
}


def _series(row: dict[str, Any]) -> str:
    if row["mode"] != "default":
        return str(row["mode"])
    d = row["pipeline_depth"]
    label = d if isinstance(d, str) else f"{d // MIB} MiB" if d >= MIB else f"{d // KIB} KiB"
    return f"default ({label})" if row["sweep"] in ("bandwidth", "auto") else "default"


def _x(row: dict[str, Any], column: str) -> float:
    value = row[column]
    if column == "pipeline_depth":
        return 64.0 if isinstance(value, str) else value / KIB  # stock (stop-and-wait) at the left
    if column == "segment_size":
        return float(value) / KIB
    return float(value)


def plot_rows(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One panel per sweep (measured solid, predicted dashed), and all points against y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = [s for s in PANELS if any(r["sweep"] == s for r in rows)]
    cols = 4
    nrows = math.ceil((len(sweeps) + 1) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 4.2 * nrows), squeeze=False)
    flat = list(axes.flat)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(flat, sweeps, strict=False):
        column, label, log = PANELS[name]
        sel = [r for r in rows if r["sweep"] == name]
        for i, series in enumerate(dict.fromkeys(_series(r) for r in sel)):
            pts = sorted((r for r in sel if _series(r) == series), key=lambda r: _x(r, column))
            xs = [_x(r, column) for r in pts]
            colour = colours[i % len(colours)]
            ax.plot(xs, [r["measured_mb_per_s"] for r in pts], "o-", color=colour, label=f"{series} measured")
            pred = [
                (x, r["predicted_mb_per_s"])
                for x, r in zip(xs, pts, strict=True)
                if r["predicted_mb_per_s"] != ""
            ]
            if pred:
                ax.plot(*zip(*pred, strict=True), "x--", color=colour, label=f"{series} predicted")
        if log:
            ax.set_xscale("log", base=2)
        ax.set(xlabel=label, ylabel="MB/s of plaintext", title=f"{name} sweep")
        ax.legend(fontsize=7)
    scatter = flat[len(sweeps)]
    modelled = [r for r in rows if r["predicted_mb_per_s"] != ""]
    top = max(
        [r["measured_mb_per_s"] for r in modelled] + [r["predicted_mb_per_s"] for r in modelled] + [1.0]
    )
    for i, mode in enumerate(("default", "stock")):
        sel = [r for r in modelled if r["mode"] == mode]
        scatter.scatter(
            [r["predicted_mb_per_s"] for r in sel],
            [r["measured_mb_per_s"] for r in sel],
            color=colours[i],
            label=mode,
            s=14,
        )
    scatter.plot([0, top], [0, top], "k:", label="y = x")
    scatter.plot([0, top], [0, 0.8 * top], color="grey", lw=0.5, label="±20%")
    scatter.plot([0, top], [0, 1.2 * top], color="grey", lw=0.5)
    scatter.set_xscale("log")
    scatter.set_yscale("log")
    scatter.set(xlabel="predicted MB/s", ylabel="measured MB/s", title="all modelled points")
    scatter.legend(fontsize=7)
    for ax in flat[len(sweeps) + 1 :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure uploads under emulated RTT against tools/model.py.")
    parser.add_argument("--quick", action="store_true", help="reduced sweep, 16 MiB per point")
    parser.add_argument("--out", type=Path, required=True, help="directory for model.csv and model.png")
    parser.add_argument("--size", type=int, help="bytes per point")
    parser.add_argument(
        "--tahoe", type=Path, nargs="?", const=TAHOE_BIN, help="add the stock Tahoe client rows"
    )
    args = parser.parse_args(argv)
    summary = run(args.out, quick=args.quick, size=args.size, tahoe_bin=args.tahoe)
    print((args.out / "model.csv").read_text(), end="")
    print(summary)
    return 0


TAHOE_BIN = Path(__file__).resolve().parent.parent / ".cache" / "tahoe-venv" / "bin" / "tahoe"

if __name__ == "__main__":
    raise SystemExit(main())
