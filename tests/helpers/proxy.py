"""A TCP proxy for fault tests: forwards to a real server, and can stall or slow every connection.

It runs its own event loop in a thread, so in-process uploads (their own loop) and subprocesses can
both go through it. TLS passes through untouched (the client still pins the server's key).

- ``stall()``: from now on nothing more is forwarded either way, on open or new connections; the
  sockets stay open (a hung server or a black-holed link, not a reset);
- ``rate``: bytes per second per direction per connection (0: unlimited) — a slow link;
- ``forwarded``: bytes passed from clients to the server so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Proxy:
    def __init__(self, target_port: int, *, rate: int = 0) -> None:
        self.target_port = target_port
        self.rate = rate
        self.port = 0
        self.forwarded = 0
        self.connections = 0
        self._stalled = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> Proxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stall(self) -> None:
        self._stalled.set()

    @property
    def stalled(self) -> bool:
        return self._stalled.is_set()

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio logs a cancelled connection callback as an error)
        finally:
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer, upstream=True),
            self._pipe(up_reader, writer, upstream=False),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool) -> None:
        while True:
            if self._stalled.is_set():
                await asyncio.sleep(3600)  # hold the connection open, forward nothing
            chunk = await src.read(16384 if self.rate == 0 else max(1, min(16384, self.rate // 20)))
            if not chunk:
                dst.close()
                return
            while self._stalled.is_set():
                await asyncio.sleep(3600)
            if upstream:
                self.forwarded += len(chunk)
            dst.write(chunk)
            await dst.drain()
            if self.rate:
                await asyncio.sleep(len(chunk) / self.rate)
