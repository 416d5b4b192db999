"""The web API's aiohttp shell: every request goes through ``request.route`` (pure), then a handler
that only moves bytes — a body into a spool file, a download into the response.

Uploads: the body streams into ``DATA_DIR/spool/upload-*.part`` (never whole in memory), and only
a complete body is uploaded; the spool file is removed once the upload is done or has failed. When the
daemon stops, a complete body stays for its next start: with its journal if its upload had begun
(suspended), or renamed ``pending-*.part`` if it had not (``set_aside``). Downloads: the response
starts with the first verified bytes, so an error before then gets a proper status; an error after
it cuts the connection short of Content-Length, so no client mistakes a partial file for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from uploader.api import request as rq
from uploader.api.activity import Activity, Transfer, Utilisation, upload_progress
from uploader.api.history import History, ServerStats
from uploader.api.metrics import CONTENT_TYPE, DaemonCollector, registry_for, render
from uploader.api.page import SECURITY_HEADERS, Assets, not_modified
from uploader.chk.caps import ChkCap, LitCap
from uploader.gridclient import GridClient
from uploader.upload import Upload
from workers.base32 import b32encode
from workers.errors import UploaderError

log = logging.getLogger("uploader.api")

CHUNK = 1024 * 1024  # bytes per spool write
MAX_UPLOAD = 2**50  # a body larger than this is refused with 413
PENDING = "pending-"  # a complete body set aside at a stop, uploaded at the next start


@dataclass
class ApiState:
    grid: GridClient
    spool: Path
    max_uploads: int  # uploads encoding at once; more wait in stage "queued"
    clock: Callable[[], float] = time.monotonic
    activity: Activity = field(init=False)
    utilisation: Utilisation = field(default_factory=Utilisation)
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    draining: bool = False  # the daemon is stopping (``stop``): no new requests
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)  # requests being handled
    receiving: dict[str, asyncio.Timeout] = field(default_factory=dict)  # uploads waiting for body bytes
    started: float = field(init=False)
    history: History = field(default_factory=History)  # the status page's chart
    tick_s: float = 1.0  # how often the shell calls ``sample`` (its lateness is the loop's lag)
    loop_lag_s: float = 0.0  # how late the last tick ran
    server_stats: dict[str, ServerStats] = field(default_factory=dict)  # host:port -> rate, latency
    assets: Assets = field(default_factory=Assets)  # the status page's files

    def __post_init__(self) -> None:
        self.activity = Activity(self.clock)
        self.started = self.clock()
        self.upload_slots = asyncio.Semaphore(self.max_uploads)
        self.stopping = asyncio.Event()  # set with ``draining``: uploads waiting for a slot give up
        self.registry = registry_for(
            DaemonCollector(
                self.activity,
                self.utilisation,
                lambda: self.grid.pool.live_workers,
                lambda: dict(self.grid.pool.busy_s),
                self.requests,
                self.grid.server_flow,
            )
        )

    def stop(self) -> None:
        """The daemon is stopping: refuse new requests, and end every wait for request-body bytes
        now (``_awaiting_body``), as a body still arriving could not be uploaded in time anyway and
        aiohttp reads no more of it once it closes the connection."""
        self.draining = True
        self.stopping.set()
        now = asyncio.get_running_loop().time()
        for timer in self.receiving.values():
            timer.reschedule(now)

    def sample(self) -> None:
        """Once per tick: utilisation, each server's rate and latency, the chart's history, and
        each transfer's progress (for its rate and ETA)."""
        pool = self.grid.pool
        now, cpu_s = self.clock(), time.process_time()
        uptime, last = now - self.started, self.history.last_t
        self.loop_lag_s = max(0.0, uptime - last - self.tick_s) if last is not None else 0.0
        busy_s = {w: pool.busy_s.get(w, 0.0) for w in pool.worker_indexes}  # idle ones too
        self.utilisation.sample(now, cpu_s, busy_s)
        flow = self.grid.server_flow()
        for name, b in flow.items():  # zeros before a server's first write: a baseline to count from
            counters = (b.bytes_sent, b.writes, b.write_s) if b is not None else (0, 0, 0.0)
            self.server_stats.setdefault(name, ServerStats()).update(now, *counters)
        self.history.add(
            uptime,
            {str(w): s for w, s in busy_s.items()},
            {name: b.bytes_sent if b is not None else 0 for name, b in flow.items()},
            cpu_s,
            self.loop_lag_s,
        )
        self.activity.tick()


