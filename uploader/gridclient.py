"""A client of one grid: the worker pool plus a connection to every configured storage server.

``put``, ``get``, ``verify``, and later the daemon, hold one ``GridClient`` and run any number of
uploads and downloads on it concurrently: they share the pool (round robin between jobs) and the
server connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from uploader import depth
from uploader.chk.caps import ChkCap, VerifyCap
from uploader.config import Config
from uploader.download import Download, DownloadResult, DownloadSettings, Sink
from uploader.encoding import slot_size_for
from uploader.errors import ConfigError, NotEnoughServers
from uploader.flow import Budget, KeyedLocks
from uploader.gbs import StorageClient
from uploader.gbs.errors import ServerError
from uploader.journal import JournalDir, JournalHandle, JournalRecord
from uploader.prespawn import Spawned
from uploader.secrets import convergence_secret, lease_secret
from uploader.supervisor import WorkerPool
from uploader.upload import Upload, UploadResult, UploadSettings, abort_journal_buckets
from uploader.verify import Verify, VerifyReport
from uploader.wire.nurl import Nurl, parse_nurl
from workers.geometry import EncodingParams

log = logging.getLogger("uploader.grid")
T = TypeVar("T")


class GridClient:
    """``start_pool=False`` for jobs that need no workers (``verify``)."""

    def __init__(
        self,
        config: Config,
        *,
        max_uploads: int = 4,
        start_pool: bool = True,
        slot_count: int | None = None,
        journal_owner: str = "put",
        suspend_on_cancel: bool = False,
        worker_nice: int = 0,
        early_workers: list[Spawned] | None = None,
    ) -> None:
        """``early_workers``: started by ``uploader.prespawn.prespawn`` before this client existed;
        the pool adopts them (the caller discards any left over)."""
        _require_servers(config)
        self.config = config
        self.params = EncodingParams(config.shares_needed, config.shares_total, config.max_segment_size)
        self.rtt_s: float | None = None  # measured at start when pipeline_depth = "auto" needs it
        per_server = self._depth(config)
        if config.stock_mode:
            self.settings = UploadSettings.stock(self.params, config.shares_happy, per_server)
        else:
            self.settings = UploadSettings(self.params, config.shares_happy, config.window, per_server)
        slots = slot_count or config.window * max_uploads + 2 * config.workers
        self.pool = WorkerPool(
            config.workers,
            slot_count=slots,
            slot_size=slot_size_for(self.params),
            backend=config.erasure_backend,
            nice=worker_nice,
            early=early_workers,
        )
        self.clients: list[StorageClient] = []
        self.secret = convergence_secret(config)
        self.lease_secret = lease_secret(config)
        self._running: set[asyncio.Future[Any]] = set()
        self._locks = KeyedLocks()
        self._budgets: dict[str, Budget] = {}  # bytes in flight per server, across uploads
        self._start_pool = start_pool
        # Dropped by a reload: each is closed once the transfers that were running then have ended
        # (new ones never see it), or at close().
        self._retired: list[StorageClient] = []
        self._closers: set[asyncio.Task[None]] = set()
        self.unreachable: dict[str, str] = {}  # host:port -> why, for servers that did not connect
        # Upload journals (resume after a crash): `put` resumes its own, the daemon its own.
        self.journals = JournalDir(config.data_dir / "journal")
        self.journal_owner = journal_owner
        self.suspend_on_cancel = suspend_on_cancel  # the daemon: uploads cancelled at stop resume at start

    async def start(self) -> None:
        """Start the workers and connect to every server, at once (both take a while)."""
        if not self._start_pool:
            await self._connect()
            return
        workers = asyncio.ensure_future(self.pool.start())
        try:
            await self._connect()
            await self._auto_depth(self.config)
            await workers
        except BaseException:
            # Whichever failed, close both: connections left open here would each be reported
            # as an unclosed session when the loop ends, burying the one line that says why.
            workers.cancel()
            await asyncio.gather(workers, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
            self.clients = []
            await self.pool.close()
            raise

    def _depth(self, config: Config) -> int:
        """``pipeline_depth`` in bytes (uploader/depth.py); "auto" before the RTT is known uses
        the depth for an unknown link until ``_auto_depth`` has measured it."""
        link = config.link_mbit_per_s if self.rtt_s is not None else None
        return depth.resolve(
            config.pipeline_depth,
            rtt_s=self.rtt_s,
            link_mbit_per_s=link,
            n=config.shares_total,
            k=config.shares_needed,
            write_size=UploadSettings.write_size,
        )

    async def _auto_depth(self, config: Config) -> None:
        """For ``pipeline_depth = "auto"`` with a known link rate: time one version request per
        server (the connections are open) and size the depth from the slowest."""
        if config.pipeline_depth != depth.AUTO or config.link_mbit_per_s is None or not self.clients:
            return
        if self.rtt_s is None:
            self.rtt_s = max(await asyncio.gather(*(self._time_version(c) for c in self.clients)))
        self.settings = replace(self.settings, pipeline_depth=self._depth(config))
        for budget in self._budgets.values():
            await budget.resize(self.settings.pipeline_depth)
        log.info(
            "pipeline_depth auto: %d bytes (RTT %.1f ms)", self.settings.pipeline_depth, self.rtt_s * 1000
        )

    @staticmethod
    async def _time_version(client: StorageClient) -> float:
        start = time.monotonic()
        try:
            await client.get_version()
        except ServerError:
            return 0.0
        return time.monotonic() - start

    async def _connect(self) -> None:
        candidates = [
            StorageClient(
                entry.nurl,
                connect_timeout_s=self.config.connect_timeout_s,
                request_timeout_s=self.config.request_timeout_s,
            )
            for entry in self.config.servers
        ]
        try:
            results = await asyncio.gather(*(c.connect() for c in candidates), return_exceptions=True)
            for client, result in zip(candidates, results, strict=True):
                if isinstance(result, ServerError):
                    log.warning("storage server %s is unavailable: %s", client.nurl.address, result)
                    self.unreachable[client.server] = str(result)
                    await client.close()
                elif isinstance(result, BaseException):
                    raise result
                else:
                    self.clients.append(client)
        except BaseException:
            # Cancelled while connecting (a Ctrl-C), or one connect failed unexpectedly: close every
            # candidate not kept, or each is reported as an unclosed session when the loop ends.
            kept = set(map(id, self.clients))
            await asyncio.gather(
                *(c.close() for c in candidates if id(c) not in kept), return_exceptions=True
            )
            raise
        if not self.clients:
            raise NotEnoughServers(
                f"none of the {len(candidates)} configured storage servers could be reached"
            )

    async def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration's live settings: the worker count (the pool resizes without
        failing jobs), ``window`` and ``pipeline_depth`` (new uploads; the per-server byte budgets
        resize at once) and the server list (new transfers; running ones keep the servers they have).
        Other settings are ignored here: the caller says they need a restart. A configuration with no
        servers is refused (ConfigError, nothing applied), as it is at start."""
        _require_servers(config)
        if config.workers != self.pool.size:
            await self.pool.resize(config.workers)
        window = 1 if self.settings.stock_mode else config.window
        self.settings = replace(self.settings, window=window, pipeline_depth=self._depth(config))
        for budget in self._budgets.values():
            await budget.resize(self.settings.pipeline_depth)
        await self._auto_depth(config)
        old = {c.nurl: c for c in self.clients}
        wanted = [parse_nurl(entry.nurl) for entry in config.servers]
        fresh = [
            StorageClient(
                nurl,
                connect_timeout_s=self.config.connect_timeout_s,
                request_timeout_s=self.config.request_timeout_s,
            )
            for nurl in wanted
            if nurl not in old
        ]
        results = await asyncio.gather(*(c.connect() for c in fresh), return_exceptions=True)
        connected: dict[Nurl, StorageClient] = {}
        for client, result in zip(fresh, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("storage server %s is unavailable: %s", client.nurl.address, result)
                await client.close()
            else:
                connected[client.nurl] = client
        self._retire([c for nurl, c in old.items() if nurl not in wanted])
        self.clients = [
            old.get(nurl) or connected[nurl] for nurl in wanted if nurl in old or nurl in connected
        ]
        self.config = replace(
            self.config,
            workers=config.workers,
            window=config.window,
            pipeline_depth=config.pipeline_depth,
            link_mbit_per_s=config.link_mbit_per_s,
            servers=config.servers,
        )

    def _retire(self, clients: list[StorageClient]) -> None:
        """Close ``clients`` once every transfer running now has ended: only those can hold them
        (a transfer keeps the server list it started with). Kept open for good, each remove and
        re-add of a server in a reload leaked its connections."""
        if not clients:
            return
        self._retired.extend(clients)
        users = set(self._running)

        async def close_when_unused() -> None:
            if users:
                await asyncio.wait(users)
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
            for client in clients:  # only now: one cancelled mid-close is closed again by close()
                self._retired.remove(client)

        task = asyncio.create_task(close_when_unused())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def close(self) -> None:
        """Cancel uploads still running (their buckets are aborted), then close connections and the pool."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for closer in list(self._closers):
            closer.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in [*self.clients, *self._retired]), return_exceptions=True)
        await self.pool.close()

    def server_flow(self) -> dict[str, Budget | None]:
        """Each connected server (host:port) and its byte budget, with the cumulative write counters
        of every upload so far; None for a server no upload has written to yet."""
        return {c.nurl.address: self._budgets.get(c.nurl.spki_hash) for c in self.clients}

    async def __aenter__(self) -> GridClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def abandon_journal(self, handle: JournalHandle, record: JournalRecord) -> None:
        """Drop an interrupted upload that will not be resumed: abort its in-progress shares (with
        its upload secrets; servers that are down drop theirs when idle) and remove its journal."""
        await abort_journal_buckets(self.clients, record)
        await asyncio.to_thread(handle.remove)

    async def upload(
        self,
        path: Path,
        progress: Callable[[int], None] | None = None,
        *,
        params: EncodingParams | None = None,
        happy: int | None = None,
        secret: bytes | None = None,
        on_job: Callable[[Upload], None] | None = None,
        resume: tuple[JournalHandle, JournalRecord] | None = None,
    ) -> UploadResult:
        """Upload one file; ``params``, ``happy`` and ``secret`` override the configuration's for it.
        ``on_job`` is handed the job before it runs (the daemon's status page reads its buckets).
        ``resume``: a claimed journal (``unfinished``) of an interrupted upload of ``path`` to continue."""
        settings = self.settings
        if params is not None or happy is not None:
            settings = replace(settings, params=params or settings.params, happy=happy or settings.happy)
        job = Upload(
            self.pool,
            self.clients,
            settings,
            path,
            self.secret if secret is None else secret,
            self.lease_secret,
            progress,
            self._locks,
            self._budgets,
            journals=self.journals,
            journal_owner=self.journal_owner,
            resume=resume,
            suspend_on_cancel=self.suspend_on_cancel,
            unreachable=self.unreachable,
        )
        if on_job is not None:
            on_job(job)
        return await self._track(job.run())

    async def download(
        self,
        cap: ChkCap,
        sink: Sink,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: Callable[[int], None] | None = None,
        settings: DownloadSettings | None = None,
    ) -> DownloadResult:
        """Download ``cap`` (or ``length`` bytes of it from ``offset``) into ``sink``; every hash is
        checked. A file sink is committed by the caller once this returns."""
        settings = settings or DownloadSettings(window=max(16, self.config.window))
        job = Download(
            self.pool,
            self.clients,
            cap,
            sink,
            offset=offset,
            length=length,
            settings=settings,
            progress=progress,
            unreachable=self.unreachable,
        )
        return await self._track(job.run())

    async def verify(
        self, cap: ChkCap | VerifyCap, progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        """Read every share of ``cap`` on every server in full and check it."""
        return await self._track(
            Verify(self.clients, cap, unreachable=self.unreachable, progress=progress).run()
        )

    async def _track(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(coro)
        self._running.add(task)
        try:
            return await task
        finally:
            self._running.discard(task)


def _require_servers(config: Config) -> None:
    if not config.servers:
        raise ConfigError(
            "no storage servers configured: start a local grid with `python -m uploader grid start --dir DIR`, "
            'or list servers as [[servers]] nurl = "pb://…" in the configuration file'
        )
