"""A client of one grid: the worker pool plus a connection to every configured storage server.

``put``, and later the daemon, hold one ``GridClient`` and run any number of uploads on it
concurrently: they share the pool (round robin between uploads) and the server connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from uploader.config import Config
from uploader.encoding import slot_size_for
from uploader.errors import ConfigError, NotEnoughServers
from uploader.gbs import StorageClient
from uploader.gbs.errors import ServerError
from uploader.secrets import convergence_secret, lease_secret
from uploader.supervisor import WorkerPool
from uploader.upload import KeyedLocks, Upload, UploadResult, UploadSettings
from workers.geometry import EncodingParams

log = logging.getLogger("uploader.grid")


class GridClient:
    def __init__(self, config: Config, *, max_uploads: int = 4) -> None:
        if not config.servers:
            raise ConfigError(
                "no storage servers configured: start a local grid with `python -m uploader grid start --dir DIR`, "
                'or list servers as [[servers]] nurl = "pb://…" in the configuration file'
            )
        self.config = config
        self.params = EncodingParams(config.shares_needed, config.shares_total, config.max_segment_size)
        self.settings = UploadSettings(self.params, config.shares_happy, config.window, config.pipeline_depth)
        slots = config.window * max_uploads + 2 * config.workers
        self.pool = WorkerPool(config.workers, slot_count=slots, slot_size=slot_size_for(self.params))
        self.clients: list[StorageClient] = []
        self.secret = convergence_secret(config)
        self.lease_secret = lease_secret(config)
        self._running: set[asyncio.Future[UploadResult]] = set()
        self._locks = KeyedLocks()

    async def start(self) -> None:
        await self.pool.start()
        candidates = [
            StorageClient(
                entry.nurl,
                connect_timeout_s=self.config.connect_timeout_s,
                request_timeout_s=self.config.request_timeout_s,
            )
            for entry in self.config.servers
        ]
        results = await asyncio.gather(*(c.connect() for c in candidates), return_exceptions=True)
        for client, result in zip(candidates, results, strict=True):
            if isinstance(result, ServerError):
                log.warning(
                    "storage server %s is unavailable: %s", client.nurl.host + f":{client.nurl.port}", result
                )
                await client.close()
            elif isinstance(result, BaseException):
                await client.close()
                raise result
            else:
                self.clients.append(client)
        if not self.clients:
            raise NotEnoughServers(
                f"none of the {len(candidates)} configured storage servers could be reached"
            )

    async def close(self) -> None:
        """Cancel uploads still running (their buckets are aborted), then close connections and the pool."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        await self.pool.close()

    async def __aenter__(self) -> GridClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def upload(
        self,
        path: Path,
        progress: Callable[[int], None] | None = None,
        *,
        params: EncodingParams | None = None,
        happy: int | None = None,
        secret: bytes | None = None,
    ) -> UploadResult:
        """Upload one file; ``params``, ``happy`` and ``secret`` override the configuration's for it."""
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
        )
        task = asyncio.ensure_future(job.run())
        self._running.add(task)
        try:
            return await task
        finally:
            self._running.discard(task)
