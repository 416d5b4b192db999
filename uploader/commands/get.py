"""``get CAP [-o FILE]``: download a file (or a byte range of it), every hash checked.

Without ``-o`` the plaintext goes to stdout, as ``tahoe get`` does; each segment is checked against
the crypttext hash tree before it is written, and the whole-file hash at the end (a mismatch there
exits 5 after the bytes went out, and says so). With ``-o FILE`` the workers write a temp file beside
FILE, renamed into place only after every check passed; a failed download leaves FILE untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uploader import interrupts
from uploader.chk.caps import CapError, ChkCap, LitCap, parse_read_cap
from uploader.cli import add_config_flags, emit, refuse_own_settings, report_error, whole_number
from uploader.config import Config
from uploader.errors import LocalIOError, Terminated, UploaderError, UsageError
from uploader.progress import ProgressBar
from workers.base32 import b32encode

if TYPE_CHECKING:
    from uploader.download import DownloadResult
    from uploader.prespawn import Spawned

# The network stack (aiohttp, the GBS client, the pool) is imported inside the functions that use
# it: `run` starts the workers first, and they boot while this process imports it (~0.2 s).

# Shared-memory slots for one download: enough for a window of small segments (a slot holds one
# segment's k blocks; its memory is touched only when used, so unused slots cost address space only).
DOWNLOAD_SLOTS = 128


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "get",
        help="download a file by its cap",
        description="Download the file a read cap (URI:CHK:… or URI:LIT:…) names, checking every hash, to FILE "
        "or to stdout. Corrupt or missing shares are replaced by others (and corrupt ones reported to their "
        "servers); the download fails only when fewer than k good shares remain.",
    )
    p.add_argument("cap", metavar="CAP", help="the read cap")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE (atomically, once verified; a device or FIFO is written in place); default stdout",
    )
    p.add_argument("--offset", type=whole_number, default=0, metavar="N", help="first byte to download")
    p.add_argument("--length", type=whole_number, metavar="N", help="bytes to download (default: to the end)")
    add_config_flags(p, encoding=False)
    p.add_argument(
        "--no-daemon",
        action="store_true",
        help="download in this process even when a daemon is configured (daemon = URL, UPLOADER_DAEMON)",
    )
    p.set_defaults(run=run, holds_interrupts=True)  # released by aio.run (uploader.interrupts)


def run(args: argparse.Namespace, config: Config) -> int:
    to_stdout = args.output in (None, "-")
    try:
        if to_stdout and sys.stdout is None:
            raise LocalIOError("stdout is closed: give an output file with -o FILE")
        if args.json and to_stdout:
            raise UsageError(
                "--json prints its summary on stdout, which would mix it with the file: use -o FILE"
            )
        try:
            cap = parse_read_cap(args.cap)
        except CapError as exc:
            raise UsageError(f"CAP: {exc}") from None
        if args.offset > cap.size:  # the cap says the size: refused before any server is asked
            raise UsageError(f"--offset {args.offset} is past the end of the file ({cap.size} bytes)")
        output = None if to_stdout else Path(args.output)
        if output is not None and output.is_dir():
            raise LocalIOError(f"cannot write to {output}: it is a directory")
        if config.daemon and not args.no_daemon and not isinstance(cap, LitCap):
            refuse_own_settings(config, ("workers", "erasure_backend"), config.daemon)
            return _via_daemon(args, config.daemon, cap, output)
        if isinstance(cap, LitCap):
            return _lit(args, cap, output)
        from uploader.prespawn import discard, prespawn

        early = prespawn(config.workers, config.erasure_backend)
        try:
            from uploader import aio

            return aio.run(_run(args, config, cap, output, early))
        finally:
            discard(early)  # any the pool did not adopt (it failed before it started)
    except UploaderError as exc:  # a --json object names the output file, as a successful one does
        return report_error(args, exc, **({"file": args.output} if args.json else {}))


def _via_daemon(args: argparse.Namespace, url: str, cap: ChkCap, output: Path | None) -> int:
    """Through the daemon's ``GET /uri/CAP`` (a Range request for --offset/--length)."""
    from uploader import daemonclient

    interrupts.release()  # no event loop on this path: the imports are done
    offset, length = _span(args, cap.size)
    start = time.monotonic()
    ranged = offset != 0 or length != cap.size
    bar = ProgressBar(output.name if output is not None else "stdout", length)

    def terminated(signum: int, _frame: object) -> None:
        raise Terminated(signum)  # unwinds through the download, which removes its temp file

    before = {signum: signal.signal(signum, terminated) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        written = daemonclient.get(url, str(cap), output, offset, length if ranged else None, progress=bar)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        bar.close()
    result = DaemonDownload(
        cap.storage_index, cap.size, offset, written, time.monotonic() - start, not ranged
    )
    if args.json:
        emit(summary(result, output))
    elif bar.enabled:
        print(_done_line(result), file=sys.stderr)
    return 0


@dataclass(frozen=True)
class DaemonDownload:
    """What ``get`` knows of a download the daemon ran: the daemon checked every hash (it cuts the
    body short otherwise); which shares it used stays in its log and on its /status page."""

    storage_index: bytes
    file_size: int
    offset: int
    length: int
    seconds: float
    flat_hash_checked: bool
    shares_used: dict[str, list[int]] = field(default_factory=dict)
    corrupt: tuple[()] = ()
    failed_servers: dict[str, str] = field(default_factory=dict)


def _span(args: argparse.Namespace, size: int) -> tuple[int, int]:
    offset = min(args.offset, size)
    length = size - offset if args.length is None else min(args.length, size - offset)
    return offset, length


def _lit(args: argparse.Namespace, cap: LitCap, output: Path | None) -> int:
    from uploader.download import DownloadResult
    from uploader.output import Output

    interrupts.release()  # no event loop on this path: the imports are done
    offset, length = _span(args, cap.size)
    data = cap.data[offset : offset + length]
    start = time.monotonic()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out = Output(output)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out.fd, view) :]
        except OSError as exc:
            out.discard()
            raise LocalIOError(f"cannot write {output}: {exc.strerror}") from None
        except BaseException:
            out.discard()
            raise
        out.commit()
    if args.json:
        seconds = time.monotonic() - start
        result = DownloadResult(b"", cap.size, offset, length, seconds, offset == 0 and length == cap.size)
        emit({**summary(result, output), "storage_index": None})
    return 0


