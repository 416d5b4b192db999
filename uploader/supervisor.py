"""The worker pool: W spawned worker processes, supervised from the asyncio network process.

- Jobs from different clients (uploads) are served round robin, not first come first served.
- Each worker holds at most ``per_worker`` jobs (one running, one queued in its socket), and
  encode jobs also hold a shared-memory slot until the caller releases the result, so jobs in
  flight are bounded and backpressure reaches the caller (its ``await`` waits).
- A worker that dies (EOF on its socket, or its process sentinel fires) or hangs (a job past its
  deadline: it is SIGKILLed) is replaced, and its jobs are re-queued at the front — encoding is
  deterministic, so re-running is safe. A job that kills three workers fails instead.
- The pool keeps itself topped up to ``size`` live workers: one refill at a time starts what is
  missing, and a worker that dies while starting is tried again after a pause that doubles. After
  ``START_ATTEMPTS`` rounds in a row that started none, the refill gives up for a while; if no worker
  is left then, the queued jobs (and new ones) fail with a ``PoolError`` instead of waiting for good.
- Workers die with the network process (PR_SET_PDEATHSIG, and EOF), and the arena is a memfd, so
  nothing is left in /dev/shm.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Coroutine, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from uploader import trace
from uploader.errors import UploaderError
from uploader.prespawn import Spawned, WorkerProcess, start_worker
from workers import erasure
from workers.errors import MessageError
from workers.main import send_arena
from workers.messages import (
    FRAME_HEADER,
    MAX_FRAME,
    DecodeSegment,
    EncodeSegment,
    JobFailed,
    JobMessage,
    KeyPass,
    KeyReady,
    Message,
    ReplyMessage,
    SegmentDecoded,
    SegmentEncoded,
    Shutdown,
    WorkerReady,
    frame,
    read_frame_length,
    unpack,
)
from workers.slots import Arena

log = logging.getLogger("uploader.pool")

MAX_ATTEMPTS = 3
START_ATTEMPTS = 5  # rounds in a row that start no worker before a refill gives up (and says why)
START_BACKOFF_S = 0.1  # pause after the first such round; doubles with each further one
REFILL_PAUSE_S = 5.0  # after giving up, the refill tries again this much later (a cause may pass)
START_TIMEOUT_S = 60.0  # for a worker's WorkerReady: one that hangs while booting counts as dead


class PoolError(UploaderError):
    """The pool could not run a job (closed, or the job kept killing workers)."""


class WorkerStartError(PoolError):
    """A worker died (or hung) before it was ready; the pool tries again before giving up."""


class JobError(UploaderError):
    """A job failed in a worker for a reason it could report (e.g. the source file is unreadable)."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        if error_class == "SourceError":
            self.exit_code = 7


@dataclass
class _Job:
    client: Hashable
    msg: JobMessage
    future: asyncio.Future[ReplyMessage]
    timeout_s: float
    attempts: int = 0


@dataclass
class _Worker:
    index: int
    process: WorkerProcess
    writer: asyncio.StreamWriter
    reader_task: asyncio.Task[None] | None = None
    inflight: deque[_Job] = field(default_factory=deque)
    busy_since: float = 0.0
    retiring: bool = False
    dead: bool = False


