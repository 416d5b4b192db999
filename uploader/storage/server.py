"""Running one storage server: identity, TLS, the aiohttp app on uvloop, the idle-bucket reaper.

| step at start-up                     | where                                              |
|--------------------------------------|----------------------------------------------------|
| malloc thresholds raised             | ``workers.malloc.tune_malloc``                    |
| one server per directory             | ``DIR/server.lock`` (flock, held while running)    |
| key, certificate, swissnum           | ``DIR/private/`` (made once, kept: ``identity``)   |
| stale incoming uploads removed       | ``DIR/storage/shares/incoming`` (``ShareStore``)   |
| HTTPS listener on HOST:PORT          | port 0 picks a free port; the NURL has the real one|
| NURL printed and written             | stdout, ``DIR/nurl``                               |

SIGTERM or SIGINT stops the server cleanly (exit 0). In-progress uploads are lost on any stop;
complete shares are already durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import resource
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from uploader.storage.app import AppSettings, StorageApp
from uploader.storage.errors import StorageError
from uploader.storage.identity import Identity, load_or_create_identity, write_nurl
from uploader.storage.store import ShareStore, StoreSettings
from uploader.wire.nurl import Nurl
from workers.malloc import tune_malloc

log = logging.getLogger("uploader.storage")

READ_BUFSIZE = 1024 * 1024  # aiohttp pauses reading a connection past 2x this many buffered bytes
MAX_HEADER_LINE = 8190  # bytes per request line or header field (larger: 400)
MAX_HEADERS = 64


@dataclass(frozen=True, slots=True)
class ServerSettings:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 0
    nurl_host: str | None = None  # host written in the NURL; default: ``host``
    store: StoreSettings = field(default_factory=StoreSettings)
    request_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    application_version: bytes = b"uploader/0.1.0"
    emulate_rtt_s: float = 0.0  # benchmarks only: every response held this long (AppSettings)


class ListenError(StorageError):
    """The listening socket could not be made (the address is taken, not local, not allowed)."""


def address(host: str, port: int) -> str:
    """``host:port`` as an operator writes it, with an IPv6 host in brackets (``[::1]:3456``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _directory_error(exc: OSError, directory: Path) -> StorageError:
    """A start-up failure in the server directory (read-only, not a directory, disk full), naming
    the path it happened on; not a listen error, which only the bind is."""
    where = exc.filename if exc.filename is not None else directory
    return StorageError(f"cannot use the server directory {directory}: {where}: {exc.strerror or exc}")


def tls_context(identity: Identity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(identity.pem_path))
    return ctx


def lock_directory(directory: Path) -> int:
    """Hold ``DIR/server.lock`` (the fd) so a second server on the same directory refuses to start:
    it would delete the first one's in-progress uploads. The kernel drops the lock on any exit."""
    fd = os.open(directory / "server.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(f"another storage server is already running on {directory}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class StorageServer:
    """One server in this event loop: ``await start()``, then ``nurl``; ``await stop()``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._lock_fd = -1
        try:
            settings.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = lock_directory(settings.directory)
            self.identity = load_or_create_identity(settings.directory)
            self.store = ShareStore(settings.directory / "storage", settings.store)
        except OSError as exc:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            raise _directory_error(exc, settings.directory) from None
        app_settings = AppSettings(
            swissnum=self.identity.swissnum,
            application_version=settings.application_version,
            request_timeout_s=settings.request_timeout_s,
            emulate_rtt_s=settings.emulate_rtt_s,
        )
        self.app = StorageApp(self.store, app_settings).application()
        self._runner: web.AppRunner | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.nurl: Nurl | None = None

    async def start(self) -> Nurl:
        s = self.settings
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=s.keepalive_timeout_s,
            read_bufsize=READ_BUFSIZE,
            max_line_size=MAX_HEADER_LINE,
            max_field_size=MAX_HEADER_LINE,
            max_headers=MAX_HEADERS,
            auto_decompress=False,  # share bytes are stored as sent, whatever Content-Encoding says
        )
        await runner.setup()
        site = web.TCPSite(
            runner, s.host, s.port, ssl_context=tls_context(self.identity), shutdown_timeout=5.0
        )
        try:
            await site.start()
        except OSError as exc:  # only the bind is a listen error
            await runner.cleanup()
            raise ListenError(f"cannot listen on {address(s.host, s.port)}: {exc.strerror or exc}") from None
        self._runner = runner
        port = int(runner.addresses[0][1])
        self.nurl = self.identity.nurl(s.nurl_host or s.host, port)
        try:
            write_nurl(s.directory, self.nurl)
        except OSError as exc:
            raise _directory_error(exc, s.directory) from None
        self._reaper = asyncio.create_task(self._reap_idle())
        return self.nurl

    async def _reap_idle(self) -> None:
        idle_s = self.settings.store.idle_bucket_timeout_s
        period = max(0.05, min(60.0, idle_s / 4))
        while True:
            await asyncio.sleep(period)
            for bucket in self.store.expire_idle():
                log.info("aborted idle upload of share %d (no writes for %g s)", bucket.shnum, idle_s)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._runner is not None:
            await self._runner.cleanup()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


async def serve(settings: ServerSettings, on_ready: Callable[[Nurl], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    server = StorageServer(settings)
    nurl = await server.start()
    if on_ready is not None:
        on_ready(nurl)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def run_server(settings: ServerSettings) -> int:
    """The ``storage`` command's body: tune malloc, run on uvloop, print the NURL once listening."""
    tune_malloc()
    _raise_fd_limit()

    def ready(nurl: Nurl) -> None:
        print(nurl, flush=True)
        log.info("storage server listening on %s:%d", settings.host, nurl.port)
        if settings.emulate_rtt_s > 0:
            log.warning("emulating RTT: every response held %g ms", settings.emulate_rtt_s * 1000)

    import uvloop

    # A start-up failure is a StorageError saying what failed (ListenError for the bind, the path
    # for the directory) and reaches the CLI, which prints it as one line: exit 1.
    uvloop.run(serve(settings, ready))
    return 0


__all__ = ["ListenError", "ServerSettings", "StorageServer", "address", "run_server", "serve", "tls_context"]
