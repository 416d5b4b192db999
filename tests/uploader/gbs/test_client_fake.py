"""StorageClient against a recording fake TLS server: the SPKI pin, the exact requests it sends, and
how it reports answers that a real server would not give (bad bodies, silence, resets)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from tests.uploader.gbs.fake_server import SWISSNUM, FakeServer, Handler, Request, http_response
from uploader.errors import RemoteProtocolError
from uploader.gbs import (
    BadResponse,
    ServerRefused,
    ServerUnreachable,
    SpkiMismatch,
    StorageClient,
    VersionInfo,
)
from uploader.wire import protocol as wire

T = TypeVar("T")
SI = bytes(range(16))
SECRET = b"\x07" * 32
VERSION = VersionInfo(10**9, 10**9, 10**9, b"fake/1")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro)


def cbor(status: int, body: bytes) -> bytes:
    return http_response(status, body, wire.CBOR_MIME_TYPE)


def version_then(rest: Handler) -> Handler:
    def handle(req: Request) -> bytes | None:
        if req.line.startswith("GET /storage/v1/version "):
            return cbor(200, wire.build_version(VERSION))
        return rest(req)

    return handle


Start = Callable[..., FakeServer]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Start]:
    servers: list[FakeServer] = []

    def start(handler: Handler, stall: Callable[[Request], bool] | None = None) -> FakeServer:
        server = FakeServer(handler, tmp_path, stall=stall).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_wrong_spki_is_refused_after_the_handshake_before_any_http(
    fake: Start,
) -> None:
    server = fake(version_then(lambda req: b""))
    other = "A" * 43

    async def go() -> None:
        client = StorageClient(server.nurl(other))
        try:
            with pytest.raises(SpkiMismatch) as info:
                await client.connect()
        finally:
            await client.close()
        assert not info.value.retryable
        assert other in str(info.value) and server.spki_hash in str(info.value)
        assert SWISSNUM not in str(info.value)

    run(go())
    wait_for(lambda: server.handshakes >= 1)
    assert server.handshakes >= 1  # the TLS connection was made ...
    assert bytes(server.received) == b""  # ... and not one byte of HTTP went over it
    assert server.requests == []


def test_right_spki_on_an_expired_self_signed_cert_is_accepted(fake: Start) -> None:
    server = fake(version_then(lambda req: b""))

    async def go() -> None:
        async with StorageClient(server.nurl()) as client:
            assert client.version == VERSION
            for _ in range(4):  # one connection, kept alive: no handshake per request
                assert await client.get_version() == VERSION
            assert len(client.lease_seed) == 20
            assert client.permutation_seed == base64.urlsafe_b64decode(server.spki_hash + "=")
            assert SWISSNUM not in repr(client) and SWISSNUM not in repr(client.nurl)

    run(go())
    assert server.handshakes == 1 and len(server.requests) == 5
    req = server.requests[0]
    assert req.line == "GET /storage/v1/version HTTP/1.1"
    assert req.header_values("Authorization") == [wire.build_authorization(SWISSNUM)]
    assert req.header_values("Accept") == ["application/cbor"]
    assert req.header_values("Accept-Encoding") == []
    assert req.header_values("Content-Type") == []
    assert req.header_values("X-Tahoe-Authorization") == []


def test_requests_carry_one_secret_per_header_and_patch_sends_buffers_unjoined(
    fake: Start,
) -> None:
    def handle(req: Request) -> bytes:
        if req.line.startswith("POST"):
            return cbor(200, wire.build_allocate_response([], [0]))
        return cbor(200, wire.build_required_ranges([wire.Span(0, 2)]))

    server = fake(version_then(handle))
    parts = [b"ab" * 40000, bytearray(b"c" * 70000), memoryview(b"0123456789" * 3)[5:25]]

    async def go() -> None:
        async with StorageClient(server.nurl()) as client:
            await client.allocate(SI, [0], 300000, b"r" * 32, b"c" * 32, b"u" * 20)
            assert await client.write(SI, 0, 2, parts, b"u" * 20) == (wire.Span(0, 2),)

    run(go())
    _, alloc, patch = server.requests
    assert alloc.header_values("Content-Type") == ["application/cbor"]
    assert wire.parse_allocate_request(alloc.body) == wire.AllocateRequest(frozenset({0}), 300000)
    secrets = alloc.header_values("X-Tahoe-Authorization")
    assert len(secrets) == 3
    assert wire.parse_secret_headers(secrets, wire.ALLOCATE_SECRETS)[wire.Secret.UPLOAD] == b"u" * 20
    size = 80000 + 70000 + 20
    assert patch.line.startswith("PATCH /storage/v1/immutable/")
    assert patch.header_values("Content-Range") == [f"bytes 2-{size + 1}/*"]
    assert patch.header_values("Content-Type") == []
    assert wire.parse_secret_headers(patch.header_values("X-Tahoe-Authorization"), wire.UPLOAD_SECRETS)
    assert patch.body == b"".join(bytes(p) for p in parts)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (cbor(200, b"\xa1\x61x\x01"), BadResponse),  # a map with the wrong key
        (cbor(200, b"\xff\xff"), BadResponse),  # not CBOR at all
        (http_response(200, wire.build_share_list([1]), "application/json"), BadResponse),
        (http_response(302, b"", None, "Location: /\r\n"), BadResponse),
        (b"this is not HTTP\r\n\r\n", BadResponse),
        (b"", ServerUnreachable),  # connection closed without an answer
        (http_response(503, b"busy " * 5000, "text/plain"), ServerRefused),
        (http_response(404, b"<html><body>No Such Resource</body></html>", "text/html"), ServerRefused),
    ],
)
def test_bad_or_refused_answers_are_typed(fake: Start, answer: bytes, kind: type[Exception]) -> None:
    server = fake(version_then(lambda req: answer))

    async def go() -> None:
        async with StorageClient(server.nurl()) as client:
            with pytest.raises(kind) as info:
                await client.list_shares(SI)
            err = info.value
            assert "127.0.0.1:" in str(err) and SWISSNUM not in str(err)
            if kind is BadResponse:
                assert isinstance(err, RemoteProtocolError)
            if isinstance(err, ServerRefused):
                assert len(err.reason.encode()) <= 10_000
                assert err.retryable == (err.status >= 500)
                assert len(str(err)) < 400
            # the client is still usable afterwards
            assert await client.get_version() == VERSION

    run(go())


def test_read_accepts_only_206_with_a_consistent_content_range(fake: Start) -> None:
    answers = iter(
        [
            http_response(206, b"0123", wire.OCTET_STREAM, "Content-Range: bytes 10-13/*\r\n"),
            http_response(204),
            http_response(200, b"0123456789", wire.OCTET_STREAM),  # no range honoured: refused
            http_response(206, b"0123", wire.OCTET_STREAM, "Content-Range: bytes 11-14/*\r\n"),  # wrong start
            http_response(
                206, b"0123", wire.OCTET_STREAM, "Content-Range: bytes 10-15/*\r\n"
            ),  # wrong length
            http_response(206, b"0123", wire.OCTET_STREAM),  # no Content-Range
            http_response(206, b"0" * 30, wire.OCTET_STREAM, "Content-Range: bytes 10-39/*\r\n"),  # too long
        ]
    )
    server = fake(version_then(lambda req: next(answers)))

    async def go() -> None:
        async with StorageClient(server.nurl()) as client:
            assert await client.read(SI, 3, 10, 20) == b"0123"  # cut short at the end of the share
            assert await client.read(SI, 3, 10, 20) == b""
            for _ in range(5):
                with pytest.raises(BadResponse):
                    await client.read(SI, 3, 10, 20)

    run(go())
    assert server.requests[1].header_values("Range") == ["bytes=10-29"]
    assert server.requests[1].line == f"GET /storage/v1/immutable/{wire.storage_index_text(SI)}/3 HTTP/1.1"


def test_silence_is_a_timeout_and_cancellation_leaves_the_client_usable(
    fake: Start,
) -> None:
    server = fake(version_then(lambda req: None if req.line.startswith("GET /storage/v1/immutable") else b""))

    async def go() -> None:
        async with StorageClient(server.nurl(), request_timeout_s=0.3) as client:
            with pytest.raises(ServerUnreachable) as info:
                await client.list_shares(SI)
            assert info.value.retryable and "timed out" in str(info.value)
            task = asyncio.ensure_future(client.list_shares(SI))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await client.get_version() == VERSION

    run(go())


def test_a_server_silent_after_the_handshake_is_unreachable_within_the_connect_timeout(fake: Start) -> None:
    server = fake(lambda req: None)  # takes the connection, never answers (a stopped server does so)

    async def go() -> None:
        client = StorageClient(server.nurl(), connect_timeout_s=0.5, request_timeout_s=60)
        with pytest.raises(ServerUnreachable) as info:
            async with client:
                pass
        # bounded by connect_timeout_s, not request_timeout_s: a hung server holds no command 60 s
        assert info.value.retryable and "within 0.5 s of connecting" in str(info.value)

    run(go())


def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused

        async def go() -> None:
            client = StorageClient(f"pb://{'A' * 43}@127.0.0.1:{port}/{SWISSNUM}#v=1", connect_timeout_s=2)
            with pytest.raises(ServerUnreachable) as info:
                async with client:
                    pass
            assert info.value.retryable and f"127.0.0.1:{port}" in str(info.value)
            assert SWISSNUM not in str(info.value)

        run(go())


def test_lease_seed_and_version_need_connect() -> None:
    client = StorageClient(f"pb://{'A' * 43}@127.0.0.1:1/{SWISSNUM}#v=1")
    with pytest.raises(RuntimeError):
        _ = client.lease_seed
    with pytest.raises(RuntimeError):
        _ = client.version
    with pytest.raises(RuntimeError):
        run(client.list_shares(SI))


def test_a_server_that_stops_reading_times_out_the_write_and_cancelling_mid_body_is_clean(
    fake: Start,
) -> None:
    server = fake(version_then(lambda req: b""), stall=lambda req: req.line.startswith("PATCH"))
    data = bytes(32 * 2**20)  # far more than the socket buffers between the two hold

    async def go() -> None:
        async with StorageClient(server.nurl(), request_timeout_s=0.5) as client:
            with pytest.raises(ServerUnreachable) as info:
                await client.write(SI, 0, 0, data, b"u" * 20)
            assert info.value.retryable and "timed out" in str(info.value)
            task = asyncio.ensure_future(client.write(SI, 0, 0, [data, data], b"u" * 20))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await client.get_version() == VERSION

    run(go())
    assert [r.line.split()[0] for r in server.requests] == ["GET", "PATCH", "PATCH", "GET"]


def test_a_server_that_does_not_speak_tls_is_unreachable() -> None:
    async def go() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        plain = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = plain.sockets[0].getsockname()[1]
        try:
            client = StorageClient(f"pb://{'A' * 43}@127.0.0.1:{port}/{SWISSNUM}#v=1", connect_timeout_s=5)
            with pytest.raises(ServerUnreachable) as info:
                async with client:
                    pass
            assert info.value.retryable and SWISSNUM not in str(info.value)
        finally:
            plain.close()
            await plain.wait_closed()

    run(go())
