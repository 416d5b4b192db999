"""``serve``: the long-running daemon — one GridClient, the web API, systemd notify, signals.

Lifecycle: lock ``data_dir`` (one daemon per data_dir: a second one exits 3 and touches nothing) →
connect and start workers → listen → ``READY=1`` → resume the uploads a previous run
left unfinished (their journals in ``DATA_DIR/journal``, their bodies kept in the spool — and the
bodies a stop set aside before their upload began, ``pending-*.part``, uploaded afresh; each shows
in ``/status`` as an upload with stage "resuming"; its cap is logged only by storage index, as the
client that sent it is gone — ``GET /uri/CAP`` works once it is done). SIGHUP: ``RELOADING=1``, re-read
the configuration, apply what can change live (``uploader.reload``), ``READY=1``. SIGTERM/SIGINT:
``STOPPING=1`` and one deadline, ``shutdown_timeout_s``, for the whole drain (``Daemon._drain``): at
once, stop listening, refuse new requests on open connections (503), and answer 503 to uploads whose
body is still arriving (nothing uploaded, their spool files removed) and to those still waiting for
an upload slot (their bodies kept for the next start); let the running requests and
resumes finish until the deadline; then suspend the uploads still running (their buckets stay in
progress, their journals and bodies stay, and the next start resumes them: a reboot does not start a
long upload over) and cut the downloads short, stop the workers, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from uploader.api.activity import upload_progress
from uploader.api.app import PENDING, ApiState, SetAside, _upload_probe, make_app, upload_slot
from uploader.chk.caps import ChkCap
from uploader.config import Config
from uploader.errors import ConfigError, LocalIOError
from uploader.gridclient import GridClient
from uploader.journal import JournalDir, JournalError, JournalHandle, JournalRecord
from uploader.notify import Notifier, monotonic_usec
from uploader.reload import plan
from uploader.upload import Upload
from workers.base32 import b32encode
from workers.errors import UploaderError

log = logging.getLogger("uploader.daemon")

MAX_UPLOADS = Config.max_uploads  # the default: uploads encoding at once; more queue
TICK_S = 1.0  # utilisation sampling and STATUS= updates
# After the drain's deadline: at most this long to write the last answers and close connections
# (aiohttp's own shutdown wait, which no longer waits for any handler: those are done or cancelled).
ANSWER_S = 1.0
# Workers run this much nicer than the daemon: when CPU is short, the network process (the API, and
# feeding the servers) wins and the encoding takes what it leaves. 20 uploads on a loaded 2-core
# machine (tools/bench_status.py --workers-nice 0, side by side): /status p50 42 -> 11 ms, p99
# 190 -> 70 ms; MB/s within that machine's noise (its storage servers were local, competing).
WORKER_NICE = 10


def setup_logging(level: str) -> None:
    """One line per event on stderr (journald adds its own timestamps, but a terminal does not)."""
    root = logging.getLogger()
    if not any(getattr(h, "_uploader", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._uploader = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # its lines would carry caps
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientErrorFilter) for f in server.filters):
        server.addFilter(_ClientErrorFilter())


class _ClientErrorFilter(logging.Filter):
    """A request aiohttp could not parse (oversized header, bad framing) is the client's error, answered
    with a 400: one warning line, not a traceback that quotes the request's bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "refused a malformed request (%d %s)", (exc.code, type(exc).__name__)
            record.exc_info, record.exc_text = None, None
        return True


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def lock_data_dir(data_dir: Path) -> int:
    """Take ``DATA_DIR/serve.lock`` (an flock held for the daemon's life, its pid inside) before
    anything else in ``data_dir`` is touched; the lock's file descriptor.

    A daemon owns its data_dir: at start it removes the spool bodies no journal claims and resumes
    the journals no process holds, which are a live daemon's in-flight uploads if another one runs
    there. A second daemon therefore exits 3 naming the first one. A killed daemon's lock goes with
    it; the descriptor is close-on-exec, so workers never hold it."""
    path = data_dir / "serve.lock"
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LocalIOError(f"cannot open the daemon's lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f"pid {holder}" if holder.isdigit() else "its pid is not recorded yet"
        raise ConfigError(
            f"data_dir {data_dir} is in use by another uploader daemon ({who}): one daemon per data_dir; "
            "stop that one or give this one another data_dir (nothing in it was touched)"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise LocalIOError(f"cannot lock the daemon's lock file {path}: {exc.strerror}") from None
    with contextlib.suppress(OSError):  # the pid is for the message above only
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def prepare_spool(data_dir: Path, keep: frozenset[Path] = frozenset()) -> Path:
    """``DATA_DIR/spool``, mode 0700, emptied of a previous run's leftovers but for ``keep``
    (the bodies of uploads that will be resumed)."""
    spool = data_dir / "spool"
    try:
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in spool.glob("upload-*.part"):
            if leftover.resolve() not in keep:
                leftover.unlink()
    except OSError as exc:
        raise LocalIOError(f"cannot prepare the spool directory {spool}: {exc.strerror}") from None
    return spool


class Daemon:
    def __init__(self, config: Config, reload_config: Callable[[], Config], env: Mapping[str, str]) -> None:
        self.config = config
        self.reload_config = reload_config
        self.notifier = Notifier(env)
        self.stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resumes: set[asyncio.Task[None]] = set()
        self._deadline: float | None = None  # loop time the drain ends by, once stopping
        self.url = ""
        # A SIGHUP before READY (the handler is installed before the grid starts, so that one is
        # not fatal) has no running configuration to reload yet: it is applied once ready.
        self._ready = False
        self._reload_pending = False

    async def run(self) -> int:
        config = self.config
        setup_logging(config.log_level)
        lock = lock_data_dir(config.data_dir)
        try:
            return await self._run(config)
        finally:
            os.close(lock)

    async def _run(self, config: Config) -> int:
        self.notifier.send(STATUS="starting: connecting to storage servers and starting workers")
        unfinished = _unfinished(JournalDir(config.data_dir / "journal"))
        journaled = frozenset(Path(r.source.path).resolve() for _, r in unfinished)
        spool = prepare_spool(config.data_dir, journaled)
        # bodies a stop set aside before their upload began (a journaled one resumes by its journal)
        pending = [p for p in sorted(spool.glob(PENDING + "*.part")) if p.resolve() not in journaled]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)
        grid = GridClient(
            config,
            max_uploads=config.max_uploads,
            journal_owner="daemon",
            suspend_on_cancel=True,
            worker_nice=WORKER_NICE,
        )
        try:
            await grid.start()
        except BaseException:
            for handle, _ in unfinished:
                handle.release()
            raise
        self.state = ApiState(grid, spool, config.max_uploads)
        runner = web.AppRunner(
            make_app(self.state),
            access_log=None,  # the request line holds caps: handlers log storage indexes instead
            handler_cancellation=False,  # a client leaving mid-upload must not half-finish it
            # A body is the file as sent: Content-Encoding is not undone (as in Tahoe), or the cap
            # would be that of other bytes than the client's.
            auto_decompress=False,
            shutdown_timeout=ANSWER_S,  # the drain's waiting is ours (``_drain``), under one deadline
        )
        try:
            await runner.setup()
            host, port = split_listen(config.api_listen)
            site = web.TCPSite(runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(
                    f"api_listen {config.api_listen!r} cannot be used: {exc.strerror or exc}"
                ) from None
            bound = runner.addresses[0]
            self.url = (
                f"http://{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"http://[{bound[0]}]:{bound[1]}"
            )
            log.info(
                "listening on %s with %d workers and %d storage servers (pid %d)",
                self.url,
                grid.pool.size,
                len(grid.clients),
                os.getpid(),
            )
            self.notifier.send(READY=1, STATUS=self._status_line(), MAINPID=os.getpid())
            self._ready = True
            if self._reload_pending:
                self._spawn_reload()
            ticker = asyncio.create_task(self._tick())
            watchdog = asyncio.create_task(self._watchdog()) if self.notifier.watchdog_s else None
            left: list[tuple[Path, tuple[JournalHandle, JournalRecord] | None]] = [
                (Path(record.source.path), (handle, record)) for handle, record in unfinished
            ]
            for path, resume in left + [(p, None) for p in pending]:
                task = asyncio.create_task(self._resume(path, resume))
                self._resumes.add(task)
                task.add_done_callback(self._resumes.discard)
            await self.stop.wait()
            await self._drain(runner)
            ticker.cancel()
            if watchdog is not None:
                watchdog.cancel()
            log.info("stopped")
        finally:
            await runner.cleanup()
            await grid.close()
            self.notifier.close()
        return 0

    async def _drain(self, runner: web.AppRunner) -> None:
        """SIGTERM: one deadline, ``shutdown_timeout_s``, for all of it (aiohttp's own shutdown would
        wait that long for the handlers, then as long again once it has cancelled their bodies).

        At once: no new connections, 503 to new requests on open ones, and 503 to the uploads
        whose body is still arriving (aiohttp reads no more of a closing connection, so they could
        only wait for the deadline). Until the deadline: running requests (uploads whose body is
        complete, downloads) and resumes go on. At the deadline, what still runs is cancelled:
        uploads are suspended for the next start, downloads cut short."""
        config, state = self.config, self.state
        loop = asyncio.get_running_loop()
        deadline = self._deadline = loop.time() + config.shutdown_timeout_s
        state.stop()
        for site in list(runner.sites):
            await site.stop()
        if runner.server is not None:
            runner.server.pre_shutdown()  # idle keep-alive connections close; busy ones take no more requests
        active = state.activity.count("upload")
        log.info("stopping: draining %d active uploads (up to %g s)", active, config.shutdown_timeout_s)
        self.notifier.send(STOPPING=1, STATUS=self._status_line())
        for task in list(self._tasks):
            task.cancel()
        running = set(state.handlers) | set(self._resumes)
        if running:
            _, late = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
            if late:
                log.info("stopping: the deadline passed; cancelling %d requests and resumes", len(late))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await runner.cleanup()  # the last answers out (up to ANSWER_S), connections closed

    async def _resume(self, path: Path, resume: tuple[JournalHandle, JournalRecord] | None) -> None:
        """Finish an upload a previous run left unfinished — suspended with its journal (``resume``),
        or set aside whole before it began (``pending-*.part``, uploaded afresh) —; it shows in
        /status like any upload. Its body is removed once it is done or has failed; a stop keeps it
        again (with the journal, or still pending) for the start after."""
        state = self.state
        record = resume[1] if resume is not None else None
        size = record.source.size if record is not None else _size(path)
        t = state.activity.start("upload", size, stage="queued")
        t.resumed = True  # its stages then run as any upload's: "resuming" lasts only until then
        jobs: list[Upload] = []
        keep = False
        if record is not None:
            t.storage_index = b32encode(record.storage_index)
            log.info(
                "upload %s si=%s: resuming an interrupted upload of %d bytes", t.id, t.storage_index, size
            )
        else:
            log.info("upload %s: uploading a body of %d bytes a previous run set aside", t.id, size)
        try:
            async with upload_slot(state):
                t.stage = "resuming"

                def on_job(job: Upload) -> None:
                    t.probe = lambda: _upload_probe(job)
                    jobs.append(job)

                result = await state.grid.upload(path, upload_progress(t, size), on_job=on_job, resume=resume)
            if isinstance(result.cap, ChkCap):
                t.storage_index = b32encode(result.cap.storage_index)
                t.servers = {n: {"shares": sorted(s), "state": "complete"} for n, s in result.servers.items()}
            t.bytes_done = result.size
            state.activity.finish(t)
            log.info(
                "upload %s si=%s: %s: %d share bytes sent, %d already on the servers",
                t.id,
                t.storage_index or "(LIT)",
                "resumed and done" if resume is not None else "done (its body was set aside at a stop)",
                result.share_bytes_sent,
                result.share_bytes_skipped,
            )
        except (asyncio.CancelledError, SetAside) as exc:
            # Stopped again: kept for the next start — by its journal (released, or suspended),
            # or still pending when no share of it was written.
            keep = not (jobs and resume is not None and not jobs[0].suspended)
            state.activity.finish(t, "suspended (the daemon stopped)" if keep else "cancelled")
            log.warning(
                "upload %s si=%s: %s",
                t.id,
                t.storage_index or "-",
                "kept for the next start" if keep else "cancelled",
            )
            if isinstance(exc, asyncio.CancelledError):
                raise
        except UploaderError as exc:
            state.activity.finish(t, str(exc))
            log.warning("upload %s si=%s: resume failed: %s", t.id, t.storage_index or "-", exc)
        except Exception as exc:  # one resume must not take the daemon down
            state.activity.finish(t, type(exc).__name__)
            log.error("upload %s si=%s: resume failed", t.id, t.storage_index or "-", exc_info=exc)
        finally:
            if resume is not None:
                resume[0].release()
            if path.parent.resolve() == state.spool.resolve() and not keep:
                path.unlink(missing_ok=True)

    def _status_line(self) -> str:
        """The notify STATUS= line: what the daemon serves, or once stopping what the stop waits for
        (the ticker goes on during the drain, so it must not say "listening" then)."""
        activity = self.state.activity
        if self._deadline is not None:
            left = max(0.0, self._deadline - asyncio.get_running_loop().time())
            return (
                f"stopping: waiting for {activity.count('upload')} uploads and {activity.count('download')} "
                f"downloads to finish or be suspended (at most {math.ceil(left)} s more)"
            )
        return (
            f"listening on {self.url}; {activity.count('upload')} uploads, {activity.count('download')} "
            f"downloads active; {self.state.grid.pool.live_workers} workers"
        )

    async def _tick(self) -> None:
        last = ""
        while True:
            await asyncio.sleep(TICK_S)
            self.state.sample()
            line = self._status_line()
            if line != last:
                self.notifier.send(STATUS=line)
                last = line

    async def _watchdog(self) -> None:
        assert self.notifier.watchdog_s is not None
        while True:  # pings come from the event loop itself: a stuck loop stops them
            self.notifier.send(WATCHDOG=1)
            await asyncio.sleep(self.notifier.watchdog_s)

    def _spawn_reload(self) -> None:
        if not self._ready:
            if not self._reload_pending:
                log.info("SIGHUP while starting: the configuration is re-read once the daemon is ready")
            self._reload_pending = True
            return
        self._reload_pending = False
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> None:
        async with self._reload_lock:
            self.notifier.send(
                RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS="reloading the configuration"
            )
            try:
                new = self.reload_config()
                change = plan(self.config, new)
                await self.state.grid.reconfigure(change.config)
            except UploaderError as exc:  # a bad value, or workers that could not start
                log.error("reload failed, keeping the running configuration: %s", exc)
            except Exception as exc:  # a reload must never take the daemon down
                log.error("reload failed, keeping the running configuration", exc_info=exc)
            else:
                self.config = change.config
                setup_logging(self.config.log_level)
                log.info("reloaded %s: %s", new.source or "the configuration", change.describe())
                if change.restart:
                    log.warning("settings that need a restart to change: %s", ", ".join(change.restart))
            self.notifier.send(READY=1, STATUS=self._status_line())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1  # the upload says why it cannot read it


def _unfinished(journals: JournalDir) -> list[tuple[JournalHandle, JournalRecord]]:
    """The daemon's journals that no live process holds, claimed; unreadable ones are removed."""
    out: list[tuple[JournalHandle, JournalRecord]] = []
    for handle, record in journals.unfinished("daemon"):
        if isinstance(record, JournalError):
            log.warning("removing an unreadable upload journal: %s", record)
            try:
                handle.remove()
            except JournalError as exc:
                log.warning("%s", exc)
            continue
        out.append((handle, record))
    return out


def serve(config: Config, reload_config: Callable[[], Config], env: Mapping[str, str]) -> int:
    from uploader import aio

    return aio.run(Daemon(config, reload_config, env).run())


__all__ = ["Daemon", "lock_data_dir", "prepare_spool", "serve", "setup_logging", "split_listen"]
