"""Upload benchmark: ``put`` to a 10-server local grid, with the CPU cost of every process, side by side.

``python -m tools.bench_upload [--sizes BYTES ...] [--quick]`` starts a temporary embedded grid
(10 of our storage servers, k=3, N=10, the default configuration) and, for each size, in one run:

| key | meaning |
|---|---|
| ``put_mb_per_s`` | plaintext MB/s of the upload (MB = 10^6 bytes), key pass to last 201 |
| ``network_cpu_s_per_gb`` | the uploading (network) process's own CPU-s per GB of plaintext |
| ``workers_cpu_s_per_gb`` | the worker processes' CPU-s per GB (from their rusage once reaped) |
| ``servers_cpu_s_per_gb`` | all 10 storage servers' CPU-s per GB, together |
| ``compute_only_mb_per_s`` | the ``cap`` pipeline on the same pool: the same encoding, no network |
| ``stock_node_put_mb_per_s`` | stock Tahoe-LAFS 1.20: ``PUT /uri`` of the same file to a running stock client node of the same servers (what ``tahoe put`` hands over, without the CLI's start-up) |
| ``put_vs_stock_node`` | ``put_mb_per_s`` / ``stock_node_put_mb_per_s``: the two uploads, neither paying start-up |
| ``put_daemon_cli_mb_per_s`` | ``python -m uploader put FILE`` through a running daemon of ours, start to exit |
| ``stock_tahoe_put_mb_per_s`` | ``tahoe put FILE`` through the running stock client node, start to exit |
| ``put_daemon_cli_vs_tahoe_put`` | the two commands, each handing the file to its running service |
| ``4_concurrent`` | 4 files of a quarter of the first size, uploaded at once on one client, against one upload |
| ``4_concurrent_same_size`` | 4 files of the first size at once, against one upload of that size (not with ``--quick``) |

Everything runs on the same machine at the same time of day, so ratios are what to compare, and
only like with like: ``put_mb_per_s`` (in-process, pool and connections already up) is set against
stock's node, never against ``tahoe put``'s start-to-exit time (that would credit us with the
~0.8 s the ``tahoe`` CLI takes to start). Before each measurement the servers' shares are wiped
and the page cache written back, so no upload deduplicates against another or pays another's
writeback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.measure import children_cpu_s, process_cpu_s
from uploader import aio
from uploader.config import load_config
from uploader.encoding import encode_file_pooled
from uploader.gridclient import GridClient

REPO = Path(__file__).resolve().parent.parent


def _write_file(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            piece = chunk[: min(len(chunk), left)]
            fh.write(piece)
            left -= len(piece)
            chunk = chunk[1:] + chunk[:1]  # vary the data: no two segments alike


def _grid(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "uploader", "grid", *args], cwd=REPO, check=True, capture_output=True
    )


async def _measure(
    config_path: Path, path: Path, server_pids: list[int], overrides: dict[str, Any] | None = None
) -> dict[str, float]:
    """One upload and one compute-only pass; ``overrides`` are settings as if given as flags."""
    config = load_config(config_path, {**os.environ, "HOME": str(config_path.parent)}, overrides or {})
    size = path.stat().st_size
    out: dict[str, float] = {}
    children0 = children_cpu_s()
    async with GridClient(config) as client:
        servers0 = sum(process_cpu_s(p) for p in server_pids)
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = await client.upload(path)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        servers = sum(process_cpu_s(p) for p in server_pids) - servers0
        t1 = time.perf_counter()
        await encode_file_pooled(client.pool, path, client.params, client.secret, window=config.window)
        compute = time.perf_counter() - t1
    workers = children_cpu_s() - children0  # includes the compute-only pass: subtract its share below
    gb = size / 1e9
    out["put_mb_per_s"] = round(size / wall / 1e6, 1)
    out["network_cpu_s_per_gb"] = round(cpu / gb, 2)
    out["workers_cpu_s_per_gb_incl_compute_pass"] = round(workers / gb, 2)
    out["workers_cpu_s_per_gb"] = round(workers / 2 / gb, 2)  # two equal encodes of the same file
    out["servers_cpu_s_per_gb"] = round(servers / gb, 2)
    out["compute_only_mb_per_s"] = round(size / compute / 1e6, 1)
    out["put_vs_compute_only"] = round(compute / wall, 2)
    out["share_bytes_sent"] = result.share_bytes_sent
    return out


async def _concurrent(config_path: Path, paths: list[Path]) -> float:
    """Aggregate plaintext MB/s of uploading ``paths`` all at once on one client."""
    config = load_config(config_path, {**os.environ, "HOME": str(config_path.parent)}, {})
    async with GridClient(config, max_uploads=len(paths)) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client.upload(p) for p in paths))
        wall = time.perf_counter() - t0
    return sum(p.stat().st_size for p in paths) / wall / 1e6


def _wipe_shares(grid: Path) -> int:
    """Delete the servers' complete shares (no upload is running), so each upload sends everything
    and the disk and page cache hold only what the next measurement writes; how many share files."""
    gone = 0
    for prefix in grid.glob("server-*/storage/shares/*"):
        if prefix.name != "incoming":
            gone += sum(1 for p in prefix.rglob("*") if p.is_file())
            shutil.rmtree(prefix)
    return gone


def run(sizes: list[int] | None = None, quick: bool = False, stock: bool = True) -> dict[str, Any]:
    sizes = sizes or ([16 * 2**20] if quick else [256 * 2**20, 2**30])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        grid = Path(tmp) / "grid"
        _grid("start", "--dir", str(grid), "--servers", "10")
        try:
            pids = [s["pid"] for s in json.loads((grid / "grid.json").read_text())["servers"]]
            for size in sizes:
                path = Path(tmp) / f"file-{size}"
                _write_file(path, size)
                _fresh(grid)  # each measurement starts with no writeback of the one before competing
                row = aio.run(_measure(grid / "uploader.toml", path, pids))
                if stock and not quick:
                    row.update(_stock(grid, path))
                    row.update(_daemon_cli(grid, path, Path(tmp) / f"daemon-{size}"))
                    if row.get("stock_node_put_mb_per_s"):
                        row["put_vs_stock_node"] = round(
                            row["put_mb_per_s"] / row["stock_node_put_mb_per_s"], 2
                        )
                    if row.get("stock_tahoe_put_mb_per_s") and row.get("put_daemon_cli_mb_per_s"):
                        row["put_daemon_cli_vs_tahoe_put"] = round(
                            row["put_daemon_cli_mb_per_s"] / row["stock_tahoe_put_mb_per_s"], 2
                        )
                results[f"{size / 2**20:.0f}MiB"] = row
                path.unlink()
            # Many uploads at once share one pool, read two ways against one upload of sizes[0]:
            # 4 files of a quarter size (the same bytes in all: each file's fixed costs count 4x),
            # and 4 files of the same size (4 uploads like the one, at once).
            first = results[f"{sizes[0] / 2**20:.0f}MiB"]["put_mb_per_s"]
            for key, each in (("4_concurrent", sizes[0] // 4), ("4_concurrent_same_size", sizes[0])):
                if each != sizes[0] // 4 and quick:
                    continue
                paths = [Path(tmp) / f"part-{i}" for i in range(4)]
                for p in paths:
                    _write_file(p, each)
                if not _wipe_shares(grid):  # the uploads before left shares: finding none is a bug here
                    raise RuntimeError(f"no share files under {grid}/server-*/storage/shares to wipe")
                os.sync()
                together = aio.run(_concurrent(grid / "uploader.toml", paths))
                for p in paths:
                    p.unlink()
                results[key] = {
                    "files": 4,
                    "file_mb": round(each / 1e6, 1),
                    "aggregate_mb_per_s": round(together, 1),
                    "vs_one_upload": round(together / first, 2),
                }
        finally:
            _grid("stop", "--dir", str(grid))
    return results


def _fresh(grid: Path) -> None:
    """No shares on the servers (nothing to deduplicate against), nothing left to write back."""
    _wipe_shares(grid)
    os.sync()


def _stock(grid: Path, path: Path) -> dict[str, Any]:
    """Stock Tahoe's upload of ``path`` through one running stock client node: ``tahoe put`` (start
    to exit) and ``PUT /uri`` to the node (no CLI start-up), each onto servers wiped before it."""
    from tools.stock_tahoe import client_for_grid

    tahoe = REPO / ".cache" / "tahoe-venv" / "bin" / "tahoe"
    if not tahoe.exists():
        return {"stock_tahoe_put": "no stock Tahoe venv: run `make tahoe`"}
    size = path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="stock-client-") as tmp:
        node = client_for_grid(tahoe, grid, Path(tmp) / "client")
        try:
            _fresh(grid)
            t0 = time.perf_counter()
            node.put(path)
            cli_s = time.perf_counter() - t0
            _fresh(grid)
            t0 = time.perf_counter()
            node.put_http(path)
            node_s = time.perf_counter() - t0
        finally:
            node.stop()
    return {
        "stock_tahoe_put_mb_per_s": round(size / cli_s / 1e6, 2),
        "stock_node_put_mb_per_s": round(size / node_s / 1e6, 2),
    }


def _daemon_cli(grid: Path, path: Path, work: Path) -> dict[str, Any]:
    """Our ``put`` command through a running daemon of ours, start to exit (the daemon spools the
    body and uploads it, as a stock node does with ``tahoe put``'s)."""
    from tools.daemon import running_daemon

    work.mkdir(parents=True, exist_ok=True)
    with running_daemon(grid, work) as (url, _):
        _fresh(grid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADER_")}
        env |= {"UPLOADER_DAEMON": url, "HOME": str(work)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "uploader", "put", str(path)], cwd=REPO, env=env, check=True,
                       capture_output=True)  # fmt: skip
        seconds = time.perf_counter() - t0
    return {"put_daemon_cli_mb_per_s": round(path.stat().st_size / seconds / 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="file sizes in bytes (default 256 MiB and 1 GiB)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--no-stock", action="store_true", help="skip stock Tahoe's tahoe put")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.sizes, args.quick, not args.no_stock), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
