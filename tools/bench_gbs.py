"""The GBS client's send throughput and CPU cost: ``python -m tools.bench_gbs [--quick]``.

Starts one of our storage servers (``python -m uploader storage``, a separate process) and sends it
share bytes through ``uploader.gbs.StorageClient`` the way an upload does: ``parallel`` shares,
written in ``chunk``-byte PATCHes, each PATCH a list of block-sized buffers sent without joining,
``in_flight`` PATCHes outstanding at once on one client (its pooled TLS connections). malloc is
tuned first, as every process of ours does. Reports:

| key                     | meaning                                                              |
|-------------------------|----------------------------------------------------------------------|
| ``mb_per_s``            | share bytes sent per second of wall time (MB = 10^6 bytes)           |
| ``client_cpu_s_per_gb`` | CPU seconds (user + system) of the client's event-loop thread per    |
|                         | 10^9 share bytes: TLS encryption, HTTP, the client's own Python      |
| ``client_process_cpu_s_per_gb`` | the whole client process, set-up and allocation included    |
| ``server_cpu_s_per_gb`` | the storage server's CPU per 10^9 bytes, for context                  |
| ``server``              | which server received: ``ours`` (``uploader storage``)                |

The server shares the machine's cores with the client, so ``mb_per_s`` is a lower bound on what
the client alone can send; ``client_cpu_s_per_gb`` is the figure that transfers. It is per GB of
*share bytes*: ARCHITECTURE.md's budget (~2.7 CPU-s for HTTPS sending, tuned malloc) is per GB of
plaintext, which at (3,10) means N/k = 3.33 GB of share bytes — compare 3.33 x this figure with it
(``client_cpu_s_per_plaintext_gb_3_of_10``).
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

import uvloop

from tools.measure import process_cpu_s, self_cpu_s, storage_server
from uploader.gbs import StorageClient
from workers.malloc import tune_malloc

MB = 10**6
BLOCK = 349_526  # a block of a 1 MiB segment at k = 3: what one PATCH coalesces


async def _send(nurl: str, share_size: int, parallel: int, chunk: int, in_flight: int) -> tuple[float, float]:
    """Upload ``parallel`` shares; return (wall seconds, client thread CPU seconds)."""
    pool = memoryview(os.urandom(chunk))
    blocks = [pool[i : i + BLOCK] for i in range(0, chunk, BLOCK)]
    async with StorageClient(nurl, max_connections=in_flight) as client:
        gate = asyncio.Semaphore(in_flight)
        secrets = [(os.urandom(16), os.urandom(20)) for _ in range(parallel)]
        for si, upload in secrets:
            alloc = await client.allocate(si, [0], share_size, os.urandom(32), os.urandom(32), upload)
            if alloc.allocated != {0}:
                raise RuntimeError(f"the server did not allocate a {share_size}-byte share")
        completed = 0

        async def write(si: bytes, upload: bytes, offset: int) -> None:
            nonlocal completed
            size = min(chunk, share_size - offset)
            parts = blocks if size == chunk else [pool[:size]]
            try:
                if await client.write(si, 0, offset, parts, upload) == ():
                    completed += 1
            finally:
                gate.release()

        tasks = []
        cpu0, t0 = time.thread_time(), time.perf_counter()
        for offset in range(0, share_size, chunk):
            for si, upload in secrets:
                await gate.acquire()
                tasks.append(asyncio.create_task(write(si, upload, offset)))
        await asyncio.gather(*tasks)
        seconds, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        if completed != parallel:
            raise RuntimeError(f"{completed} of {parallel} shares completed")
    return seconds, cpu


def run(
    quick: bool = False,
    size: int = 1024 * 2**20,
    parallel: int = 4,
    chunk: int = 3 * BLOCK,
    in_flight: int = 8,
) -> dict[str, Any]:
    """Send ``size`` share bytes (``parallel`` shares) to one fresh server of ours; see the table."""
    if quick:
        size = min(size, 16 * 2**20)
    malloc_tuned = tune_malloc()
    share_size = max(chunk, size // parallel // chunk * chunk)
    with (
        tempfile.TemporaryDirectory(prefix="bench-gbs-") as tmp,
        storage_server(Path(tmp) / "server") as (pid, nurl),
    ):
        uvloop.run(_send(nurl, chunk, 1, chunk, 1))  # warm-up: imports, TLS, first files
        server0, self0 = process_cpu_s(pid), self_cpu_s()
        seconds, client_cpu = uvloop.run(_send(nurl, share_size, parallel, chunk, in_flight))
        server_cpu = process_cpu_s(pid) - server0
        process_cpu = self_cpu_s() - self0
    total = share_size * parallel
    gb = total / 10**9
    return {
        "server": "ours",
        "bytes": total,
        "parallel_shares": parallel,
        "chunk_bytes": chunk,
        "buffers_per_write": -(-chunk // BLOCK),
        "in_flight": in_flight,
        "malloc_tuned": malloc_tuned,
        "seconds": round(seconds, 3),
        "mb_per_s": round(total / MB / seconds, 1),
        "client_cpu_s_per_gb": round(client_cpu / gb, 3),
        "client_cpu_s_per_plaintext_gb_3_of_10": round(client_cpu / gb * 10 / 3, 3),
        "client_cpu_share": round(client_cpu / seconds, 3),
        "client_process_cpu_s_per_gb": round(process_cpu / gb, 3),
        "server_cpu_s_per_gb": round(server_cpu / gb, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The GBS client's send throughput and CPU per GB.")
    parser.add_argument("--size", type=int, default=1024 * 2**20, help="share bytes to send (default 1 GiB)")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent shares (default 4)")
    parser.add_argument("--chunk", type=int, default=3 * BLOCK, help="bytes per PATCH (default ~1 MiB)")
    parser.add_argument("--in-flight", type=int, default=8, help="PATCHes outstanding (default 8)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (16 MiB)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.size, args.parallel, args.chunk, args.in_flight)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