class SlotSet:
    """Shared-memory slot numbers handed out first come, first served.

    The pool's own set lends groups of slots as leases (``lease(n)``, all at once, so two
    uploads can never each hold half of what the other needs); an upload takes its segments'
    slots from its lease, in order, so a segment never waits behind a later one of its own.
    """

    def __init__(self, slots: Iterable[int] = (), parent: SlotSet | None = None) -> None:
        self.free: deque[int] = deque(slots)
        self.size = len(self.free)
        self.parent = parent
        self._waiters: deque[tuple[int, asyncio.Future[list[int]]]] = deque()
        self._closed = False

    async def take_many(self, n: int) -> list[int]:
        if self._closed:
            raise PoolError("the worker pool was closed")
        if not self._waiters and len(self.free) >= n:
            return [self.free.popleft() for _ in range(n)]
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give(*fut.result())  # granted just as we were cancelled: hand them back
            raise

    async def take(self) -> int:
        (slot,) = await self.take_many(1)
        return slot

    def give(self, *slots: int) -> None:
        if self._closed and self.parent is not None:
            self.parent.give(*slots)  # a closed lease passes late returns straight back
            return
        self.free.extend(slots)
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
            elif len(self.free) >= n:
                self._waiters.popleft()
                fut.set_result([self.free.popleft() for _ in range(n)])
            else:
                break

    async def lease(self, n: int) -> SlotSet:
        """A set of ``n`` slots (at most all of them) borrowed from this one; ``close()`` returns them."""
        return SlotSet(await self.take_many(min(n, self.size)), parent=self)

    def close(self) -> None:
        """Give a lease's slots back; slots still in use go back when their results are released."""
        if self.parent is not None and not self._closed:
            self.parent.give(*self.free)
            self.free.clear()
        self._closed = True
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(PoolError("the worker pool was closed"))
        self._waiters.clear()


