"""``put FILE…``: upload files (concurrently) and print each cap."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from uploader import interrupts
from uploader.cli import add_config_flags, emit, refuse_own_settings, report_error, whole_number
from uploader.config import Config
from uploader.errors import LocalIOError, UploaderError, UsageError
from uploader.journal import JournalError, JournalHandle, JournalRecord
from uploader.progress import ProgressBar
from workers.text import printable

if TYPE_CHECKING:
    from uploader.gridclient import GridClient
    from uploader.prespawn import Spawned

# The network stack (aiohttp, the GBS client, the pool) is imported inside the functions that use
# it: `run` starts the workers first, and they boot while this process imports it (~0.2 s).


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "put",
        help="upload files and print their caps",
        description="Upload each FILE to the grid (several files run concurrently on one worker pool) and print "
        "its read cap. The configuration is --config PATH, else $UPLOADER_CONFIG, else "
        "$XDG_CONFIG_HOME/uploader/uploader.toml, else the one `grid start` last wrote for an embedded local grid.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_config_flags(p)
    p.add_argument(
        "--pipeline-depth", metavar="BYTES", help='bytes in flight per server, or "auto" (the default)'
    )
    p.add_argument("--window", type=whole_number, metavar="SEGMENTS", help="segments in flight per file")
    p.add_argument(
        "--no-daemon",
        action="store_true",
        help="upload in this process even when a daemon is configured (daemon = URL, UPLOADER_DAEMON)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an upload of FILE that was interrupted (killed, crashed, rebooted) from its journal, "
        "sending only what the servers still lack; a FILE without one is uploaded from the start",
    )
    p.set_defaults(run=run, holds_interrupts=True)  # released by aio.run (uploader.interrupts)


# Settings of the uploads put runs itself: through a daemon they would be dropped, and the encoding
# ones (_CAP_SETTINGS) would give other caps than asked for.
_CAP_SETTINGS = (
    "shares_needed",
    "shares_total",
    "shares_happy",
    "max_segment_size",
    "convergence_secret_file",
)
_OWN_SETTINGS = (*_CAP_SETTINGS, "workers", "erasure_backend", "window", "pipeline_depth")


def run(args: argparse.Namespace, config: Config) -> int:
    from uploader.prespawn import discard, prespawn

    if config.daemon and not args.no_daemon:
        if args.resume:
            raise UsageError("--resume is for uploads put runs itself: the daemon resumes its own at start")
        refuse_own_settings(config, _OWN_SETTINGS, config.daemon, from_env=_CAP_SETTINGS)
        return _run_daemon(args, config.daemon)
    early = prespawn(config.workers, config.erasure_backend)
    try:
        from uploader import aio

        return aio.run(_run(args, config, early))
    finally:
        discard(early)  # any the pool did not adopt (it failed before it started)


async def _run(args: argparse.Namespace, config: Config, early: list[Spawned]) -> int:
    from uploader.gridclient import GridClient

    total = 0
    for path in args.files:
        with contextlib.suppress(OSError):
            total += 2 * path.stat().st_size
    bar = ProgressBar(f"{len(args.files)} file(s)" if len(args.files) > 1 else args.files[0].name, total)
    worst = 0
    async with GridClient(config, max_uploads=min(len(args.files), 4), early_workers=early) as grid:
        limit = asyncio.Semaphore(4)
        journals = _journals(grid, args.files, claim=args.resume)

        async def one(path: Path) -> int:
            async with limit:
                resume = journals.pop(path, None) if args.resume else None
                try:
                    if not path.is_file() and resume is None:  # with a journal: the upload drops it
                        raise LocalIOError(f"cannot read {path}: not a regular file or does not exist")
                    if resume is not None and not args.json:
                        print(
                            printable(f"uploader: resuming the interrupted upload of {path}"), file=sys.stderr
                        )
                    elif args.resume and not args.json:
                        print(
                            printable(
                                f"uploader: no interrupted upload of {path}: uploading it from the start"
                            ),
                            file=sys.stderr,
                        )
                    elif not args.resume and path in journals:
                        print(
                            printable(
                                f"uploader: note: dropping an interrupted upload of {path} and uploading it "
                                "from the start (--resume would continue it)"
                            ),
                            file=sys.stderr,
                        )
                        await _drop_journals(grid, path)
                    result = await grid.upload(path, bar, resume=resume)
                except UploaderError as exc:
                    return report_error(args, exc, file=str(path))
                finally:
                    if resume is not None:
                        resume[0].release()  # a no-op once the upload removed it
            if args.json:
                fields = {
                    "file": str(path),
                    "cap": str(result.cap),
                    "size": result.size,
                    "seconds": round(result.seconds, 3),
                    "mb_per_s": round(result.size / max(result.seconds, 1e-9) / 1e6, 2),
                    "share_bytes_sent": result.share_bytes_sent,
                }
                if result.resumed:
                    fields |= {"resumed": True, "share_bytes_skipped": result.share_bytes_skipped}
                emit(fields)
            elif len(args.files) > 1:
                print(printable(f"{path}: {result.cap}"), flush=True)
            else:
                print(result.cap, flush=True)
            return 0

        try:
            codes = await asyncio.gather(*(one(p) for p in args.files))
        finally:
            bar.close()
            for handle, _ in journals.values():
                handle.release()
    for code in codes:
        worst = worst or code
    if bar.enabled and bar.done:
        seconds = max(time.monotonic() - bar.start, 1e-9)
        print(
            f"uploaded {total / 2e6:.1f} MB in {seconds:.1f} s ({total / 2e6 / seconds:.1f} MB/s)",
            file=sys.stderr,
        )
    return worst


async def _drop_journals(grid: GridClient, path: Path) -> None:
    """A plain `put` of a file with interrupted uploads drops them first: their buckets (kept for a
    resume) hold share numbers on the very servers this upload is placed on — the same storage
    index — until the servers expire them, and a few of them left no share number free (happiness
    not met). Their buckets are aborted with their upload secrets, their journals removed."""
    wanted = str(path.resolve())
    for handle, record in grid.journals.unfinished("put"):
        if isinstance(record, JournalRecord) and record.source.path == wanted:
            await grid.abandon_journal(handle, record)
        else:
            handle.release()


def _journals(
    grid: GridClient, files: list[Path], *, claim: bool
) -> dict[Path, tuple[JournalHandle, JournalRecord]]:
    """The newest unfinished `put` journal of each of ``files``, claimed (locked) when ``claim``;
    without it, only which files have one (released at once). Unreadable journals are removed."""
    wanted: dict[str, Path] = {}
    for path in files:
        with contextlib.suppress(OSError):
            wanted[str(path.resolve())] = path
    found: dict[Path, tuple[JournalHandle, JournalRecord]] = {}
    for handle, record in grid.journals.unfinished("put"):
        if isinstance(record, JournalError):
            print(f"uploader: warning: removing an unreadable upload journal: {record}", file=sys.stderr)
            with contextlib.suppress(JournalError):
                handle.remove()
            continue
        match = wanted.get(record.source.path)
        older = found.get(match) if match is not None else None
        if match is None or (older is not None and older[1].updated >= record.updated):
            handle.release()
            continue
        if older is not None:
            older[0].release()
        found[match] = (handle, record)
    if not claim:
        for handle, _ in found.values():
            handle.release()
    return found


def _run_daemon(args: argparse.Namespace, url: str) -> int:
    """Each file through the daemon's ``PUT /uri`` (4 at a time); output as without a daemon."""
    import threading

    from uploader import daemonclient

    interrupts.release()  # no event loop on this path: the imports are done

    def one(path: Path) -> int:
        try:
            if not path.is_file():
                raise LocalIOError(f"cannot read {path}: not a regular file or does not exist")
            cap, size, seconds, share_bytes = daemonclient.put(url, path)
        except UploaderError as exc:
            return report_error(args, exc, file=str(path))
        if args.json:
            rate = round(size / max(seconds, 1e-9) / 1e6, 2)
            line = json.dumps(
                {
                    "file": printable(str(path)),
                    "cap": cap,
                    "size": size,
                    "seconds": round(seconds, 3),
                    "mb_per_s": rate,
                    "share_bytes_sent": share_bytes,
                }
            )
        elif len(args.files) > 1:
            line = printable(f"{path}: {cap}")
        else:
            line = cap
        print(line, flush=True)
        return 0

    # Daemon threads, not a ThreadPoolExecutor (whose exit, and the interpreter's, wait for every
    # thread): a Ctrl-C must end the command even while a transfer waits on a daemon that does not
    # answer; the daemon sees the connection close.
    files = list(args.files)
    codes = [0] * len(files)
    failures: list[BaseException] = []
    todo = iter(range(len(files)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None or failures:
                return
            try:
                codes[i] = one(files[i])
            except BaseException as exc:  # BrokenPipeError from print, say: the main thread raises it
                failures.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(4, len(files)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return next((c for c in codes if c), 0)