Handler = Callable[[ApiState, web.Request, rq.Request], Awaitable[web.StreamResponse]]


def make_app(state: ApiState) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)  # only small bodies are ever read whole
    app["state"] = state

    def check(request: web.Request, req: rq.Request) -> None:
        """The checks of a routed request that need no body."""
        if state.draining:
            raise rq.ApiError(503, "the daemon is stopping and takes no new requests")
        if req.route in (rq.Route.UPLOAD_PUT, rq.Route.UPLOAD_FORM):
            if req.route is rq.Route.UPLOAD_PUT:
                chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
                rq.upload_length(request.headers.get("Content-Length"), chunked, MAX_UPLOAD)
            else:
                rq.multipart_boundary(request.headers.get("Content-Type"))
            rq.upload_tag(request.headers.get(rq.TAG_HEADER))

    def refuse(request: web.Request, name: str, exc: Exception) -> web.Response:
        status, message = rq.error_status(exc)
        if status >= 500 and not isinstance(exc, UploaderError | rq.ApiError):
            log.error("%s %s failed", request.method, name, exc_info=exc)
        return error_response(status, message, exc)

    def count(name: str, resp: web.StreamResponse) -> None:
        state.requests[(name, resp.status)] = state.requests.get((name, resp.status), 0) + 1

    async def dispatch(request: web.Request) -> web.StreamResponse:
        name = "unknown"
        task = asyncio.current_task()
        assert task is not None
        state.handlers.add(task)  # a stopping daemon waits for these, up to its one deadline
        try:
            req = rq.route(request.method, request.rel_url.raw_path, request.query)
            name = req.route.value
            check(request, req)
            resp = await HANDLERS[req.route](state, request, req)
        except Exception as exc:  # the process boundary: every error becomes a status and a sentence
            resp = refuse(request, name, exc)
        finally:
            state.handlers.discard(task)
        count(name, resp)
        return resp

    async def expect(request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: the checks that need no body run before the client is told to
        send it, so a refused upload is refused before its bytes cross (RFC 9110 §10.1.1); the
        connection then closes, as the body was never read."""
        name = "unknown"
        try:
            value = request.headers.get("Expect", "")
            if value.lower() != "100-continue":
                raise rq.ApiError(417, f"only Expect: 100-continue is understood, not {value[:64]!r}")
            req = rq.route(request.method, request.rel_url.raw_path, request.query)
            name = req.route.value
            check(request, req)
        except Exception as exc:
            resp = refuse(request, name, exc)
            resp.force_close()
            count(name, resp)
            return resp
        if request.version >= HttpVersion11:  # an HTTP/1.0 client gets no interim answer (§15.2)
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started
        return None

    app.router.add_route("*", "/{tail:.*}", dispatch, expect_handler=expect)
    return app


def error_response(status: int, message: str, exc: BaseException | None = None) -> web.Response:
    headers = {}
    if isinstance(exc, rq.ApiError) and exc.allow:
        headers["Allow"] = ", ".join(exc.allow)
    if isinstance(exc, rq.ApiError) and exc.status == 416 and exc.size is not None:
        headers["Content-Range"] = f"bytes */{exc.size}"
    if isinstance(exc, UploaderError):
        headers[rq.EXIT_CODE_HEADER] = str(exc.exit_code)
    return web.Response(status=status, text=message + "\n", content_type="text/plain", headers=headers)


# ---- uploads ------------------------------------------------------------------------------------
class SetAside(Exception):
    """The daemon began stopping before this upload got a slot: its body is kept for the next start."""


@contextlib.asynccontextmanager
async def upload_slot(state: ApiState) -> AsyncIterator[None]:
    """One of the ``max_uploads`` upload slots, for the block; ``SetAside`` instead once the daemon
    is stopping (before or while waiting): an upload not yet started is not started then, as it
    could rarely finish before the deadline; its body is kept whole for the next start instead."""
    if state.draining:
        raise SetAside
    acquire = asyncio.ensure_future(state.upload_slots.acquire())
    stopping = asyncio.ensure_future(state.stopping.wait())

    async def settle() -> bool:
        """Stop waiting; whether the slot was taken."""
        stopping.cancel()
        if not acquire.done():
            acquire.cancel()  # a slot handed over but not yet taken is passed on by the semaphore
            await asyncio.wait((acquire,))
        return not acquire.cancelled()

    try:
        await asyncio.wait((acquire, stopping), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this task was cancelled while waiting: leave no slot taken
        if await settle():
            state.upload_slots.release()
        raise
    got = await settle()
    if not got or state.draining:
        if got:
            state.upload_slots.release()
        raise SetAside
    try:
        yield
    finally:
        state.upload_slots.release()


def set_aside(path: Path) -> Path:
    """Keep the complete body at ``path`` (a spool file) for the daemon's next start: renamed
    ``pending-*.part``, which the start-up clean-up leaves and the next run uploads."""
    kept = path.with_name(PENDING + path.name.removeprefix("upload-"))
    path.rename(kept)
    return kept


class _Truncated(Exception):
    status = 400


class _Stalled(_Truncated):
    status = 408


class _Stopping(_Truncated):
    status = 503


@contextlib.asynccontextmanager
async def _awaiting_body(state: ApiState, t: Transfer) -> AsyncIterator[None]:
    """Around each wait for request-body bytes: after ``request_timeout_s`` of silence it raises
    ``_Stalled`` (408), and once the daemon is stopping (before or during the wait) ``_Stopping``
    (503) — a wait the body's bytes already satisfy still completes. Only waits for bytes are
    interrupted, never a spool write in a thread, which must end before its file is closed."""
    idle_s = state.grid.config.request_timeout_s  # silence allowed mid-body, as for storage servers
    try:
        async with asyncio.timeout(0 if state.draining else idle_s) as timer:
            state.receiving[t.id] = timer
            yield
    except TimeoutError:
        if state.draining:
            raise _Stopping(
                f"the daemon is stopping and the request body was still arriving after {t.bytes_done} bytes"
            ) from None
        raise _Stalled(
            f"the request body stalled: no bytes for {idle_s:g} s after {t.bytes_done} bytes"
        ) from None
    finally:
        state.receiving.pop(t.id, None)


async def _spool(state: ApiState, read: Callable[[], Awaitable[bytes]], fd: int, t: Transfer) -> int:
    """Copy chunks from ``read`` (b"" at the end) into ``fd``; the bytes written (also ``t.bytes_done``)."""
    loop = asyncio.get_running_loop()
    total = 0
    while True:
        try:
            async with _awaiting_body(state, t):
                chunk = await read()
        except (HttpProcessingError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            raise _Truncated(f"the request body ended early after {total} bytes ({exc})") from None
        if not chunk:
            return total
        try:
            await loop.run_in_executor(None, _write_all, fd, chunk)
        except OSError as exc:  # the spool's disk is full (or failing): say so, keep nothing
            status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500
            raise rq.ApiError(
                status,
                f"cannot spool the request body in {state.spool}: {exc.strerror}; nothing was uploaded",
            ) from None
        total += len(chunk)
        t.bytes_done = total


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _upload(
    state: ApiState,
    request: web.Request,
    receive: Callable[[int, Transfer], Awaitable[int]],
    declared: int | None = None,
) -> web.Response:
    """Spool a body via ``receive(fd, t)``, upload it, answer the cap; nothing stays behind on failure.

    The cap goes to this client alone: the shared status shows the storage index and file name."""
    tag = rq.upload_tag(request.headers.get(rq.TAG_HEADER))
    t = state.activity.start("upload", -1 if declared is None else declared)
    t.tag = tag
    fd, name = tempfile.mkstemp(prefix=f"upload-{t.id}-", suffix=".part", dir=state.spool)
    path = Path(name)
    jobs: list[Upload] = []
    kept = False  # the body stays in the spool for the daemon's next start
    size = -1
    try:
        try:
            size = await receive(fd, t)
        finally:
            os.close(fd)
        t.size, t.bytes_done = size, 0
        log.info("upload %s: received %d bytes", t.id, size)
        t.stage = "queued"
        async with upload_slot(state):
            t.stage = "hashing"

            def on_job(job: Upload) -> None:
                t.probe = lambda: _upload_probe(job)
                jobs.append(job)

            result = await state.grid.upload(path, upload_progress(t, size), on_job=on_job)
        if isinstance(result.cap, ChkCap):
            t.storage_index = b32encode(result.cap.storage_index)
            t.servers = {
                name: {"shares": sorted(s), "state": "complete"} for name, s in result.servers.items()
            }
        t.bytes_done = size
        state.activity.finish(t)
        log.info(
            "upload %s si=%s: done, %d bytes in %.2f s (%.1f MB/s) on %d servers",
            t.id,
            t.storage_index or "(LIT)",
            size,
            result.seconds,
            size / max(result.seconds, 1e-9) / 1e6,
            len(result.servers),
        )
        return web.Response(
            text=str(result.cap),
            content_type="text/plain",
            headers={rq.SHARE_BYTES_HEADER: str(result.share_bytes_sent)},
        )
    except SetAside:
        kept = _keep(state, t, path)
        raise rq.ApiError(503, _kept_sentence(size, kept, started=False)) from None
    except asyncio.CancelledError:
        # Only the daemon's stop cancels an upload (aiohttp does not cancel a handler whose client
        # leaves): the client is told what became of it, in the second the stop leaves for answers.
        if jobs and jobs[0].suspended:  # the daemon is stopping: it resumes this one at its next start
            kept = True
            t.stage = "suspended"
            state.activity.finish(
                t, "suspended (the daemon stopped); it resumes when the daemon starts again"
            )
            log.warning("upload %s si=%s: suspended", t.id, t.storage_index or "-")
            if not state.draining:
                raise
            _uncancel()
            raise rq.ApiError(503, _kept_sentence(size, True, started=True)) from None
        if state.draining and size >= 0:  # stopped before any share was written (no journal yet)
            kept = _keep(state, t, path)
            _uncancel()
            raise rq.ApiError(503, _kept_sentence(size, kept, started=False)) from None
        t.stage = "cancelled"
        state.activity.finish(t, "cancelled (the daemon stopped or the client went away)")
        log.warning("upload %s si=%s: cancelled", t.id, t.storage_index or "-")
        raise
    except _Truncated as exc:
        state.activity.finish(t, str(exc))
        log.warning("upload %s: %s; nothing was uploaded", t.id, exc)
        raise rq.ApiError(exc.status, f"{exc}; nothing was uploaded") from None
    except BaseException as exc:
        state.activity.finish(t, rq.error_status(exc)[1])  # the sentence the client gets too
        log.warning("upload %s si=%s: failed: %s", t.id, t.storage_index or "-", exc)
        raise
    finally:
        if not kept:  # a suspended or set-aside upload's body stays for the next start
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _kept_sentence(size: int, kept: bool, *, started: bool) -> str:
    """A stopping daemon's answer to an upload it did not finish."""
    if not kept:
        return "the daemon is stopping; this upload had not started and nothing was uploaded"
    if started:
        return (
            f"the daemon is stopping; this upload ({size} bytes) is suspended: the daemon resumes it "
            "when it starts again. Send the file again then for its cap (the same cap)"
        )
    return (
        f"the daemon is stopping; this upload ({size} bytes, received whole) had not started and is "
        "kept: the daemon uploads it when it starts again. Send the file again then for its cap "
        "(the same cap)"
    )


def _uncancel() -> None:
    """This handler answers instead of ending cancelled: the cancellation is consumed (asyncio's
    timeouts further on must not take it for theirs)."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _keep(state: ApiState, t: Transfer, path: Path) -> bool:
    """The daemon stopped before this upload wrote any share: set its body aside for the next
    start (True), or say why it could not be (False: the body is then removed)."""
    try:
        set_aside(path)
    except OSError as exc:
        t.stage = "cancelled"
        state.activity.finish(
            t, f"cancelled (the daemon stopped) and its body could not be kept: {exc.strerror}"
        )
        log.warning("upload %s: the daemon stopped; cannot keep its body: %s", t.id, exc.strerror)
        return False
    t.stage = "suspended"
    state.activity.finish(
        t, "suspended before it started (the daemon stopped); it runs when the daemon starts again"
    )
    log.warning("upload %s: kept for the next start (the daemon stopped before it began)", t.id)
    return True


def _upload_probe(job: Upload) -> dict[str, Any]:
    """Per-server state of a running upload, from its buckets (names are host:port, never secrets)."""
    servers: dict[str, dict[str, Any]] = {}
    for b in job.buckets:
        entry = servers.setdefault(b.link.name, {"shares": [], "state": "writing"})
        entry["shares"].append(b.shnum)
        if b.link.lost is not None or b.failed:
            entry["state"] = "lost"
        elif b.complete and entry["state"] != "lost":
            entry["state"] = "complete"
    si = getattr(job, "storage_index", None)
    return {"storage_index": b32encode(si) if si else None, "servers": servers}


async def upload_put(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    declared = rq.upload_length(request.headers.get("Content-Length"), chunked, MAX_UPLOAD)

    async def receive(fd: int, t: Transfer) -> int:
        size = await _spool(state, lambda: request.content.read(CHUNK), fd, t)
        if declared is not None and size != declared:
            raise _Truncated(f"the request body ended early after {size} of {declared} bytes")
        return size

    return await _upload(state, request, receive, declared)


async def upload_form(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    rq.multipart_boundary(request.headers.get("Content-Type"))

    async def receive(fd: int, t: Transfer) -> int:
        try:
            reader = await request.multipart()
            while True:
                async with _awaiting_body(state, t):
                    part = await reader.next()
                if part is None:
                    break
                if isinstance(part, BodyPartReader) and part.name == "file":
                    t.name = rq.display_name(part.filename)
                    size = await _spool(state, functools.partial(part.read_chunk, CHUNK), fd, t)
                    while True:  # read past the remaining fields
                        async with _awaiting_body(state, t):
                            if await reader.next() is None:
                                break
                    return size
                async with _awaiting_body(state, t):
                    await part.release()
        except (
            HttpProcessingError,
            ConnectionError,
            asyncio.IncompleteReadError,
            ValueError,
            AssertionError,
        ) as exc:
            raise _Truncated(f"the multipart body is malformed or ended early ({exc})") from None
        raise rq.ApiError(400, "the multipart form has no 'file' field")

    return await _upload(state, request, receive)


# ---- downloads ----------------------------------------------------------------------------------
class _ResponseSink:
    """Writes plaintext into the response, which starts on the first bytes (the download's checks
    have passed for them by then)."""

    dest = ""
    base = 0

    def __init__(self, request: web.Request, resp: web.StreamResponse, t: Transfer, base: int) -> None:
        self.request = request
        self.resp = resp
        self.t = t
        self.base = base
        # The client went away: a write failed on its connection. Marked here, as the download may
        # report the error wrapped or beside others, and it must not count as a failed download.
        self.gone = False

    async def write(self, data: memoryview) -> None:
        try:
            if not self.resp.prepared:
                await self.resp.prepare(self.request)
            await self.resp.write(bytes(data))  # the view is a slot the download reuses: copy
        except ConnectionError:
            self.gone = True
            raise
        self.t.bytes_done += len(data)


async def download(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    cap = req.cap
    assert cap is not None
    span = rq.parse_range(request.headers.get("Range"), cap.size)
    offset, length = (span.offset, span.length) if span else (0, cap.size)
    resp = web.StreamResponse(status=206 if span else 200)
    resp.content_type = "application/octet-stream"
    resp.headers["Accept-Ranges"] = "bytes"
    if span:
        resp.headers["Content-Range"] = span.content_range(cap.size)
    resp.content_length = length
    if request.method == "HEAD" or isinstance(cap, LitCap) or length == 0:
        await resp.prepare(request)
        if request.method != "HEAD" and isinstance(cap, LitCap):
            await resp.write(cap.data[offset : offset + length])
        await resp.write_eof()
        return resp
    t = state.activity.start("download", length, stage="downloading")
    t.storage_index = b32encode(cap.storage_index)
    log.info(
        "download %s si=%s: bytes %d-%d of %d", t.id, t.storage_index, offset, offset + length - 1, cap.size
    )
    sink = _ResponseSink(request, resp, t, offset)
    try:
        result = await state.grid.download(cap, sink, offset=offset, length=length)
        t.servers = {s: {"shares": shares, "state": "read"} for s, shares in result.shares_used.items()}
        await resp.write_eof()
    except BaseException as exc:
        cancelled = isinstance(exc, asyncio.CancelledError)
        if cancelled or sink.gone:  # as an upload whose client leaves: cancelled, not failed
            t.stage = "cancelled"
            why = "the daemon stopped" if cancelled else "the client went away"
            state.activity.finish(t, f"cancelled ({why})")
            log.warning(
                "download %s si=%s: cancelled after %d bytes (%s)", t.id, t.storage_index, t.bytes_done, why
            )
        else:
            state.activity.finish(t, str(exc) or type(exc).__name__)
            log.warning(
                "download %s si=%s: failed after %d bytes: %s", t.id, t.storage_index, t.bytes_done, exc
            )
        if cancelled or not resp.prepared:
            raise
        # Headers went out: cut the connection short of Content-Length so the client sees the failure.
        if request.transport is not None:
            request.transport.close()
        return resp
    state.activity.finish(t)
    log.info("download %s si=%s: done, %d bytes in %.2f s", t.id, t.storage_index, length, result.seconds)
    return resp


async def filenode(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    assert req.cap is not None
    return web.Response(text=json.dumps(rq.filenode_json(req.cap)), content_type="application/json")


# ---- status and metrics -------------------------------------------------------------------------
def status_json(state: ApiState) -> dict[str, Any]:
    """``GET /status``: storage indexes only, never caps."""
    pool = state.grid.pool
    return {
        "uptime_s": round(state.clock() - state.started, 3),
        "draining": state.draining,
        "transfers": state.activity.snapshot(),
        "workers": {
            "configured": pool.size,
            "live": pool.live_workers,
            "utilisation": {str(w): f for w, f in sorted(state.utilisation.workers.items())},
            "busy_s": {str(w): round(s, 3) for w, s in sorted(pool.busy_s.items())},
        },
        "network_process": {
            "utilisation": state.utilisation.network,
            "cpu_s": round(time.process_time(), 3),
            "loop_lag_ms": round(state.loop_lag_s * 1e3, 1),
        },
        "servers": server_json(state),
        "settings": settings_json(state),
        "history_seq": state.history.last_seq,
    }


def server_json(state: ApiState) -> list[dict[str, Any]]:
    """Per storage server: bytes in flight now, acknowledged bytes (all uploads so far), write rate
    and mean write latency over the last tick, failed write attempts; unreachable ones with why."""
    out: list[dict[str, Any]] = []
    for name, budget in state.grid.server_flow().items():
        stats = state.server_stats.get(name, ServerStats())
        entry: dict[str, Any] = {"name": name, "state": "connected"}
        if budget is not None:
            entry.update(
                in_flight_bytes=budget.in_flight,
                capacity_bytes=budget.capacity,
                bytes_sent=budget.bytes_sent,
                writes=budget.writes,
                failures=budget.failures,
            )
        else:
            entry.update(in_flight_bytes=0, bytes_sent=0, writes=0, failures=0)
        entry["rate"] = stats.rate
        entry["latency_ms"] = None if stats.latency_s is None else round(stats.latency_s * 1e3, 1)
        out.append(entry)
    for name, why in sorted(state.grid.unreachable.items()):
        out.append({"name": name, "state": "unreachable", "error": why})
    return out


def settings_json(state: ApiState) -> dict[str, Any]:
    """The configuration in effect (after any reload): what the page shows under "configuration"."""
    settings, grid = state.grid.settings, state.grid
    return {
        "workers": grid.pool.size,
        "shares_needed": settings.params.k,
        "shares_total": settings.params.n,
        "shares_happy": settings.happy,
        "max_segment_size": settings.params.max_segment_size,
        "window": settings.window,
        "pipeline_depth": settings.pipeline_depth,
        "stock_mode": settings.stock_mode,
        "erasure_backend": _backend_in_use(grid),
        "max_uploads": state.max_uploads,
    }


async def status(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    """The snapshot, and in ``Server-Timing`` how long it took to build (the rest of a slow answer
    is the event loop's queue, which is what a poller feels when the daemon is busy)."""
    t0 = time.perf_counter()
    # compact: json's C encoder (an indent would take the pure-Python one, ~20x slower here)
    body = json.dumps(status_json(state), separators=(",", ":"))
    built_ms = (time.perf_counter() - t0) * 1e3
    resp = web.Response(text=body, content_type="application/json")
    resp.headers["Server-Timing"] = f"build;dur={built_ms:.2f}"
    return resp


def _backend_in_use(grid: GridClient) -> str:
    """The erasure backend the workers use, and the setting when that differs ("isal", "zfec (auto)")."""
    selection = grid.pool.erasure
    if selection is None:
        return grid.config.erasure_backend
    if selection.requested == selection.name:
        return selection.name
    return f"{selection.name} ({selection.requested}{': ' + selection.note if selection.note else ''})"


async def history(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    return web.Response(text=json.dumps(state.history.to_json(req.since)), content_type="application/json")


async def page(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    """The status page and its files, from memory, revalidated by ETag."""
    asset = state.assets.get(req.name)
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if not_modified(asset, request.headers.get("If-None-Match")):
        return web.Response(status=304, headers=headers)
    resp = web.Response(body=asset.body, headers=headers)
    resp.content_type = asset.content_type
    resp.charset = "utf-8"
    return resp


async def metrics(state: ApiState, request: web.Request, req: rq.Request) -> web.StreamResponse:
    resp = web.Response(body=render(state.registry))
    resp.headers["Content-Type"] = CONTENT_TYPE
    return resp


HANDLERS: dict[rq.Route, Handler] = {
    rq.Route.UPLOAD_PUT: upload_put,
    rq.Route.UPLOAD_FORM: upload_form,
    rq.Route.DOWNLOAD: download,
    rq.Route.FILENODE_JSON: filenode,
    rq.Route.STATUS: status,
    rq.Route.HISTORY: history,
    rq.Route.METRICS: metrics,
    rq.Route.PAGE: page,
    rq.Route.STATIC: page,
}

__all__ = ["PENDING", "ApiState", "SetAside", "make_app", "set_aside", "status_json", "upload_slot"]