@dataclass
class EncodeResult:
    """One encoded segment. ``blocks[j]`` may be a view into a shared slot: call ``release()``
    (or use ``with``) once every block has been sent, and do not touch the views afterwards."""

    segment: int
    crypttext_hash: bytes
    block_hashes: list[bytes]
    block_size: int
    blocks: list[memoryview]
    _slots: SlotSet | None = None
    _slot: int = -1

    def release(self) -> None:
        for view in self.blocks:
            view.release()
        self.blocks = []
        if self._slots is not None and self._slot >= 0:
            self._slots.give(self._slot)
            self._slots = None

    def __enter__(self) -> EncodeResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkerPool:
    def __init__(
        self,
        workers: int,
        *,
        slot_count: int = 0,
        slot_size: int = 0,
        per_worker: int = 2,
        job_timeout_s: float = 30.0,
        backend: str = "auto",
        nice: int = 0,
        early: list[Spawned] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = workers
        self.per_worker = per_worker
        self.job_timeout_s = job_timeout_s
        self.backend = backend  # the erasure_backend setting: auto, isal or zfec
        self.nice = nice  # workers run this much nicer than this process (the daemon's: its API first)
        self.erasure: erasure.Selection | None = None  # what it resolved to, once started
        self._slot_count = slot_count or 2 * workers + 4
        self._slot_size = slot_size
        self._arena: Arena | None = None
        self.slots = SlotSet()
        self._workers: list[_Worker] = []
        self._queues: dict[Hashable, deque[_Job]] = {}
        self._rr: deque[Hashable] = deque()
        self._ids = itertools.count(1)
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None
        # Workers started by uploader.prespawn before the pool existed, adopted by start() (the
        # caller keeps the list and discards what is left in it, should the start never come).
        self._early = early if early is not None else []
        self._index = itertools.count()
        self.restarts = 0
        self._spawning = 0  # dead workers still being reaped and requeued
        self._starting = 0  # workers started and not yet ready
        self._refiller: asyncio.Task[None] | None = None
        self._filling = asyncio.Lock()
        self._broken: PoolError | None = None  # set while no worker can be started and none is live
        self.start_attempts = START_ATTEMPTS
        self.start_backoff_s = START_BACKOFF_S
        self.refill_pause_s = REFILL_PAUSE_S
        self._tasks: set[asyncio.Task[None]] = set()
        self.busy_s: dict[int, float] = {}

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        # Load and self-check the erasure backend here first: a forced `isal` that cannot be used
        # fails now with ErasureBackendError; workers then get the concrete name and check again.
        self.erasure = erasure.select(self.backend)
        if self._slot_size:
            try:
                self._arena = Arena.create(self._slot_count, self._slot_size)
            except (OSError, OverflowError) as exc:
                total = self._slot_count * self._slot_size
                raise PoolError(
                    f"cannot map {self._slot_count} shared-memory slots of {self._slot_size} bytes "
                    f"({total / 2**20:.0f} MiB: window x N/k x max_segment_size) for the workers: "
                    f"{getattr(exc, 'strerror', None) or exc}; lower window or max_segment_size"
                ) from None
            self.slots = SlotSet(range(self._slot_count))
        await self._fill()
        self._watchdog = asyncio.create_task(self._watch())

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def live_workers(self) -> int:
        return sum(1 for w in self._workers if not w.dead and not w.retiring)

    @property
    def worker_indexes(self) -> list[int]:
        """The live workers' indexes (the keys of ``busy_s``; a restarted worker gets a new one)."""
        return [w.index for w in self._workers if not w.dead and not w.retiring]

    @property
    def slot_size(self) -> int:
        """Bytes per shared-memory slot (0 when the pool has none)."""
        return self._slot_size if self._arena is not None else 0

    def slot_view(self, slot: int) -> memoryview:
        """The memory of one slot the caller holds; release the view before giving the slot back."""
        if self._arena is None:
            raise PoolError("the worker pool has no shared-memory slots")
        return self._arena.slot(slot)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if not w.dead and not w.retiring]

    async def _spawn(self) -> None:
        """Start one worker and add it to the pool once it said it is ready.

        Raises WorkerStartError when it dies (or hangs) first; the process is reaped either way, and
        also when the caller is cancelled meanwhile."""
        self._starting += 1
        try:
            if self._early:  # started by prespawn() before the caller's imports: adopt it
                spawned = self._early.pop(0)
            else:
                spawned = start_worker(self.erasure.name if self.erasure else "zfec", self.nice)
            proc, parent = spawned.process, spawned.sock
            writer: asyncio.StreamWriter | None = None
            try:
                try:
                    if self._arena is not None:
                        send_arena(parent, self._arena)
                    else:
                        socket.send_fds(parent, [bytes(16)], [])  # an empty arena hello: no slots
                except OSError as exc:  # BrokenPipeError, ConnectionResetError: it died while starting
                    raise self._start_failed(proc, f"while starting ({exc.strerror or exc})") from None
                parent.setblocking(False)
                reader, writer = await asyncio.open_unix_connection(sock=parent, limit=MAX_FRAME)
                try:
                    ready = await asyncio.wait_for(_read_message(reader), START_TIMEOUT_S)
                except (asyncio.IncompleteReadError, ConnectionError, MessageError):
                    raise self._start_failed(proc, "before it was ready") from None
                except TimeoutError:
                    raise WorkerStartError(
                        f"worker {proc.pid} was not ready within {START_TIMEOUT_S:g} s of its start"
                    ) from None
                if not isinstance(ready, WorkerReady):
                    raise WorkerStartError(f"worker sent {type(ready).__name__} instead of WorkerReady")
                if self.erasure and ready.backend != self.erasure.name:
                    raise WorkerStartError(
                        f"worker runs erasure backend {ready.backend}, expected {self.erasure.name}"
                    )
                if self._closed:
                    raise PoolError("the worker pool was closed while a worker started")
            except BaseException:
                if writer is not None:
                    writer.close()
                else:
                    parent.close()
                if proc.is_alive():
                    proc.kill()
                proc.join(1.0)
                raise
        finally:
            self._starting -= 1
        assert writer is not None
        worker = _Worker(next(self._index), proc, writer)
        self.busy_s.setdefault(worker.index, 0.0)  # listed from the start, busy or not
        worker.reader_task = asyncio.create_task(self._read_loop(worker, reader))
        self._workers.append(worker)
        self._broken = None
        self._dispatch()

    @staticmethod
    def _start_failed(proc: Any, when: str) -> WorkerStartError:
        proc.join(1.0)
        why = "" if proc.exitcode is None or proc.exitcode < 0 else "; its stderr says why"
        return WorkerStartError(f"worker {proc.pid} {_how_it_ended(proc)} {when}{why}")

    async def _fill(self) -> None:
        """Start workers until ``size`` are live, and retire any beyond it.

        Workers that die while starting are started again after a pause (``start_backoff_s``,
        doubling); raises the last WorkerStartError once ``start_attempts`` rounds in a row
        started none. One fill at a time (``_filling``): a resize's fill must not count workers
        that a background refill is still starting (or failing to start) as its own success."""
        async with self._filling:
            await self._fill_locked()

    async def _fill_locked(self) -> None:
        failures = 0
        while not self._closed:
            missing = self.size - self.live_workers - self._starting
            if missing <= 0:
                self._trim()
                return
            results = await asyncio.gather(*(self._spawn() for _ in range(missing)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            for error in errors:
                if not isinstance(error, WorkerStartError):
                    raise error  # closed, or a bug: not something a retry mends
            if not errors:
                continue
            failures = failures + 1 if len(errors) == len(results) else 0
            if failures >= self.start_attempts:
                raise WorkerStartError(
                    f"workers keep dying as they start ({self.start_attempts} tries in a row): {errors[-1]}"
                )
            pause = self.start_backoff_s * 2 ** max(failures - 1, 0)
            log.warning("%s; starting another in %.1f s", errors[-1], pause)
            await asyncio.sleep(pause)

    def _trim(self) -> None:
        """Retire live workers beyond ``size`` (a resize overlapped a replacement)."""
        live = [w for w in self._workers if not w.dead and not w.retiring]
        for w in live[self.size :]:
            w.retiring = True  # takes no new jobs; shut down once its queue drains
            self._retire_if_idle(w)

    def _refill(self) -> None:
        """Top the pool up in the background, unless a refill is already under way."""
        if self._closed or (self._refiller is not None and not self._refiller.done()):
            return
        self._refiller = asyncio.create_task(self._refill_until_full())
        self._tasks.add(self._refiller)
        self._refiller.add_done_callback(self._tasks.discard)

    async def _refill_until_full(self) -> None:
        while not self._closed:
            try:
                await self._fill()
                return
            except WorkerStartError as exc:
                if not self.live_workers:
                    self._give_up(PoolError(f"no worker process is running: {exc}"))
                log.error("%s; trying again in %.0f s", exc, self.refill_pause_s)
            await asyncio.sleep(self.refill_pause_s)

    def _give_up(self, error: PoolError) -> None:
        """Fail every queued job (no worker is left to run it), and new jobs until a worker starts."""
        self._broken = error
        for queue in self._queues.values():
            for job in queue:
                if not job.future.done():
                    job.future.set_exception(error)
        self._queues.clear()
        self._rr.clear()

    async def close(self) -> None:
        """Stop every worker (Shutdown, then SIGKILL after a grace period) and fail queued jobs."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog:
            self._watchdog.cancel()
        for task in list(self._tasks):
            task.cancel()
        for queue in self._queues.values():
            for job in queue:
                if not job.future.done():
                    job.future.set_exception(PoolError("the worker pool was closed before the job ran"))
        self._queues.clear()
        self._rr.clear()
        for w in self._workers:
            for job in w.inflight:
                if not job.future.done():
                    job.future.set_exception(PoolError("the worker pool was closed while the job ran"))
            if not w.dead:
                with contextlib.suppress(Exception):
                    w.writer.write(frame(Shutdown("pool closing")))
        deadline = time.monotonic() + 3.0
        for w in self._workers:
            while w.process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if w.process.is_alive():
                w.process.kill()
            w.process.join(1.0)
            w.writer.close()
            if w.reader_task:
                w.reader_task.cancel()
        self.slots.close()
        if self._arena is not None:
            self._arena.close()

    async def resize(self, workers: int) -> None:
        """Grow or shrink to ``workers`` live workers without failing any job.

        Raises WorkerStartError when the new workers cannot be started; the pool then goes back to
        its previous size (surplus workers retire), so ``size`` — what /status shows and a later
        reload compares with — stays the size the pool keeps, and the same reload can be tried again."""
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        previous, self.size = self.size, workers
        try:
            await self._fill()
        except WorkerStartError:
            self.size = previous
            self._trim()
            log.warning("could not resize the pool to %d workers; keeping %d", workers, previous)
            raise

    def _retire_if_idle(self, w: _Worker) -> None:
        if w.retiring and not w.inflight and not w.dead:
            with contextlib.suppress(Exception):
                w.writer.write(frame(Shutdown("pool shrinking")))

    # ---- jobs --------------------------------------------------------------------------------
    async def encode(
        self,
        client: Hashable,
        segment: int,
        key: bytes,
        offset: int,
        length: int,
        k: int,
        n: int,
        *,
        source: str = "",
        data: bytes | None = None,
        slots: SlotSet | None = None,
    ) -> EncodeResult:
        """Encode one segment in a worker; waits for a slot first (backpressure).

        ``slots`` is the caller's lease (``await pool.slots.lease(window)``); without one the
        slot comes from the pool's shared set. Segments too big for a slot travel inline."""
        padded = -(-length // k) * k
        need = n * (padded // k)
        source_set = slots if slots is not None else self.slots
        slot = await source_set.take() if self._arena is not None and need <= self._slot_size else -1
        try:
            msg = EncodeSegment(0, segment, key, offset, length, source, data, k, n, slot)
            reply = await self._submit(client, msg, self.job_timeout_s + length / 2e6)
        except BaseException:
            if slot >= 0:
                source_set.give(slot)
            raise
        assert isinstance(reply, SegmentEncoded)
        if slot >= 0:
            assert self._arena is not None
            base = self._arena.slot(slot)
            bs = reply.block_size
            blocks = [base[j * bs : (j + 1) * bs] for j in range(n)]
            base.release()
        else:
            assert reply.blocks is not None
            blocks = [memoryview(b) for b in reply.blocks]
        return EncodeResult(
            segment, reply.crypttext_hash, reply.block_hashes, reply.block_size, blocks, source_set, slot
        )

    async def key_pass(
        self, client: Hashable, source: str, size: int, secret: bytes, k: int, n: int, segment_size: int
    ) -> bytes:
        msg = KeyPass(0, source, size, secret, k, n, segment_size)
        reply = await self._submit(client, msg, self.job_timeout_s + size / 20e6)
        assert isinstance(reply, KeyReady)
        return reply.key

    async def decode(self, client: Hashable, msg: DecodeSegment) -> SegmentDecoded:
        reply = await self._submit(client, msg, self.job_timeout_s + msg.length / 2e6)
        assert isinstance(reply, SegmentDecoded)
        return reply

    async def _submit(self, client: Hashable, msg: JobMessage, timeout_s: float) -> ReplyMessage:
        if self._closed:
            raise PoolError("the worker pool is closed")
        if self._broken is not None and not self.live_workers:
            raise self._broken
        loop = asyncio.get_running_loop()
        job_id = next(self._ids)
        msg = _with_job(msg, job_id)
        job = _Job(client, msg, loop.create_future(), timeout_s)
        self._enqueue(job, front=False)
        self._dispatch()
        reply = await job.future
        if isinstance(reply, JobFailed):
            raise JobError(reply.error_class, reply.message)
        return reply

    def _enqueue(self, job: _Job, *, front: bool) -> None:
        queue = self._queues.setdefault(job.client, deque())
        if not queue and job.client not in self._rr:
            self._rr.append(job.client)
        if front:
            queue.appendleft(job)
        else:
            queue.append(job)

    def _dispatch(self) -> None:
        """Hand queued jobs to workers with room, taking one job per client in turn."""
        while self._rr:
            candidates = [
                w
                for w in self._workers
                if not w.dead and not w.retiring and len(w.inflight) < self.per_worker
            ]
            if not candidates:
                return
            worker = min(candidates, key=lambda w: len(w.inflight))
            client = self._rr.popleft()
            queue = self._queues[client]
            job = queue.popleft()
            if queue:
                self._rr.append(client)
            else:
                del self._queues[client]
            if job.future.done():  # cancelled by its caller while queued
                continue
            try:
                data = frame(job.msg)
            except (ValueError, TypeError, OverflowError) as exc:  # msgpack's: fail this job, not the pool
                job.future.set_exception(
                    PoolError(f"cannot send {type(job.msg).__name__} to a worker: {exc}")
                )
                continue
            if not worker.inflight:
                worker.busy_since = time.monotonic()
            worker.inflight.append(job)
            worker.writer.write(data)

    # ---- supervision -------------------------------------------------------------------------
    async def _read_loop(self, w: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                msg = await _read_message(reader)
                if not w.inflight:
                    raise PoolError(f"worker {w.index} answered a job it was not given")
                job = w.inflight.popleft()
                now = time.monotonic()
                trace.busy(w.index, w.busy_since, now)
                self.busy_s[w.index] = self.busy_s.get(w.index, 0.0) + now - w.busy_since
                w.busy_since = now
                if (
                    not isinstance(msg, SegmentEncoded | JobFailed | KeyReady | SegmentDecoded)
                    or msg.job != job.msg.job
                ):
                    raise PoolError(
                        f"worker {w.index} answered {type(msg).__name__} out of turn for job {job.msg.job}"
                    )
                if not job.future.done():
                    job.future.set_result(msg)
                self._retire_if_idle(w)
                self._dispatch()
        except (asyncio.IncompleteReadError, ConnectionError, MessageError, PoolError) as exc:
            if not self._closed:
                if w.retiring and not w.inflight:  # it ended as asked: the pool shrank
                    log.info("worker %d (pid %s) retired", w.index, w.process.pid)
                else:
                    log.warning(
                        "worker %d (pid %s) lost: %s", w.index, w.process.pid, exc or type(exc).__name__
                    )
                # Not awaited here: this task is referenced only by the dead worker, which the
                # replacement drops, and a pending task nobody references can be garbage-collected
                # mid-spawn (the pool then stayed a worker short for good).
                self._background(self._replace(w))

    async def _replace(self, w: _Worker) -> None:
        if w.dead:
            return
        w.dead = True
        # Its busy time leaves /status and /metrics with it, as a retired worker's does: one entry
        # (and Prometheus series) per worker that ever crashed would grow without bound.
        self.busy_s.pop(w.index, None)
        w.writer.close()
        if w.process.is_alive():
            w.process.kill()
        self._spawning += 1
        try:
            await asyncio.get_running_loop().run_in_executor(None, w.process.join, 5.0)
            await self._requeue_and_respawn(w)
        finally:
            self._spawning -= 1

    async def _requeue_and_respawn(self, w: _Worker) -> None:
        self._workers.remove(w)
        for job in reversed(w.inflight):
            job.attempts += 1
            if job.future.done():
                continue
            if job.attempts >= MAX_ATTEMPTS:
                job.future.set_exception(PoolError(f"a job ended {MAX_ATTEMPTS} workers; giving it up"))
            else:
                self._enqueue(job, front=True)
        w.inflight.clear()
        if self._closed or w.retiring:
            return
        self.restarts += 1
        self._refill()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_for_workers(self, timeout_s: float = 10.0) -> bool:
        """Wait until every replacement has started and W workers are live; False on timeout."""
        deadline = time.monotonic() + timeout_s

        def settled() -> bool:
            return self.live_workers == self.size and not self._spawning and not self._starting

        while not settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return settled()

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for w in list(self._workers):
                if w.dead:
                    continue
                if not w.process.is_alive():
                    self._background(self._replace(w))
                elif w.inflight and now - w.busy_since > w.inflight[0].timeout_s:
                    log.warning(
                        "worker %d (pid %s) hung on a job for %.1f s: killing it",
                        w.index,
                        w.process.pid,
                        now - w.busy_since,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(w.process.pid, signal.SIGKILL)
                    self._background(self._replace(w))
            if self.live_workers + self._starting < self.size and not self._spawning:
                self._refill()  # a backstop: every replacement refills, and so does this


def _how_it_ended(proc: Any) -> str:
    """How a process that ended (``exitcode`` set) ended: "was killed by SIGKILL", "exited with code 3"."""
    code = proc.exitcode
    if code is None:
        return "closed its socket but is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _with_job(msg: JobMessage, job_id: int) -> JobMessage:
    return dataclasses.replace(msg, job=job_id)


async def _read_message(reader: asyncio.StreamReader) -> Message:
    header = await reader.readexactly(FRAME_HEADER.size)
    body = await reader.readexactly(read_frame_length(header, MAX_FRAME))
    return unpack(body)
