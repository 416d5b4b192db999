"""Download benchmark: ``get`` from a 10-server local grid, with every process's CPU, beside stock ``tahoe get``.

``python -m tools.bench_download [--sizes BYTES ...] [--quick] [--no-stock]`` starts a temporary embedded
grid (10 of our storage servers, k=3, N=10, the default configuration), uploads a file of each size,
reads its shares once so that every reader finds them in the page cache, then in one run:

| key | meaning |
|---|---|
| ``get_mb_per_s`` | plaintext MB/s of the download job (MB = 10^6 bytes), first share list to verified file |
| ``get_cli_mb_per_s`` | ``python -m uploader get CAP -o FILE``, process start to exit (what a user waits) |
| ``network_cpu_s_per_gb`` | the downloading (network) process's CPU-s per GB of plaintext (its threads included) |
| ``workers_cpu_s_per_gb`` | the worker processes' CPU-s per GB (from their rusage once reaped) |
| ``servers_cpu_s_per_gb`` | all 10 storage servers' CPU-s per GB, together |
| ``cpu_s_per_gb`` | the three above together |
| ``stock_tahoe_get_mb_per_s`` | stock Tahoe-LAFS 1.20's ``tahoe get CAP FILE`` through a stock client node whose servers are the same 10 (its ``servers.yaml`` from ``grid start``), CLI start to exit |
| ``stock_tahoe_cpu_s_per_gb`` | the stock client node + the ``tahoe`` CLI + the 10 servers, CPU-s per GB |
| ``get_daemon_cli_mb_per_s`` | the same command with ``UPLOADER_DAEMON`` naming a running daemon (``serve``) for this grid: the CLI asks the daemon, which downloads and streams the file back — how ``tahoe get`` works with its node |
| ``daemon_cpu_s_per_gb`` | the daemon and its workers + that CLI + the 10 servers, CPU-s per GB |
| ``get_cli_vs_stock_tahoe`` | ``get_cli_mb_per_s / stock_tahoe_get_mb_per_s``: the one-shot CLI (starts its own workers) |
| ``1MB_start_up`` | median seconds of 3 ``get``s of a 1 MB file: one-shot, through the daemon, stock ``tahoe get`` |
| ``get_daemon_cli_vs_stock_tahoe`` | ``get_daemon_cli_mb_per_s / stock_tahoe_get_mb_per_s``: both a CLI in front of a running node (the issue's target: at least 4) |

Everything runs on the same machine at the same time, so ratios are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench_upload import _grid, _write_file
from tools.daemon import running_daemon
from tools.measure import children_cpu_s, process_cpu_s, same_bytes, tree_cpu_s
from uploader import aio
from uploader.chk.caps import ChkCap
from uploader.commands.get import DOWNLOAD_SLOTS
from uploader.config import load_config
from uploader.download import FileSink
from uploader.gridclient import GridClient
from workers.base32 import b32encode

REPO = Path(__file__).resolve().parent.parent
TAHOE = REPO / ".cache" / "tahoe-venv" / "bin" / "tahoe"


def _config(grid: Path) -> Any:
    return load_config(grid / "uploader.toml", {"HOME": str(grid)}, {})


async def _upload(grid: Path, path: Path) -> ChkCap:
    async with GridClient(_config(grid)) as client:
        result = await client.upload(path)
    assert isinstance(result.cap, ChkCap)
    return result.cap


def _warm(grid: Path, cap: ChkCap) -> None:
    """Read every share file once: the servers wrote them out of the page cache (write-behind)."""
    si = b32encode(cap.storage_index)
    for path in grid.glob(f"server-*/storage/shares/{si[:2]}/{si}/*"):
        with path.open("rb") as fh:
            while fh.read(8 << 20):
                pass


async def _download(grid: Path, cap: ChkCap, out: Path, server_pids: list[int]) -> dict[str, float]:
    gb = cap.size / 1e9
    children0 = children_cpu_s()
    async with GridClient(_config(grid), slot_count=DOWNLOAD_SLOTS) as client:  # as `get` runs it
        servers0 = sum(process_cpu_s(p) for p in server_pids)
        cpu0, t0 = time.process_time(), time.perf_counter()
        sink = FileSink(out, 0)
        await client.download(cap, sink)
        sink.commit()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        servers = sum(process_cpu_s(p) for p in server_pids) - servers0
    workers = children_cpu_s() - children0
    return {
        "get_mb_per_s": round(cap.size / wall / 1e6, 1),
        "network_cpu_s_per_gb": round(cpu / gb, 2),
        "workers_cpu_s_per_gb": round(workers / gb, 2),
        "servers_cpu_s_per_gb": round(servers / gb, 2),
        "cpu_s_per_gb": round((cpu + workers + servers) / gb, 2),
    }


def _timed_get(grid: Path, cap: ChkCap, out: Path, daemon_url: str | None = None) -> float:
    """Seconds of ``python -m uploader get CAP -o OUT``, start to exit (through the daemon when given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADER_")}
    if daemon_url is not None:
        env["UPLOADER_DAEMON"] = daemon_url
    cmd = [
        sys.executable,
        "-m",
        "uploader",
        "get",
        str(cap),
        "-o",
        str(out),
        "--config",
        str(grid / "uploader.toml"),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def _cli_get(grid: Path, cap: ChkCap, out: Path) -> float:
    return round(cap.size / _timed_get(grid, cap, out) / 1e6, 1)


def _start_up(grid: Path, url: str, node: Any, tmp: Path) -> dict[str, Any]:
    """Median seconds of 3 ``get``s of a 1 MB file: what a command costs beyond moving bytes."""
    path, out = tmp / "small", tmp / "small-out"
    _write_file(path, 1_000_000)
    cap = aio.run(_upload(grid, path))
    row: dict[str, Any] = {
        "get_cli_s": round(statistics.median(_timed_get(grid, cap, out) for _ in range(3)), 3),
        "get_daemon_cli_s": round(statistics.median(_timed_get(grid, cap, out, url) for _ in range(3)), 3),
    }
    if node is not None and not isinstance(node, str):
        from tools.stock_tahoe import stock_get_rate

        runs = [stock_get_rate(TAHOE, grid, str(cap), out=out, client=node)["seconds"] for _ in range(3)]
        row["stock_tahoe_get_s"] = round(statistics.median(runs), 3)
    row["verified_equal"] = same_bytes(path, out)
    return row


def _daemon_get(
    grid: Path, url: str, daemon_pid: int, cap: ChkCap, out: Path, server_pids: list[int], source: Path
) -> dict[str, Any]:
    cpu0 = tree_cpu_s(daemon_pid) + children_cpu_s() + sum(process_cpu_s(p) for p in server_pids)
    wall = _timed_get(grid, cap, out, url)
    cpu = tree_cpu_s(daemon_pid) + children_cpu_s() + sum(process_cpu_s(p) for p in server_pids) - cpu0
    return {
        "get_daemon_cli_mb_per_s": round(cap.size / wall / 1e6, 1),
        "daemon_cpu_s_per_gb": round(cpu / (cap.size / 1e9), 2),
        "daemon_verified_equal": same_bytes(source, out),
    }


def run(sizes: list[int] | None = None, quick: bool = False, stock: bool = True) -> dict[str, Any]:
    sizes = sizes or ([16 * 2**20] if quick else [256 * 2**20, 2**30])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        grid = Path(tmp) / "grid"
        _grid("start", "--dir", str(grid), "--servers", "10")
        node = None
        stack = contextlib.ExitStack()
        try:
            pids = [s["pid"] for s in json.loads((grid / "grid.json").read_text())["servers"]]
            (Path(tmp) / "daemon").mkdir()
            url, daemon = stack.enter_context(running_daemon(grid, Path(tmp) / "daemon"))
            if stock and not quick:
                node = _stock_node(grid, Path(tmp))
            for size in sizes:
                path, out = Path(tmp) / f"file-{size}", Path(tmp) / "out"
                _write_file(path, size)
                cap = aio.run(_upload(grid, path))
                os.sync()  # the upload's shares on disk: no writeback competes with the downloads
                _warm(grid, cap)
                row: dict[str, Any] = aio.run(_download(grid, cap, out, pids))
                row["verified_equal"] = same_bytes(path, out)
                out.unlink()
                row["get_cli_mb_per_s"] = _cli_get(grid, cap, out)
                out.unlink()
                row.update(_daemon_get(grid, url, daemon.pid, cap, out, pids, path))
                out.unlink()
                if isinstance(node, str):
                    row["stock_tahoe_get"] = node
                elif node is not None:
                    row.update(_stock_get(grid, node, cap, out, pids, path))
                    row["get_cli_vs_stock_tahoe"] = round(
                        row["get_cli_mb_per_s"] / row["stock_tahoe_get_mb_per_s"], 2
                    )
                    row["get_daemon_cli_vs_stock_tahoe"] = round(
                        row["get_daemon_cli_mb_per_s"] / row["stock_tahoe_get_mb_per_s"], 2
                    )
                    # (no ratio of the in-process job to stock's CLI: that would credit us with the
                    # tahoe CLI's start-up; the two CLI ratios above are like with like)
                    out.unlink()
                results[f"{size / 2**20:.0f}MiB"] = row
                path.unlink()
            results["1MB_start_up"] = _start_up(grid, url, node, Path(tmp))
        finally:
            stack.close()
            if node is not None and not isinstance(node, str):
                node.stop()
            _grid("stop", "--dir", str(grid))
    return results


def _stock_node(grid: Path, tmp: Path) -> Any:
    try:
        from tools.stock_tahoe import client_for_grid
    except ImportError:  # pragma: no cover - a checkout without the stock helpers
        return "tools.stock_tahoe is not available"
    if not TAHOE.exists():
        return "no stock Tahoe venv: run `make tahoe`"
    return client_for_grid(TAHOE, grid, tmp / "stock-client")


def _stock_get(
    grid: Path, node: Any, cap: ChkCap, out: Path, server_pids: list[int], source: Path
) -> dict[str, Any]:
    from tools.stock_tahoe import stock_get_rate

    gb = cap.size / 1e9
    node0, children0 = process_cpu_s(node.pid), children_cpu_s()
    servers0 = sum(process_cpu_s(p) for p in server_pids)
    got = stock_get_rate(TAHOE, grid, str(cap), out=out, client=node)
    cpu = (process_cpu_s(node.pid) - node0) + (children_cpu_s() - children0)
    cpu += sum(process_cpu_s(p) for p in server_pids) - servers0
    return {
        "stock_tahoe_get_mb_per_s": got["mb_per_s"],
        "stock_tahoe_cpu_s_per_gb": round(cpu / gb, 2),
        "stock_tahoe_verified_equal": same_bytes(source, out),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="file sizes in bytes (default 256 MiB and 1 GiB)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--no-stock", action="store_true", help="skip stock Tahoe's tahoe get")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.sizes, args.quick, not args.no_stock), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
