"""``cap FILE…``: the cap each file would get, with no network (a full encode without the upload)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from uploader import aio
from uploader.cli import add_config_flags, emit, report_error
from uploader.config import Config
from uploader.encoding import encode_file_pooled, slot_size_for
from uploader.errors import UploaderError
from uploader.progress import ProgressBar
from uploader.secrets import convergence_secret
from uploader.supervisor import WorkerPool
from workers.geometry import EncodingParams
from workers.text import printable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cap",
        help="print the cap FILE would get (no network)",
        description="Print the CHK (or LIT) read cap each FILE would get with these encoding parameters. "
        "Streams the file twice (key pass, encode pass); nothing is uploaded.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_config_flags(p)
    p.set_defaults(run=run, holds_interrupts=True)  # released by aio.run (uploader.interrupts)


def run(args: argparse.Namespace, config: Config) -> int:
    return aio.run(_run(args, config))


async def _run(args: argparse.Namespace, config: Config) -> int:
    params = EncodingParams(config.shares_needed, config.shares_total, config.max_segment_size)
    secret = convergence_secret(config)
    worst = 0
    pool = WorkerPool(
        config.workers,
        slot_count=config.window + 2 * config.workers,
        slot_size=slot_size_for(params),
        backend=config.erasure_backend,
    )
    await pool.start()
    try:
        for path in args.files:
            worst = await _one(args, config, pool, path, params, secret) or worst
    finally:
        await pool.close()
    return worst


async def _one(
    args: argparse.Namespace,
    config: Config,
    pool: WorkerPool,
    path: Path,
    params: EncodingParams,
    secret: bytes,
) -> int:
    start = time.monotonic()
    try:
        size = path.stat().st_size if path.exists() else 0
        bar = ProgressBar(path.name, 2 * size)
        try:
            cap, _ = await encode_file_pooled(pool, path, params, secret, window=config.window, progress=bar)
        finally:
            bar.close()
    except UploaderError as exc:
        return report_error(args, exc, file=str(path))
    seconds = time.monotonic() - start
    if args.json:
        emit({"file": str(path), "cap": str(cap), "size": cap.size, "seconds": round(seconds, 6)})
    elif len(args.files) > 1:
        print(printable(f"{path}: {cap}"))
    else:
        print(cap)
    return 0
