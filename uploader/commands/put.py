"""``put FILE…``: upload files (concurrently) and print each cap."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

from uploader import aio, daemonclient
from uploader.cli import add_config_flags, report_error
from uploader.config import Config
from uploader.errors import LocalIOError, UploaderError
from uploader.gridclient import GridClient
from uploader.progress import ProgressBar


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "put",
        help="upload files and print their caps",
        description="Upload each FILE to the grid (several files run concurrently on one worker pool) and print "
        "its read cap. Without --config, the configuration `grid start` wrote for the embedded local grid is used.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_config_flags(p)
    p.add_argument(
        "--pipeline-depth", metavar="BYTES", help='bytes in flight per server, or "auto" (the default)'
    )
    p.add_argument("--window", type=int, metavar="SEGMENTS", help="segments in flight per file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    return aio.run(_run(args, config))


async def _run(args: argparse.Namespace, config: Config) -> int:
    if config.daemon:
        return await _run_daemon(args, config.daemon)
    total = 0
    for path in args.files:
        with contextlib.suppress(OSError):
            total += 2 * path.stat().st_size
    bar = ProgressBar(f"{len(args.files)} file(s)" if len(args.files) > 1 else args.files[0].name, total)
    worst = 0
    async with GridClient(config, max_uploads=min(len(args.files), 4)) as grid:
        limit = asyncio.Semaphore(4)

        async def one(path: Path) -> int:
            async with limit:
                try:
                    if not path.is_file():
                        raise LocalIOError(f"cannot read {path}: not a regular file or does not exist")
                    result = await grid.upload(path, bar)
                except UploaderError as exc:
                    return report_error(args, exc, file=str(path))
            if args.json:
                print(
                    json.dumps(
                        {
                            "file": str(path),
                            "cap": str(result.cap),
                            "size": result.size,
                            "seconds": round(result.seconds, 3),
                            "mb_per_s": round(result.size / max(result.seconds, 1e-9) / 1e6, 2),
                        }
                    ),
                    flush=True,
                )
            elif len(args.files) > 1:
                print(f"{path}: {result.cap}", flush=True)
            else:
                print(result.cap, flush=True)
            return 0

        try:
            codes = await asyncio.gather(*(one(p) for p in args.files))
        finally:
            bar.close()
    for code in codes:
        worst = worst or code
    if bar.enabled and bar.done:
        seconds = max(time.monotonic() - bar.start, 1e-9)
        print(
            f"uploaded {total / 2e6:.1f} MB in {seconds:.1f} s ({total / 2e6 / seconds:.1f} MB/s)",
            file=sys.stderr,
        )
    return worst


async def _run_daemon(args: argparse.Namespace, url: str) -> int:
    """Each file through the daemon's ``PUT /uri`` (4 at a time); output as without a daemon."""
    limit = asyncio.Semaphore(4)

    async def one(path: Path) -> int:
        async with limit:
            try:
                if not path.is_file():
                    raise LocalIOError(f"cannot read {path}: not a regular file or does not exist")
                cap, size, seconds = await daemonclient.put(url, path)
            except UploaderError as exc:
                return report_error(args, exc, file=str(path))
        if args.json:
            rate = round(size / max(seconds, 1e-9) / 1e6, 2)
            print(
                json.dumps(
                    {
                        "file": str(path),
                        "cap": cap,
                        "size": size,
                        "seconds": round(seconds, 3),
                        "mb_per_s": rate,
                    }
                ),
                flush=True,
            )
        elif len(args.files) > 1:
            print(f"{path}: {cap}", flush=True)
        else:
            print(cap, flush=True)
        return 0

    codes = await asyncio.gather(*(one(p) for p in args.files))
    return next((c for c in codes if c), 0)
