"""``StorageClient``: the async GBS client for one storage server (gbs-http-protocol §1–§7).

| call                   | request                                       | success                      |
|------------------------|-----------------------------------------------|------------------------------|
| ``connect``            | TLS handshake + SPKI pin, ``GET …/version``   | 200 CBOR → ``VersionInfo``   |
| ``allocate``           | ``POST …/immutable/{si}``                     | 200 CBOR → ``AllocateResponse`` |
| ``write``              | ``PATCH …/immutable/{si}/{shnum}``            | 200 (ranges left) / 201 (done) |
| ``abort``              | ``PUT …/immutable/{si}/{shnum}/abort``        | 200                          |
| ``list_shares``        | ``GET …/immutable/{si}/shares``               | 200 CBOR set                 |
| ``read``               | ``GET …/immutable/{si}/{shnum}`` + ``Range``  | 206 (maybe cut short) / 204  |
| ``add_or_renew_lease`` | ``PUT …/lease/{si}``                          | 204                          |
| ``advise_corrupt``     | ``POST …/immutable/{si}/{shnum}/corrupt``     | 200 (404 → False)            |

Every protocol decision (paths, headers, CBOR) is in ``uploader.wire.protocol``; this module only
moves bytes. One aiohttp session per server keeps up to ``max_connections`` TLS connections alive,
so several requests (e.g. pipelined PATCHes) run at once without a handshake each. Every new
connection is pinned (``uploader.gbs.pin``) before a request, and so the swissnum, goes out on it.

Timeouts: ``connect_timeout_s`` bounds the TCP connect and TLS handshake of each new connection;
``request_timeout_s`` bounds each wait for the server while a request runs (sending the next
piece of a body, the first answer after the body, and each read of the answer), as Tahoe's own
60-second rule does. Cancelling a call closes its connection; the session stays usable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from uploader.gbs.errors import (
    BadResponse,
    ConflictingWrite,
    ServerError,
    ServerRefused,
    ServerUnreachable,
    SpkiMismatch,
)
from uploader.gbs.payload import BuffersPayload
from uploader.gbs.pin import SpkiPin
from uploader.wire import protocol as wire
from uploader.wire.nurl import Nurl, lease_seed_of_cert, parse_nurl
from uploader.wire.protocol import AllocateResponse, Secret, Span, VersionInfo

T = TypeVar("T")
Buffer = bytes | bytearray | memoryview

MAX_CBOR_RESPONSE: Final = 1024 * 1024  # bytes; every immutable answer is far smaller
MAX_ERROR_BODY: Final = 10_000  # bytes of an error body read for its reason (as Tahoe's client)
_REASON_IN_MESSAGE: Final = 200  # characters of the reason quoted in an error message
READ_BUFSIZE: Final = 1024 * 1024  # bytes an answer may buffer before aiohttp pauses the socket
KEEPALIVE_S: Final = 30.0  # idle connections are closed after this long (servers keep them longer)
_OK_EMPTY: Final = frozenset({200, 204})


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: CIMultiDictProxy[str]
    content_type: str
    body: bytes


class StorageClient:
    """The GBS client for one storage server, named by its NURL.

    ``await connect()`` before anything else (or use ``async with``), ``await close()`` at the end.
    Every method may raise ``ServerUnreachable`` (retryable), ``SpkiMismatch`` (never retry),
    ``ServerRefused`` (``status`` kept; ``ConflictingWrite`` for 409) or ``BadResponse``. Calls
    may run concurrently. Sizes and offsets are bytes; storage indexes are 16 bytes.
    """

    def __init__(
        self,
        nurl: str | Nurl,
        *,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 60.0,
        max_connections: int = 8,
    ) -> None:
        self._nurl = nurl if isinstance(nurl, Nurl) else parse_nurl(nurl)
        if connect_timeout_s <= 0 or request_timeout_s <= 0:
            raise ValueError("timeouts must be > 0 seconds")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_connections = max_connections
        self._server = self._nurl.address
        self._base_url = self._nurl.base_url
        self._pin = SpkiPin(self._nurl.spki_hash, self._nurl.spki_digest)
        self._session: aiohttp.ClientSession | None = None
        self._version: VersionInfo | None = None
        self._lease_seed: bytes | None = None

    def __repr__(self) -> str:  # never the swissnum
        return f"StorageClient({self._server}, spki={self._nurl.spki_hash[:8]}…)"

    # -- identity --------------------------------------------------------------------------

    @property
    def nurl(self) -> Nurl:
        return self._nurl

    @property
    def server(self) -> str:
        """``host:port``, the name used in messages."""
        return self._server

    @property
    def permutation_seed(self) -> bytes:
        """The SPKI hash digest from the NURL (32 bytes; CONVENTIONS "Server identity")."""
        return self._nurl.spki_digest

    @property
    def lease_seed(self) -> bytes:
        """SHA-1 of the server certificate's DER (20 bytes), learned in ``connect``."""
        if self._lease_seed is None:
            raise RuntimeError(f"{self!r}: lease_seed is known only after connect()")
        return self._lease_seed

    @property
    def version(self) -> VersionInfo:
        """The answer to the last version request (``connect`` makes one)."""
        if self._version is None:
            raise RuntimeError(f"{self!r}: version is known only after connect()")
        return self._version

    # -- lifetime --------------------------------------------------------------------------

    async def connect(self) -> VersionInfo:
        """Open the first connection (TLS, SPKI pin), learn the lease seed, fetch the version.

        All of it within ``connect_timeout_s``: a server that takes the connection but does not
        answer (stopped, overloaded) is unreachable then, rather than holding every command that
        connects to the grid for ``request_timeout_s``."""
        if self._session is None or self._session.closed:
            self._session = self._new_session()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                version = await self.get_version()
        except TimeoutError:
            raise ServerUnreachable(
                self._server,
                f"storage server {self._server} did not answer its version request within "
                f"{self._connect_timeout_s:g} s of connecting",
            ) from None
        if self._lease_seed is None:
            cert = self._pin.cert_der
            if cert is None:  # pragma: no cover - a pinned connection always records its certificate
                raise SpkiMismatch(self._server, f"storage server {self._server} showed no certificate")
            self._lease_seed = lease_seed_of_cert(cert)
        return version

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._pin.abort_all()
        await asyncio.sleep(0)  # let the aborted transports finish closing

    async def __aenter__(self) -> StorageClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=self._pin,
            limit=self._max_connections,
            limit_per_host=self._max_connections,
            keepalive_timeout=KEEPALIVE_S,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers={
                "Authorization": wire.build_authorization(self._nurl.swissnum),
                "Accept": wire.CBOR_MIME_TYPE,
            },
            # Only what Tahoe's own client sends: no default Content-Type on bodies (CBOR requests
            # set theirs), no compression offers, no User-Agent.
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=None,
                sock_connect=self._connect_timeout_s,
                sock_read=self._request_timeout_s,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=READ_BUFSIZE,
            raise_for_status=False,
            trust_env=False,
        )

    # -- the immutable API -----------------------------------------------------------------

    async def get_version(self) -> VersionInfo:
        """``GET /storage/v1/version``; also what ``connect`` calls."""
        answer = await self._call("GET", wire.version_path(), "version request", expect={200})
        self._version = self._cbor(answer, wire.parse_version, "version request")
        return self._version

    async def allocate(
        self,
        storage_index: bytes,
        share_numbers: Sequence[int] | frozenset[int],
        allocated_size: int,
        renew_secret: bytes,
        cancel_secret: bytes,
        upload_secret: bytes,
    ) -> AllocateResponse:
        """Create buckets of ``allocated_size`` bytes each (§6.2). Shares requested but in neither
        set of the answer are ones this server will not take now."""
        what = f"allocate of {wire.storage_index_text(storage_index)}"
        secrets = {Secret.LEASE_RENEW: renew_secret, Secret.LEASE_CANCEL: cancel_secret}
        secrets[Secret.UPLOAD] = upload_secret
        answer = await self._call(
            "POST",
            wire.allocate_path(storage_index),
            what,
            expect={200},
            secrets=secrets,
            cbor=wire.build_allocate_request(share_numbers, allocated_size),
        )
        return self._cbor(answer, wire.parse_allocate_response, what)

    async def write(
        self,
        storage_index: bytes,
        shnum: int,
        offset: int,
        data: Buffer | Sequence[Buffer],
        upload_secret: bytes,
    ) -> tuple[Span, ...]:
        """Write ``data`` (one buffer, or consecutive buffers sent without joining them) at
        ``offset`` of an allocated share (§6.3). Returns the byte ranges still missing, or ``()``
        when this write completed the share (201). The buffers must not change until it returns.
        Raises ConflictingWrite (409) when stored bytes differ: abort the share then."""
        if offset < 0:
            raise ValueError(f"a share offset must be >= 0, got {offset}")
        buffers = _as_buffers(data)
        size = sum(b.nbytes for b in buffers)
        if size == 0:
            raise ValueError("a share write needs at least one byte")
        what = f"write of share {shnum} of {wire.storage_index_text(storage_index)} at offset {offset}"
        body = BuffersPayload(buffers, size, stall_timeout_s=self._request_timeout_s)
        answer = await self._call(
            "PATCH",
            wire.share_path(storage_index, shnum),
            what,
            expect={200, 201},
            secrets={Secret.UPLOAD: upload_secret},
            headers=[("Content-Range", wire.format_content_range(offset, offset + size - 1))],
            data=body,
        )
        spans = self._cbor(answer, wire.parse_required_ranges, what)
        if answer.status == 201:
            if spans:
                raise self._bad(f"answered the {what} with 201 (complete) but still requires bytes")
            return ()
        if not spans:
            raise self._bad(f"answered the {what} with 200 (incomplete) but requires no bytes")
        return spans

    async def abort(self, storage_index: bytes, shnum: int, upload_secret: bytes) -> None:
        """Abandon an in-progress share upload (§6.4); its space is freed."""
        what = f"abort of share {shnum} of {wire.storage_index_text(storage_index)}"
        await self._call(
            "PUT",
            wire.abort_path(storage_index, shnum),
            what,
            expect={200},
            secrets={Secret.UPLOAD: upload_secret},
        )

    async def list_shares(self, storage_index: bytes) -> frozenset[int]:
        """The complete shares the server holds for the storage index (§6.5); empty if none."""
        what = f"share list of {wire.storage_index_text(storage_index)}"
        answer = await self._call("GET", wire.list_shares_path(storage_index), what, expect={200})
        return self._cbor(answer, wire.parse_share_list, what)

    async def read(self, storage_index: bytes, shnum: int, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of a complete share from ``offset`` (§6.6): shorter at the end of
        the share, empty from or past its end. ServerRefused(404) for a share it does not hold."""
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        if length == 0:
            return b""
        what = f"read of share {shnum} of {wire.storage_index_text(storage_index)} at offset {offset}"
        last = offset + length - 1
        answer = await self._call(
            "GET",
            wire.share_path(storage_index, shnum),
            what,
            expect={204, 206},
            headers=[("Range", wire.format_range(offset, last))],
            limit=length,
        )
        if answer.status == 204:
            return b""
        if answer.content_type != wire.OCTET_STREAM:
            raise self._bad(f"answered the {what} with Content-Type {answer.content_type[:60]!r}")
        try:
            sent = wire.parse_response_content_range(answer.headers.get("Content-Range"))
        except wire.WireError as exc:
            raise self._bad(f"answered the {what} with a bad Content-Range: {exc}") from None
        if sent.first != offset or sent.last > last or sent.length != len(answer.body):
            raise self._bad(
                f"answered the {what} (bytes {offset}-{last}) with bytes {sent.first}-{sent.last} "
                f"and a body of {len(answer.body)} bytes"
            )
        return answer.body

    async def add_or_renew_lease(
        self, storage_index: bytes, renew_secret: bytes, cancel_secret: bytes
    ) -> None:
        """Renew the lease with this renew secret on every share of the SI, or add one (§6.7).
        ServerRefused(404) when the server holds no share of it."""
        what = f"lease on {wire.storage_index_text(storage_index)}"
        secrets = {Secret.LEASE_RENEW: renew_secret, Secret.LEASE_CANCEL: cancel_secret}
        await self._call("PUT", wire.lease_path(storage_index), what, expect=_OK_EMPTY, secrets=secrets)

    async def advise_corrupt(self, storage_index: bytes, shnum: int, reason: str) -> bool:
        """Report a corrupt share (§6.8): True when recorded, False when the server does not hold
        that share (404, which Tahoe's client ignores too)."""
        what = f"corruption advisory for share {shnum} of {wire.storage_index_text(storage_index)}"
        try:
            await self._call(
                "POST",
                wire.corrupt_path(storage_index, shnum),
                what,
                expect=_OK_EMPTY,
                cbor=wire.build_corruption_advisory(reason),
            )
        except ServerRefused as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- one request -----------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        expect: set[int] | frozenset[int],
        secrets: Mapping[Secret, bytes] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        cbor: bytes | None = None,
        data: BuffersPayload | None = None,
        limit: int = MAX_CBOR_RESPONSE,
    ) -> _Answer:
        """Send one request; return the answer if its status is expected, else raise."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError(f"{self!r}: call connect() first")
        all_headers = list(headers)
        if secrets:
            all_headers += wire.build_secret_headers(secrets)
        body: bytes | BuffersPayload | None = data
        if cbor is not None:
            all_headers.append(("Content-Type", wire.CBOR_MIME_TYPE))
            body = cbor
        try:
            async with session.request(method, self._base_url + path, headers=all_headers, data=body) as resp:
                if resp.status in expect:
                    payload = await self._read_body(resp, limit, what)
                    return _Answer(resp.status, resp.headers, resp.content_type, payload)
                if resp.status >= 400:
                    reason = await _read_reason(resp)
                    raise self._refused(resp.status, reason, what)
                raise self._bad(f"answered the {what} with an unexpected HTTP {resp.status}")
        except ServerError:
            raise
        except aiohttp.ServerFingerprintMismatch as exc:
            got = exc.got.decode("ascii", "replace") or "none"
            raise SpkiMismatch(
                self._server,
                f"storage server {self._server} presented a certificate whose public key hash is "
                f"{got}, but its NURL pins {self._nurl.spki_hash}; nothing was sent to it",
            ) from None
        except aiohttp.ClientConnectorDNSError as exc:
            raise self._unreachable(
                f"cannot resolve its host name for the {what}: {_os_reason(exc.os_error)}"
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise self._unreachable(
                f"TLS handshake failed for the {what}: {_os_reason(exc.os_error)}"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise self._unreachable(f"cannot connect for the {what}: {_os_reason(exc.os_error)}") from exc
        except aiohttp.ConnectionTimeoutError:
            raise self._unreachable(
                f"connecting for the {what} took longer than {self._connect_timeout_s:g} s"
            ) from None
        except TimeoutError:  # aiohttp's read timeouts, our stall timeout while sending
            raise self._unreachable(
                f"no progress on the {what} for {self._request_timeout_s:g} s (timed out)"
            ) from None
        except aiohttp.ClientResponseError as exc:  # an unparsable HTTP answer; no chaining: it holds headers
            raise self._bad(f"answered the {what} with invalid HTTP ({exc.message[:120]})") from None
        except (aiohttp.ClientError, OSError) as exc:  # reset, disconnected, payload cut short
            raise self._unreachable(f"connection lost during the {what} ({type(exc).__name__})") from exc

    async def _read_body(self, resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise self._bad(f"answered the {what} with {declared} bytes, more than the {limit} allowed")
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.readany():
            size += len(chunk)
            if size > limit:
                raise self._bad(f"answered the {what} with more than the {limit} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)

    def _cbor(self, answer: _Answer, parse: Callable[[bytes], T], what: str) -> T:
        if answer.content_type != wire.CBOR_MIME_TYPE:
            raise self._bad(f"answered the {what} with Content-Type {answer.content_type[:60]!r}, not CBOR")
        try:
            return parse(answer.body)
        except wire.WireError as exc:
            raise self._bad(f"answered the {what} with a body that does not parse: {exc}") from None

    def _unreachable(self, detail: str) -> ServerUnreachable:
        return ServerUnreachable(self._server, f"storage server {self._server}: {detail}")

    def _bad(self, detail: str) -> BadResponse:
        return BadResponse(self._server, f"storage server {self._server} {detail}")

    def _refused(self, status: int, reason: str, what: str) -> ServerRefused:
        shown = _shorten(reason)
        message = f"storage server {self._server} refused the {what}: HTTP {status}" + (
            f" ({shown})" if shown else ""
        )
        cls = ConflictingWrite if status == 409 else ServerRefused
        return cls(self._server, message, status, reason)


def _as_buffers(data: Buffer | Sequence[Buffer]) -> list[memoryview]:
    items: Sequence[Buffer] = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    out = []
    for item in items:
        view = memoryview(item)
        if not view.c_contiguous:
            raise ValueError("share data buffers must be contiguous")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if view.nbytes:
            out.append(view)
    return out


async def _read_reason(resp: aiohttp.ClientResponse) -> str:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_ERROR_BODY:
        chunk = await resp.content.read(MAX_ERROR_BODY - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace").strip()


def _shorten(reason: str) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", reason)).strip()
    return text if len(text) <= _REASON_IN_MESSAGE else text[: _REASON_IN_MESSAGE - 1] + "…"


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
