"""StorageClient against real storage servers on 127.0.0.1: a stock Tahoe-LAFS 1.20.0 storage node
and ours (every test runs against both), over real TLS with SPKI pinning."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from tests.uploader.gbs.conftest import RunningServer
from uploader.gbs import ConflictingWrite, ServerRefused, Span, SpkiMismatch, StorageClient
from uploader.wire.nurl import parse_nurl

pytestmark = pytest.mark.integration

T = TypeVar("T")
R, C, U = b"r" * 32, b"c" * 32, b"u" * 20


def run(coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro)


def new_si() -> bytes:
    return os.urandom(16)


def test_version_and_server_identity(gbs_server: RunningServer) -> None:
    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            version = client.version
            assert version.maximum_immutable_share_size > 0 and version.available_space > 0
            if gbs_server.kind == "tahoe":
                assert version.application_version == b"tahoe-lafs/1.20.0"
            # the lease seed is SHA-1 of the certificate: a stock node's real tub id
            assert client.lease_seed == gbs_server.lease_seed
            assert client.permutation_seed == parse_nurl(gbs_server.nurl).spki_digest
            again = await client.get_version()  # free space may change between polls
            assert again.application_version == version.application_version and client.version is again

    run(go())


def test_chunks_in_any_order_complete_with_201_then_read_list_and_reallocate(
    gbs_server: RunningServer,
) -> None:
    si = new_si()
    data = os.urandom(200_000)

    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            alloc = await client.allocate(si, [0, 1], len(data), R, C, U)
            assert alloc.allocated == {0, 1} and alloc.already_have == frozenset()
            view = memoryview(data)
            # the tail first, as three buffers sent without joining; then the head; then the middle
            tail = [view[150_000:160_000], bytes(view[160_000:190_000]), bytearray(view[190_000:])]
            assert await client.write(si, 0, 150_000, tail, U) == (Span(0, 150_000),)
            assert await client.write(si, 0, 0, data[:50_000], U) == (Span(50_000, 150_000),)
            assert await client.write(si, 0, 50_000, view[50_000:150_000], U) == ()  # the 201
            assert await client.list_shares(si) == {0}  # share 1 is still in progress

            assert await client.read(si, 0, 0, len(data)) == data
            assert await client.read(si, 0, 123, 1) == data[123:124]
            assert await client.read(si, 0, 190_000, 50_000) == data[190_000:]  # cut short at the end
            assert await client.read(si, 0, len(data), 10) == b""  # 204
            with pytest.raises(ServerRefused) as info:
                await client.read(si, 1, 0, 10)  # not complete
            assert info.value.status == 404

            again = await client.allocate(si, [0, 1, 2], len(data), R, C, U)
            assert again.already_have == {0} and again.allocated == {2}  # 1 is in progress: neither
            await client.abort(si, 1, U)
            await client.abort(si, 2, U)
            assert await client.list_shares(si) == {0}
            assert await client.list_shares(new_si()) == frozenset()

    run(go())


def test_abort(gbs_server: RunningServer) -> None:
    si = new_si()

    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            await client.allocate(si, [3], 64, R, C, U)
            assert await client.write(si, 3, 0, b"x" * 10, U) == (Span(10, 64),)
            with pytest.raises(ServerRefused) as info:
                await client.abort(si, 3, b"w" * 20)
            assert info.value.status == 401
            await client.abort(si, 3, U)
            with pytest.raises(ServerRefused) as info:
                await client.write(si, 3, 10, b"y", U)
            assert info.value.status == 404
            with pytest.raises(ServerRefused) as info:
                await client.abort(si, 3, U)
            assert info.value.status == 404
            # the space is free again: a new upload of the same share starts from nothing
            assert (await client.allocate(si, [3], 64, R, C, U)).allocated == {3}
            assert await client.write(si, 3, 0, b"z" * 64, U) == ()
            with pytest.raises(ServerRefused) as info:
                await client.abort(si, 3, U)
            assert info.value.status == 405  # complete shares cannot be aborted

    run(go())


def test_leases(gbs_server: RunningServer) -> None:
    si = new_si()

    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            await client.allocate(si, [0], 16, R, C, U)
            await client.write(si, 0, 0, b"l" * 16, U)
            await client.add_or_renew_lease(si, R, C)  # renews
            await client.add_or_renew_lease(si, b"R" * 32, b"C" * 32)  # adds
            with pytest.raises(ServerRefused) as info:
                await client.add_or_renew_lease(new_si(), R, C)
            assert info.value.status == 404 and not info.value.retryable

    run(go())


def test_corruption_advisory(gbs_server: RunningServer) -> None:
    si = new_si()

    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            await client.allocate(si, [0], 16, R, C, U)
            await client.write(si, 0, 0, b"k" * 16, U)
            assert await client.advise_corrupt(si, 0, "block hash mismatch in segment 0") is True
            assert await client.advise_corrupt(si, 7, "no such share") is False

    run(go())


def test_conflicting_write_is_409_and_identical_rewrite_is_fine(gbs_server: RunningServer) -> None:
    si = new_si()
    swissnum = parse_nurl(gbs_server.nurl).swissnum

    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            await client.allocate(si, [0], 48, R, C, U)
            assert await client.write(si, 0, 0, b"a" * 16, U) == (Span(16, 48),)
            assert await client.write(si, 0, 8, b"a" * 8, U) == (Span(16, 48),)  # same bytes again
            with pytest.raises(ConflictingWrite) as info:
                await client.write(si, 0, 8, b"b" * 16, U)
            assert info.value.status == 409 and not info.value.retryable
            assert swissnum not in str(info.value) and U.decode() not in str(info.value)
            with pytest.raises(ServerRefused) as wrong:
                await client.write(si, 0, 16, b"c" * 32, b"w" * 20)
            assert wrong.value.status == 401
            await client.abort(si, 0, U)

    run(go())


def test_concurrent_writes_on_one_client_and_a_multi_megabyte_body(gbs_server: RunningServer) -> None:
    si = new_si()
    size = 256 * 1024
    shares = {n: os.urandom(size) for n in range(4)}
    big_si, big = new_si(), os.urandom(5 * 1024 * 1024 // 2)

    async def go() -> None:
        async with StorageClient(gbs_server.nurl) as client:
            await client.allocate(si, list(shares), size, R, C, U)
            chunk = size // 4
            writes = [
                client.write(si, n, off, memoryview(data)[off : off + chunk], U)
                for off in range(0, size, chunk)
                for n, data in shares.items()
            ]
            results = await asyncio.gather(*writes)
            assert sum(1 for r in results if r == ()) == len(shares)  # each share completed once
            assert await client.list_shares(si) == set(shares)
            reads = await asyncio.gather(*(client.read(si, n, 0, size) for n in shares))
            assert reads == list(shares.values())
            # one body larger than a send piece (1 MiB), as a single buffer
            await client.allocate(big_si, [0], len(big), R, C, U)
            assert await client.write(big_si, 0, 0, big, U) == ()
            assert await client.read(big_si, 0, 0, len(big)) == big

    run(go())


def test_wrong_spki_hash_is_refused_and_never_retryable(gbs_server: RunningServer) -> None:
    nurl = parse_nurl(gbs_server.nurl)
    flipped = ("B" if nurl.spki_hash[0] == "A" else "A") + nurl.spki_hash[1:]
    wrong = str(nurl).replace(nurl.spki_hash, flipped)

    async def go() -> None:
        client = StorageClient(wrong)
        with pytest.raises(SpkiMismatch) as info:
            async with client:
                pass
        assert not info.value.retryable
        assert nurl.swissnum not in str(info.value) and nurl.swissnum not in repr(client)
        async with StorageClient(gbs_server.nurl) as good:  # the server itself is fine
            assert good.version.available_space > 0

    run(go())
