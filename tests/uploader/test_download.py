"""The download and verify jobs against in-memory servers (reference-encoded shares) and an in-process
pool: every failure a server can show, chosen exactly — corruption anywhere, 404s, resets, hangs —
and the one rule that matters: the right bytes, or a typed error, never wrong bytes."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.layout import parse_share
from uploader.download import BufferSink, Download, DownloadSettings
from uploader.errors import IntegrityError, NotEnoughServers, NotFound
from uploader.gbs.errors import BadResponse, ServerRefused, ServerUnreachable
from uploader.supervisor import JobError
from uploader.verify import Verify
from workers.geometry import EncodingParams
from workers.jobs import run_job
from workers.messages import DecodeSegment, JobFailed, SegmentDecoded

SECRET = b"unit-test secret"
TIMEOUT_S = 0.5  # a fake request timeout: ten times the hedging delay
FAST = DownloadSettings(window=6, read_size=3000, hedge_min_s=0.05, hedge_factor=4.0, list_grace_s=0.05)


@dataclass
class FakeServer:
    """A storage server holding whole shares in memory, with scripted misbehaviour."""

    name: str
    shares: dict[int, bytes] = field(default_factory=dict)
    hang: bool = False  # every request times out (after TIMEOUT_S, as a real one would)
    hang_reads_after: int | None = None  # reads after this many time out
    reset: bool = False  # every request fails as if the connection dropped
    gone: set[int] = field(default_factory=set)  # listed, but 404 when read
    advised: list[tuple[int, str]] = field(default_factory=list)
    reads: int = 0

    @property
    def server(self) -> str:
        return self.name

    async def _timeout(self) -> None:
        await asyncio.sleep(TIMEOUT_S)
        raise ServerUnreachable(self.name, f"storage server {self.name}: timed out")

    async def _misbehave(self) -> None:
        if self.hang:
            await self._timeout()
        if self.reset:
            raise ServerUnreachable(self.name, f"storage server {self.name}: connection reset")

    async def list_shares(self, si: bytes) -> frozenset[int]:
        await self._misbehave()
        return frozenset(self.shares)

    async def read(self, si: bytes, shnum: int, offset: int, length: int) -> bytes:
        await self._misbehave()
        self.reads += 1
        if self.hang_reads_after is not None and self.reads > self.hang_reads_after:
            await self._timeout()
        if shnum in self.gone or shnum not in self.shares:
            raise ServerRefused(self.name, "404", 404, "not found")
        await asyncio.sleep(0)
        return self.shares[shnum][offset : offset + length]

    async def advise_corrupt(self, si: bytes, shnum: int, reason: str) -> bool:
        self.advised.append((shnum, reason))
        return shnum in self.shares


class FakePool:
    """Decodes in this process; no shared-memory slots (blocks travel inline)."""

    slot_size = 0

    async def decode(self, client: object, msg: DecodeSegment) -> SegmentDecoded:
        reply = run_job(msg, None)
        if isinstance(reply, JobFailed):
            raise JobError(reply.error_class, reply.message)
        assert isinstance(reply, SegmentDecoded)
        await asyncio.sleep(0)
        return reply


def _file(size: int, k: int, n: int, seg: int, seed: int = 1) -> tuple[ChkCap, list[bytes], bytes]:
    data = random.Random(seed).randbytes(size)
    cap, shares = reference.encode(data, EncodingParams(k, n, seg), SECRET)
    assert isinstance(cap, ChkCap)
    return cap, shares, data


def _grid(shares: list[bytes], servers: int | None = None) -> list[FakeServer]:
    servers = servers or len(shares)
    grid = [FakeServer(f"s{i}") for i in range(servers)]
    for j, share in enumerate(shares):
        grid[j % servers].shares[j] = share
    return grid


def _get(cap: ChkCap, grid: list[FakeServer], **kw: object) -> tuple[bytes, object]:
    async def main() -> tuple[bytes, object]:
        sink = BufferSink(kw.get("offset", 0))  # type: ignore[arg-type]
        job = Download(FakePool(), grid, cap, sink, settings=FAST, **kw)  # type: ignore[arg-type]
        result = await asyncio.wait_for(job.run(), 10)
        return bytes(sink.data), result

    return asyncio.run(main())


def _flip(share: bytes, pos: int) -> bytes:
    return share[:pos] + bytes([share[pos] ^ 0x40]) + share[pos + 1 :]


def test_round_trip_whole_and_ranges() -> None:
    cap, shares, data = _file(50_000, 3, 10, 4096)
    got, result = _get(cap, _grid(shares))
    assert got == data and result.flat_hash_checked  # type: ignore[attr-defined]
    assert sorted(n for nums in result.shares_used.values() for n in nums) == [0, 1, 2]  # type: ignore[attr-defined]
    rng = random.Random(3)
    for _ in range(8):
        offset = rng.randrange(0, len(data))
        length = rng.randrange(0, len(data) - offset + 10)
        got, result = _get(cap, _grid(shares), offset=offset, length=length)
        assert got == data[offset : offset + length]
        assert not result.flat_hash_checked  # type: ignore[attr-defined]


@given(
    st.integers(56, 20_000),
    st.integers(1, 5),
    st.integers(0, 4),
    st.sampled_from([512, 1000, 4096]),
    st.randoms(use_true_random=False),
)
def test_up_to_n_minus_k_bad_shares_never_give_wrong_bytes(
    size: int, k: int, extra: int, seg: int, rng: random.Random
) -> None:
    """Up to N-k shares corrupt (one byte anywhere), gone, or on failing servers: the right bytes;
    more: a typed error — and never wrong bytes."""
    n = k + extra
    cap, shares, data = _file(size, k, n, seg, seed=size)
    grid = _grid(shares)
    bad = rng.sample(range(n), rng.randint(0, n))
    corrupted = set()
    for j in bad:
        how = rng.choice(["flip", "gone", "reset", "hang", "truncate"])
        server = grid[j]
        if how == "flip":
            pos = rng.randrange(len(shares[j]))
            layout = parse_share(shares[j]).layout
            if layout.plaintext_hash_tree <= pos < layout.crypttext_hash_tree:
                pos = 0  # the unused area is not read by a download; flip the header instead
            server.shares[j] = _flip(shares[j], pos)
            corrupted.add(j)
        elif how == "gone":
            server.gone.add(j)
        elif how == "reset":
            server.reset = True
        elif how == "hang":
            server.hang = True
        else:
            server.shares[j] = shares[j][: rng.randrange(len(shares[j]))]
            corrupted.add(j)
    try:
        got, result = _get(cap, grid)
    except (IntegrityError, NotEnoughServers) as exc:
        assert len(bad) > n - k, f"failed with only {len(bad)} bad shares of {n}: {exc}"
        return
    assert got == data
    reported = {c.shnum for c in result.corrupt}  # type: ignore[attr-defined]
    assert reported <= corrupted
    for server in grid:
        assert {shnum for shnum, _ in server.advised} <= reported


def test_corrupt_block_is_reported_and_replaced() -> None:
    cap, shares, data = _file(30_000, 3, 10, 2048)
    grid = _grid(shares)
    layout = parse_share(shares[1]).layout
    grid[1].shares[1] = _flip(shares[1], layout.block_offset(5) + 17)
    got, result = _get(cap, grid)
    assert got == data
    assert [(c.server, c.shnum) for c in result.corrupt] == [("s1", 1)]  # type: ignore[attr-defined]
    assert "block 5" in result.corrupt[0].reason  # type: ignore[attr-defined]
    assert [shnum for shnum, _ in grid[1].advised] == [1]
    assert all(not s.advised for s in grid if s is not grid[1])


def test_a_hung_server_is_hedged_and_avoided() -> None:
    cap, shares, data = _file(60_000, 3, 10, 2048)
    grid = _grid(shares)
    grid[0].hang_reads_after = 4  # opens fine, then stops answering mid-download
    got, result = _get(cap, grid)
    assert got == data
    used = {n for nums in result.shares_used.values() for n in nums}  # type: ignore[attr-defined]
    assert used & set(range(3, 10)), "a share beyond the primaries took over"


def test_a_hung_server_at_listing_does_not_hold_the_download_up() -> None:
    cap, shares, data = _file(10_000, 2, 4, 2048)
    grid = _grid(shares)
    grid[0].hang = True
    got, _ = _get(cap, grid)
    assert got == data


def test_errors_name_what_happened() -> None:
    cap, shares, _ = _file(10_000, 3, 5, 2048)
    with pytest.raises(NotFound, match="no shares"):
        _get(cap, [FakeServer("a"), FakeServer("b")])
    with pytest.raises(NotFound, match="no shares"):  # an empty range still proves the file exists
        _get(cap, [FakeServer("a")], offset=10, length=0)
    grid = _grid(shares)
    for server in grid[:3]:
        server.reset = True
    with pytest.raises(NotEnoughServers, match="only 2 good shares"):
        _get(cap, grid)
    grid = _grid(shares)
    for j in range(3):
        grid[j].shares[j] = _flip(shares[j], parse_share(shares[j]).layout.block_offset(0))
    with pytest.raises(IntegrityError, match="corrupt"):
        _get(cap, grid)
    other, _, _ = _file(10_000, 3, 5, 2048, seed=9)
    wrong = ChkCap(cap.key, other.ueb_hash, 3, 5, 10_000)  # the SI of one file, the UEB hash of another
    grid = _grid(shares)
    with pytest.raises(IntegrityError, match="only 0 good shares"):
        _get(wrong, grid)
    assert not any(s.advised for s in grid), "a wrong cap must not make us accuse good shares"
    liar = ChkCap(cap.key, cap.ueb_hash, 3, 5, 10_001)
    with pytest.raises(IntegrityError, match="the cap says"):
        _get(liar, _grid(shares))


def test_misbehaving_server_is_dropped() -> None:
    cap, shares, data = _file(20_000, 2, 6, 2048)
    grid = _grid(shares)

    async def bad_read(si: bytes, shnum: int, offset: int, length: int) -> bytes:
        raise BadResponse("s0", "storage server s0 answered nonsense")

    grid[0].read = bad_read  # type: ignore[method-assign]
    got, result = _get(cap, grid)
    assert got == data and "s0" in result.failed_servers  # type: ignore[attr-defined]


def test_verify_finds_every_corrupt_missing_and_unreadable_share() -> None:
    cap, shares, _ = _file(40_000, 3, 8, 4096)
    grid = _grid(shares)
    rng = random.Random(11)
    flipped = {}
    for j in (1, 4, 6):  # any byte at all, the unused plaintext area included
        pos = rng.randrange(len(shares[j]))
        grid[j].shares[j] = _flip(shares[j], pos)
        flipped[j] = pos
    layout = parse_share(shares[2]).layout
    grid[2].shares[2] = _flip(shares[2], layout.plaintext_hash_tree + 3)
    del grid[7].shares[7]
    grid[5].reset = True

    async def main() -> object:
        return await asyncio.wait_for(Verify(grid, cap.verify_cap).run(), 20)  # type: ignore[arg-type]

    report = asyncio.run(main())
    corrupt = {s.shnum for s in report.corrupt}  # type: ignore[attr-defined]
    assert corrupt == {1, 2, 4, 6}
    assert report.good == {0, 3}  # type: ignore[attr-defined]
    assert report.missing == [1, 2, 4, 5, 6, 7]  # type: ignore[attr-defined]
    assert not report.healthy and not report.recoverable  # type: ignore[attr-defined]
    assert report.servers["s5"] is not None  # type: ignore[attr-defined]
    assert {shnum for s in grid for shnum, _ in s.advised} == {1, 2, 4, 6}

    healthy = asyncio.run(asyncio.wait_for(Verify(_grid(shares, 3), cap).run(), 20))  # type: ignore[arg-type]
    assert healthy.healthy and healthy.good == set(range(8))