async def _run(
    args: argparse.Namespace, config: Config, cap: ChkCap, output: Path | None, early: list[Spawned]
) -> int:
    from uploader.download import FileSink, StreamSink, output_sink
    from uploader.gridclient import GridClient

    offset, length = _span(args, cap.size)
    label = output.name if output is not None else "stdout"
    bar = ProgressBar(label, length)
    sink: FileSink | StreamSink = (
        output_sink(output, offset) if output is not None else StreamSink(sys.stdout.fileno())
    )
    stopped_by = _stop_on_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: no temp file is left
    try:
        async with GridClient(config, slot_count=DOWNLOAD_SLOTS, early_workers=early) as grid:
            result = await grid.download(cap, sink, offset=offset, length=length, progress=bar)
        sink.commit()
    except BaseException as exc:
        sink.discard()
        if isinstance(exc, asyncio.CancelledError) and stopped_by:
            raise Terminated(stopped_by[0]) from None
        raise
    finally:
        bar.close()
    for bad in result.corrupt:
        print(
            f"uploader: warning: share {bad.shnum} on {bad.server} is corrupt ({bad.reason}); it was reported "
            "to its server and other shares were read instead",
            file=sys.stderr,
        )
    if args.json:
        emit(summary(result, output))
    elif bar.enabled:
        print(_done_line(result), file=sys.stderr)
    return 0


def _stop_on_signals() -> list[int]:
    """Cancel the running task on SIGTERM or SIGHUP; the list gets the signal's number."""
    loop, task, got = asyncio.get_running_loop(), asyncio.current_task(), []

    def stop(signum: int) -> None:
        got.append(signum)
        if task is not None:
            task.cancel()

    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop, signum)
    return got


def _done_line(result: DownloadResult | DaemonDownload) -> str:
    rate = result.length / max(result.seconds, 1e-9) / 1e6
    return f"downloaded {result.length / 1e6:.1f} MB in {result.seconds:.1f} s ({rate:.1f} MB/s)"


def summary(result: DownloadResult | DaemonDownload, output: Path | None) -> dict[str, Any]:
    """The --json object of one download (no cap: caps are secrets; the storage index names the file)."""
    return {
        "file": str(output) if output is not None else "-",
        "storage_index": b32encode(result.storage_index),
        "size": result.length,
        "file_size": result.file_size,
        "offset": result.offset,
        "seconds": round(result.seconds, 3),
        "mb_per_s": round(result.length / max(result.seconds, 1e-9) / 1e6, 2),
        "whole_file_hash_checked": result.flat_hash_checked,
        "shares_used": result.shares_used,
        "corrupt_shares": [
            {"server": c.server, "shnum": c.shnum, "reason": c.reason} for c in result.corrupt
        ],
        "failed_servers": result.failed_servers,
    }


__all__ = ["register", "run", "summary"]
