"""Encoding benchmarks: the single-process segment codec, and the worker pool against it.

``python -m tools.bench_encode [--size BYTES] [--quick]`` prints, from one run, side by side:

- single-process per-segment encode MB/s (AES-CTR + zfec + hashes) for (3,10) at 128 KiB and 1 MiB;
- the ``cap`` pipeline (key pass + encode + trees) on a file: in-line loop vs the pool with W=1, W=2;
- encoding alone (the segments of the same file, no key pass): in-line loop vs the pool, W=1, W=2;
- the network process's own CPU-seconds per GB of plaintext spent receiving blocks from the
  workers, through shared-memory slots and through inline pipe frames.

MB = 10^6 bytes. Figures are ratios from one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from uploader.encoding import encode_file_inline, encode_file_pooled, slot_size_for
from uploader.supervisor import WorkerPool
from workers.geometry import EncodingParams, Geometry
from workers.segment import encode_segment

SECRET = b"bench-convergence-secret"


def segment_rate(segment_size: int, total: int) -> float:
    """MB/s of plaintext through encode_segment in this process."""
    data = os.urandom(segment_size)
    key = os.urandom(16)
    count = max(total // segment_size, 4)
    start = time.perf_counter()
    for i in range(count):
        encode_segment(data, key, i * segment_size, 3, 10)
    return count * segment_size / (time.perf_counter() - start) / 1e6


async def _pool_cap(path: Path, params: EncodingParams, workers: int, window: int) -> float:
    async with WorkerPool(workers, slot_count=window + 2 * workers, slot_size=slot_size_for(params)) as pool:
        start = time.perf_counter()
        await encode_file_pooled(pool, path, params, SECRET, window=window)
        return time.perf_counter() - start


async def _receive_cpu(path: Path, params: EncodingParams, workers: int, slots: bool) -> tuple[float, float]:
    """(network-process CPU-s per GB of plaintext, wall s) for encode jobs whose results are dropped."""
    size = path.stat().st_size
    g = Geometry.from_params(params, size)
    window = 8
    kw: dict[str, Any] = {
        "slot_count": window + 2 * workers,
        "slot_size": slot_size_for(params) if slots else 0,
    }
    async with WorkerPool(workers, **kw) as pool:
        key = os.urandom(16)
        sem = asyncio.Semaphore(window)

        async def one(seg: int) -> None:
            async with sem:
                result = await pool.encode(
                    "bench",
                    seg,
                    key,
                    g.segment_offset(seg),
                    g.segment_length(seg),
                    g.k,
                    g.n,
                    source=str(path),
                )
                result.release()

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(s) for s in range(g.num_segments)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return cpu / (size / 1e9), wall


def run(size: int, quick: bool = False) -> dict[str, Any]:
    seg_total = 16 * 2**20 if quick else 256 * 2**20
    out: dict[str, Any] = {
        "segment_encode_mb_per_s_128KiB": round(segment_rate(128 * 1024, seg_total), 1),
        "segment_encode_mb_per_s_1MiB": round(segment_rate(1024 * 1024, seg_total), 1),
    }
    params = EncodingParams(3, 10, 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="uploader-bench-") as tmp:
        path = Path(tmp) / "data"
        with path.open("wb") as fh:
            chunk = os.urandom(1 << 20)
            for _ in range(size // len(chunk)):
                fh.write(chunk)
            fh.write(chunk[: size % len(chunk)])
        t0 = time.perf_counter()
        encode_file_inline(path, params, SECRET)
        inline_s = time.perf_counter() - t0
        w1 = asyncio.run(_pool_cap(path, params, 1, 8))
        w2 = asyncio.run(_pool_cap(path, params, 2, 8))
        t0 = time.perf_counter()
        g = Geometry.from_params(params, size)
        key = os.urandom(16)
        with path.open("rb") as fh:  # the in-line loop over the same segments, no key pass
            for seg in range(g.num_segments):
                encode_segment(fh.read(g.segment_length(seg)), key, g.segment_offset(seg), 3, 10)
        inline_encode_s = time.perf_counter() - t0
        _, w1_encode_s = asyncio.run(_receive_cpu(path, params, 1, slots=True))
        slots_cpu, w2_encode_s = asyncio.run(_receive_cpu(path, params, 2, slots=True))
        frames_cpu, _ = asyncio.run(_receive_cpu(path, params, 2, slots=False))
    mb = size / 1e6
    out.update(
        {
            "file_mb": round(mb, 1),
            "cap_inline_mb_per_s": round(mb / inline_s, 1),
            "cap_pool_w1_mb_per_s": round(mb / w1, 1),
            "cap_pool_w2_mb_per_s": round(mb / w2, 1),
            "pool_w1_vs_inline": round(inline_s / w1, 2),
            "pool_w2_vs_inline": round(inline_s / w2, 2),
            "encode_only_inline_mb_per_s": round(mb / inline_encode_s, 1),
            "encode_only_pool_w1_mb_per_s": round(mb / w1_encode_s, 1),
            "encode_only_pool_w2_mb_per_s": round(mb / w2_encode_s, 1),
            "encode_only_w2_vs_inline": round(inline_encode_s / w2_encode_s, 2),
            "network_receive_cpu_s_per_gb_slots": round(slots_cpu, 3),
            "network_receive_cpu_s_per_gb_frames": round(frames_cpu, 3),
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=256 * 2**20, help="file size for the pipeline runs (bytes)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    args = parser.parse_args(argv)
    size = 8 * 2**20 if args.quick else args.size
    print(json.dumps(run(size, args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
