"""The GBS HTTP endpoints (gbs-http-protocol §5–§6): a thin aiohttp shell over ``ShareStore``.

| method + path                                    | secrets        | success | errors                          |
|--------------------------------------------------|----------------|---------|---------------------------------|
| GET  /storage/v1/version                         | none           | 200     | 401 400 406                     |
| POST /storage/v1/immutable/{si}                  | renew cancel   | 200     | 401 400 406 413 415             |
|                                                  | upload         |         |                                 |
| PATCH /storage/v1/immutable/{si}/{shnum}         | upload         | 200 201 | 401 400 404 406 408 409 416     |
| PUT  /storage/v1/immutable/{si}/{shnum}/abort    | upload         | 200     | 401 400 404 405                 |
| GET  /storage/v1/immutable/{si}/shares           | none           | 200     | 401 400 406                     |
| GET  /storage/v1/immutable/{si}/{shnum}          | none           | 206 200 | 401 400 404 416; 204 when empty |
| PUT  /storage/v1/lease/{si}                      | renew cancel   | 204     | 401 400 404                     |
| POST /storage/v1/immutable/{si}/{shnum}/corrupt  | none           | 200     | 401 400 404 413 415             |

Every request first needs the right ``Authorization`` (401), then exactly the endpoint's secrets
(400). Paths that match no route get 404 and wrong methods 405, before authorization, as in
Tahoe. Protocol decisions live in ``uploader.wire.protocol``; errors are typed (``http_status``)
and become short plain-text bodies that never contain a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from uploader.storage.errors import BadBody, BodyTooLarge, ShareNotFound, StorageError
from uploader.storage.store import Bucket, BucketState, ShareStore
from uploader.wire import protocol as wire
from workers.errors import UploaderError

log = logging.getLogger("uploader.storage")

_SI = r"{si:[a-z2-7]{25}[aeimquy4]}"
_SHNUM = r"{shnum:[0-9]+}"
_STREAM_PIECE = 1024 * 1024  # bytes per write when sending a large read


@dataclass(frozen=True, slots=True)
class AppSettings:
    swissnum: str
    application_version: bytes = b"uploader/0.1.0"
    request_timeout_s: float = 60.0  # silence allowed while reading a request body
    # Benchmarks only: hold every response this long after its handler ends (see ``_emulated_rtt``).
    emulate_rtt_s: float = 0.0


class NotAcceptable(UploaderError):
    http_status = 406


class UnsupportedMediaType(UploaderError):
    http_status = 415


class RequestTimeout(UploaderError):
    http_status = 408


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UploaderError as exc:
        return web.Response(status=exc.http_status, text=str(exc))


def _emulated_rtt(delay_s: float) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Hold each response ``delay_s`` after the request was handled (its body read and stored).

    What it emulates: the round trip a client sees between the last byte of a request and the
    response — an uploader's ack latency, which is what stop-and-wait and the pipeline depth
    depend on. What it does not: propagation of the request's bytes (bulk data still flows at
    loopback speed, so TCP's window and slow start are not limited by RTT), connection and TLS
    set-up, and responses a handler already streamed (large reads) are held only after the last
    byte. Use it to study request-level latency, not TCP behaviour over a long path.
    """

    @web.middleware
    async def delay(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        await asyncio.sleep(delay_s)
        return response

    return delay


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StorageApp:
    """Handlers bound to one store and one swissnum."""

    def __init__(self, store: ShareStore, settings: AppSettings) -> None:
        self.store = store
        self.settings = settings
        self._finishing: dict[Bucket, asyncio.Event] = {}  # buckets being fsynced and moved into place

    def application(self) -> web.Application:
        middlewares: list[Any] = [_errors]
        if self.settings.emulate_rtt_s > 0:
            middlewares.insert(0, _emulated_rtt(self.settings.emulate_rtt_s))  # errors are held too
        app = web.Application(middlewares=middlewares, client_max_size=wire.DEFAULT_BODY_LIMIT)
        base = "/storage/v1/immutable/" + _SI
        app.router.add_get("/storage/v1/version", self.version, allow_head=False)
        app.router.add_post(base, self.allocate)
        app.router.add_get(base + "/shares", self.list_shares, allow_head=False)
        app.router.add_patch(base + "/" + _SHNUM, self.write)
        app.router.add_get(base + "/" + _SHNUM, self.read, allow_head=False)
        app.router.add_put(base + "/" + _SHNUM + "/abort", self.abort)
        app.router.add_post(base + "/" + _SHNUM + "/corrupt", self.corrupt)
        app.router.add_put("/storage/v1/lease/" + _SI, self.lease)
        return app

    # --- common checks --------------------------------------------------------------------------

    def _guard(self, request: web.Request, required: frozenset[wire.Secret]) -> dict[wire.Secret, bytes]:
        """401 unless Authorization is exactly right; 400 unless the secrets are exactly ``required``."""
        values = request.headers.getall("Authorization", [])
        if values and not _is_utf8(values[0]):  # aiohttp keeps undecodable bytes as surrogates
            raise wire.WireError("the Authorization header is not UTF-8")
        if not wire.authorization_matches(values[0] if values else None, self.settings.swissnum):
            raise web.HTTPUnauthorized(text="wrong or missing Authorization header")
        return wire.parse_secret_headers(request.headers.getall(wire.SECRETS_HEADER, []), required)

    @staticmethod
    def _check_accept(request: web.Request) -> None:
        values = request.headers.getall("Accept", [])
        if not wire.accepts_cbor(values[0] if values else None):
            raise NotAcceptable("this server answers only application/cbor")

    @staticmethod
    def _cbor(body: bytes, status: int = 200) -> web.Response:
        return web.Response(status=status, body=body, content_type=wire.CBOR_MIME_TYPE)

    async def _read_cbor_body(self, request: web.Request, limit: int) -> bytes:
        """The request body (415 unless CBOR or untyped, 413 over ``limit`` bytes)."""
        if not wire.is_cbor_content_type(request.headers.get("Content-Type")):
            raise UnsupportedMediaType("request bodies must be application/cbor")
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(
                f"request body of {request.content_length} bytes is over the {limit}-byte limit"
            )
        body = bytearray()
        timeout_s = self.settings.request_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    chunk = await request.content.read(limit + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > limit:
                        raise BodyTooLarge(f"request body is over the {limit}-byte limit")
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
        return bytes(body)

    @staticmethod
    def _si(request: web.Request) -> bytes:
        return wire.parse_storage_index(request.match_info["si"])

    @staticmethod
    def _shnum(request: web.Request) -> int:
        text = request.match_info["shnum"]
        if len(text) > 3 or int(text) > wire.MAX_SHNUM:
            raise ShareNotFound(f"share numbers run from 0 to {wire.MAX_SHNUM}")
        return int(text)

    # --- endpoints ------------------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.StreamResponse:
        self._guard(request, wire.NO_SECRETS)
        self._check_accept(request)
        return self._cbor(wire.build_version(self.store.version_info(self.settings.application_version)))

    async def allocate(self, request: web.Request) -> web.StreamResponse:
        secrets = self._guard(request, wire.ALLOCATE_SECRETS)
        self._check_accept(request)
        si = self._si(request)
        msg = wire.parse_allocate_request(await self._read_cbor_body(request, wire.ALLOCATE_BODY_LIMIT))
        if msg.allocated_size == 0:
            raise wire.WireError("allocated-size must be at least 1 byte")
        have, allocated = self.store.allocate(
            si,
            msg.share_numbers,
            msg.allocated_size,
            secrets[wire.Secret.LEASE_RENEW],
            secrets[wire.Secret.LEASE_CANCEL],
            secrets[wire.Secret.UPLOAD],
        )
        return self._cbor(wire.build_allocate_response(have, allocated))

    async def write(self, request: web.Request) -> web.StreamResponse:
        secrets = self._guard(request, wire.UPLOAD_SECRETS)
        self._check_accept(request)
        span = wire.parse_content_range(request.headers.get("Content-Range"))
        store = self.store
        bucket = store.bucket(self._si(request), self._shnum(request), secrets[wire.Secret.UPLOAD])
        if request.content_length is not None and request.content_length != span.length:
            raise BadBody(
                f"body of {request.content_length} bytes does not match Content-Range ({span.length} bytes)"
            )
        fd = store.begin_write(bucket, span.first, span.end)
        created = False
        try:
            offset, remaining = span.first, span.length
            content = request.content
            timeout_s = self.settings.request_timeout_s
            while remaining:
                try:
                    async with asyncio.timeout(timeout_s):
                        data = await content.readany()  # one chunk as received: no joining copy
                except TimeoutError:
                    raise RequestTimeout(f"no body bytes for {timeout_s:g} s") from None
                except ConnectionError:  # the client went away: what arrived is kept (resumable)
                    raise BadBody(
                        f"connection lost after {span.length - remaining} of {span.length} body bytes"
                    ) from None
                if not data:
                    raise BadBody(f"body ended after {span.length - remaining} of {span.length} bytes")
                if len(data) > remaining:  # aiohttp stops a body at its length; a chunked one may not
                    raise BadBody(f"body is longer than Content-Range ({span.length} bytes)")
                store.write(bucket, fd, offset, (data,))
                offset += len(data)
                remaining -= len(data)
            if request.content_length is None:  # chunked: the body must end exactly here
                try:
                    async with asyncio.timeout(timeout_s):
                        extra = await content.read(1)
                except TimeoutError:
                    raise RequestTimeout(f"the body did not end within {timeout_s:g} s") from None
                if extra:
                    raise BadBody(f"body is longer than Content-Range ({span.length} bytes)")
            if bucket.complete:
                await self._finish(bucket, fd)
                created = True
        finally:
            store.end_write(bucket, fd)
        return self._cbor(wire.build_required_ranges(bucket.required()), 201 if created else 200)

    async def _finish(self, bucket: Bucket, fd: int) -> None:
        """Complete the share: the first PATCH to find it complete fsyncs and renames it; any other
        one that also wrote its last bytes (pipelined PATCHes) waits for that and answers the same."""
        finishing = self._finishing.get(bucket)
        if finishing is not None:
            await finishing.wait()
        elif bucket.state is BucketState.OPEN:
            done = self._finishing[bucket] = asyncio.Event()
            self.store.start_finish(bucket)
            ok = False
            try:
                await asyncio.to_thread(self.store.finish_sync, bucket, fd)
                ok = True
            finally:
                self.store.end_finish(bucket, ok)
                del self._finishing[bucket]
                done.set()
        if bucket.state is not BucketState.DONE:
            raise StorageError(f"share {bucket.shnum} could not be completed (see the server's log)")

    async def abort(self, request: web.Request) -> web.StreamResponse:
        secrets = self._guard(request, wire.UPLOAD_SECRETS)
        self.store.abort(self._si(request), self._shnum(request), secrets[wire.Secret.UPLOAD])
        return web.Response(status=200)

    async def list_shares(self, request: web.Request) -> web.StreamResponse:
        self._guard(request, wire.NO_SECRETS)
        self._check_accept(request)
        return self._cbor(wire.build_share_list(self.store.complete_shares(self._si(request))))

    async def read(self, request: web.Request) -> web.StreamResponse:
        self._guard(request, wire.NO_SECRETS)
        reader = self.store.open_share(self._si(request), self._shnum(request))
        with reader:
            header = request.headers.get("Range")
            if header is None:
                first, end, status = 0, reader.length, 200
            else:
                want = wire.parse_range(header)
                first, end, status = want.first, min(want.end, reader.length), 206
                if first >= end:
                    return web.Response(status=204)
            headers = {"Content-Type": wire.OCTET_STREAM}
            if status == 206:
                headers["Content-Range"] = wire.format_content_range(first, end - 1)
            if end - first <= _STREAM_PIECE:
                return web.Response(status=status, body=reader.read(first, end - first), headers=headers)
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = end - first
            await response.prepare(request)
            for offset in range(first, end, _STREAM_PIECE):
                await response.write(reader.read(offset, min(_STREAM_PIECE, end - offset)))
            await response.write_eof()
            return response

    async def lease(self, request: web.Request) -> web.StreamResponse:
        secrets = self._guard(request, wire.LEASE_SECRETS)
        self.store.add_or_renew_lease(
            self._si(request), secrets[wire.Secret.LEASE_RENEW], secrets[wire.Secret.LEASE_CANCEL]
        )
        return web.Response(status=204)

    async def corrupt(self, request: web.Request) -> web.StreamResponse:
        self._guard(request, wire.NO_SECRETS)
        si, shnum = self._si(request), self._shnum(request)
        if shnum not in self.store.complete_shares(si):
            raise ShareNotFound(f"no complete share {shnum} for this storage index")
        reason = wire.parse_corruption_advisory(await self._read_cbor_body(request, wire.CORRUPT_BODY_LIMIT))
        path = self.store.advise_corrupt(si, shnum, reason)
        log.warning(
            "corruption reported for share %d of storage index %s (%s)",
            shnum,
            wire.storage_index_text(si),
            path.name,
        )
        return web.Response(status=200)


__all__ = ["AppSettings", "StorageApp"]
