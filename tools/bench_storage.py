"""One storage server's receive throughput and CPU cost: ``python -m tools.bench_storage [--quick]``.

Starts ``python -m uploader storage`` in a temporary directory (a separate process, so its CPU
time can be read from /proc), then pushes share bytes at it the way an uploader does: ``parallel``
concurrent shares over HTTPS, each allocated and written front to back in ``chunk``-byte PATCHes,
the last one completing the share (fsync and rename included). Reports:

| key                     | meaning                                                          |
|-------------------------|------------------------------------------------------------------|
| ``mb_per_s``            | share bytes received per second of wall time (MB = 10^6 bytes)   |
| ``server_cpu_s_per_gb`` | server CPU seconds (user + system) per 10^9 share bytes          |
| ``server_cpu_share``    | server CPU seconds / wall seconds (1.0 = one core busy)           |
| ``client_cpu_s_per_gb`` | the load generator's own CPU cost, for context                   |

The client shares the machine's cores with the server, so ``mb_per_s`` is a lower bound on what
the server alone can take; ``server_cpu_s_per_gb`` is the figure that transfers to other machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from tools.measure import process_cpu_s, self_cpu_s, storage_server
from uploader.wire import protocol as wire
from uploader.wire.nurl import Nurl, parse_nurl

MB = 10**6


async def _push(nurl: Nurl, share_size: int, parallel: int, chunk: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a benchmark of our own server on loopback
    auth = {"Authorization": wire.build_authorization(nurl.swissnum), "Accept": wire.CBOR_MIME_TYPE}
    payload = os.urandom(chunk)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=parallel + 2)
    async with aiohttp.ClientSession(nurl.base_url, connector=connector, headers=auth) as http:

        async def one_share() -> None:
            si = os.urandom(16)
            upload = os.urandom(20)
            secrets = {wire.Secret.LEASE_RENEW: os.urandom(32), wire.Secret.LEASE_CANCEL: os.urandom(32)}
            secrets[wire.Secret.UPLOAD] = upload
            headers = [*wire.build_secret_headers(secrets), ("Content-Type", wire.CBOR_MIME_TYPE)]
            body = wire.build_allocate_request([0], share_size)
            async with http.post(wire.allocate_path(si), data=body, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200 or wire.parse_allocate_response(body).allocated != {0}:
                    raise RuntimeError(f"allocate failed: HTTP {resp.status} {body[:200]!r}")
            write_headers = wire.build_secret_headers({wire.Secret.UPLOAD: upload})
            for offset in range(0, share_size, chunk):
                data = payload[: min(chunk, share_size - offset)]
                h = [
                    *write_headers,
                    ("Content-Range", wire.format_content_range(offset, offset + len(data) - 1)),
                ]
                async with http.patch(wire.share_path(si, 0), data=data, headers=h) as resp:
                    await resp.read()
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"write failed: HTTP {resp.status}")

        await asyncio.gather(*(one_share() for _ in range(parallel)))


def run(
    size: int = 512 * 2**20, quick: bool = False, parallel: int = 4, chunk: int = 2**20
) -> dict[str, Any]:
    """Push ``size`` share bytes (in ``parallel`` shares) at one fresh server; see the module table."""
    if quick:
        size = min(size, 8 * 2**20)
    share_size = max(1, size // parallel)
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        directory = Path(tmp) / "server"
        with storage_server(directory) as (pid, nurl_text):
            nurl = parse_nurl(nurl_text)
            uvloop.run(_push(nurl, 4096, 1, 4096))  # warm-up: TLS, imports, first allocation
            cpu0, self0, t0 = process_cpu_s(pid), self_cpu_s(), time.perf_counter()
            uvloop.run(_push(nurl, share_size, parallel, chunk))
            seconds = time.perf_counter() - t0
            server_cpu = process_cpu_s(pid) - cpu0
            client_cpu = self_cpu_s() - self0
    total = share_size * parallel
    gb = total / 10**9
    return {
        "bytes": total,
        "parallel_shares": parallel,
        "chunk_bytes": chunk,
        "seconds": round(seconds, 3),
        "mb_per_s": round(total / MB / seconds, 1),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_s_per_gb": round(server_cpu / gb, 3),
        "server_cpu_share": round(server_cpu / seconds, 3),
        "client_cpu_s_per_gb": round(client_cpu / gb, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One storage server's receive throughput and CPU per GB.")
    parser.add_argument("--size", type=int, default=512 * 2**20, help="share bytes to push (default 512 MiB)")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent shares (default 4)")
    parser.add_argument("--chunk", type=int, default=2**20, help="bytes per PATCH (default 1 MiB)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (8 MiB)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.size, args.quick, args.parallel, args.chunk), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
