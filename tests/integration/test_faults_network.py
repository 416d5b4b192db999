"""Slow and stalled storage servers, through a TCP proxy (tests/helpers/proxy.py) in front of real ones.

- stalled mid-upload: once pass 2 is under way and the proxied server holds a partly written share,
  the proxy stops forwarding (connections stay open). The client's request timeout fires, its
  retries find the link still dead (the TLS handshake times out), the server is dropped, and the
  upload finishes on the others with the right cap; nothing on the stalled server looks complete.
- too many stalled: a clear NotEnoughServers naming the lost servers, nothing left complete.
- slow: a proxy that forwards at a limited rate delays the upload but loses nothing.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers.grid import servers_holding, share_files, shares_on_disk
from tests.helpers.localgrid import LocalGrid
from tests.helpers.proxy import Proxy
from tests.integration.test_upload_faults import blocks_written, incoming
from uploader import upload as upload_module
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.trees import expected_layout
from uploader.config import Config, ServerEntry
from uploader.encoding import encode_file_inline
from uploader.errors import NotEnoughServers
from uploader.gridclient import GridClient
from uploader.upload import UploadResult
from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry

pytestmark = pytest.mark.integration

MiB = 1 << 20
PARAMS = EncodingParams(3, 10, MiB)
TIMEOUT_S = 1.5  # the client's connect and request timeouts here (default 10 and 60 s)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_module, "RETRY_DELAYS_S", (0.05, 0.1))


def proxied_config(grid: LocalGrid, proxies: dict[str, Proxy]) -> Config:
    """The grid's configuration with the named servers reached through their proxies."""
    config = grid.config()
    ports = {s["name"]: s["port"] for s in grid.record()["servers"]}
    names = {f":{port}/": name for name, port in ports.items()}
    servers = []
    for entry in config.servers:
        name = next(n for key, n in names.items() if key in entry.nurl)
        nurl = entry.nurl
        if name in proxies:
            nurl = nurl.replace(f":{ports[name]}/", f":{proxies[name].port}/")
        servers.append(ServerEntry(nurl, entry.nickname))
    return replace(config, servers=tuple(servers), connect_timeout_s=TIMEOUT_S, request_timeout_s=TIMEOUT_S)


def setup(tmp_path: Path, seed: int) -> tuple[Path, bytes, ChkCap]:
    rng = random.Random(seed)
    path = tmp_path / "source"
    path.write_bytes(rng.randbytes(rng.randint(12, 16) * MiB + rng.randint(1, MiB - 1)))
    secret = rng.randbytes(32)
    cap, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(cap, ChkCap)
    return path, secret, cap


class Staller:
    """Progress callback: stall the victims' proxies once pass 2 is past ``fraction`` and the first
    victim holds some written blocks; records what had reached each victim then."""

    def __init__(self, grid: LocalGrid, proxies: dict[str, Proxy], cap: ChkCap, fraction: float) -> None:
        self.grid, self.proxies, self.cap, self.fraction = grid, proxies, cap, fraction
        self.g = Geometry.from_params(PARAMS, cap.size)
        self.progress = 0
        self.at_stall: dict[str, tuple[int, int]] = {}  # name -> (bytes forwarded, blocks written)

    def __call__(self, nbytes: int) -> None:
        self.progress += nbytes
        if self.at_stall or self.progress - self.cap.size < self.fraction * self.cap.size:
            return
        si = b32encode(self.cap.storage_index)
        layout = expected_layout(self.g)
        for name, proxy in self.proxies.items():
            shares = sorted(self.grid.dir.glob(f"{name}/storage/shares/incoming/{si[:2]}/{si}/*"))
            written = blocks_written(shares[0], layout, self.g.num_segments) if shares else 0
            proxy.stall()
            self.at_stall[name] = (proxy.forwarded, written)


async def upload(config: Config, path: Path, secret: bytes, progress: Staller | None) -> UploadResult:
    async with GridClient(config) as client:
        return await client.upload(path, progress, params=PARAMS, happy=7, secret=secret)


def check_complete_shares_are_right(
    grid: LocalGrid, cap: ChkCap, path: Path, secret: bytes
) -> dict[int, bytes]:
    _, ref_shares = reference.encode(path.read_bytes(), PARAMS, secret)
    shares = shares_on_disk(grid.dir, cap.storage_index)
    for shnum, raw in shares.items():
        assert raw == ref_shares[shnum], f"share {shnum} looks complete but differs from the reference's"
    return shares


def test_a_server_stalled_mid_upload_is_dropped_and_the_upload_completes(tmp_path: Path) -> None:
    path, secret, cap = setup(tmp_path, 601)
    with LocalGrid(tmp_path / "grid", 10) as grid:
        victim = "server-03"
        ports = {s["name"]: s["port"] for s in grid.record()["servers"]}
        with Proxy(ports[victim]) as proxy:
            staller = Staller(grid, {victim: proxy}, cap, 0.3)
            result = asyncio.run(upload(proxied_config(grid, {victim: proxy}), path, secret, staller))
            forwarded, written = staller.at_stall[victim]
            print(staller.at_stall, proxy.connections)
            assert forwarded > 0 and 0 < written < staller.g.num_segments  # stalled mid-transfer
            assert proxy.connections >= 2  # the client tried it again before dropping it
        assert str(result.cap) == str(cap)
        holding = servers_holding(grid.dir, cap.storage_index)
        assert victim not in holding  # its share never looks complete
        assert f"127.0.0.1:{proxy.port}" not in result.servers
        shares = check_complete_shares_are_right(grid, cap, path, secret)
        assert len(shares) == 9 and reference.decode(cap, shares) == path.read_bytes()


def test_four_servers_stalled_fail_cleanly(tmp_path: Path) -> None:
    path, secret, cap = setup(tmp_path, 602)
    with LocalGrid(tmp_path / "grid", 10) as grid:
        victims = ["server-01", "server-04", "server-08", "server-09"]
        ports = {s["name"]: s["port"] for s in grid.record()["servers"]}
        proxies = {name: Proxy(ports[name]).start() for name in victims}
        try:
            staller = Staller(grid, proxies, cap, 0.4)
            with pytest.raises(NotEnoughServers) as failure:
                asyncio.run(upload(proxied_config(grid, proxies), path, secret, staller))
            assert all(0 < w < staller.g.num_segments for _, w in staller.at_stall.values()), staller.at_stall
            message = str(failure.value)
            assert "6 servers would hold distinct shares, 7 needed" in message
            for proxy in proxies.values():
                assert f"127.0.0.1:{proxy.port}" in message  # names the servers it lost
            assert share_files(grid.dir, cap.storage_index) == {}
            assert set(incoming(grid, cap.storage_index)) <= set(victims)  # the live ones were aborted
        finally:
            for proxy in proxies.values():
                proxy.stop()


def test_a_slow_server_delays_but_loses_nothing(tmp_path: Path) -> None:
    path, secret, cap = setup(tmp_path, 603)
    with LocalGrid(tmp_path / "grid", 10) as grid:
        slow = "server-07"
        ports = {s["name"]: s["port"] for s in grid.record()["servers"]}
        with Proxy(ports[slow], rate=2_000_000) as proxy:  # 2 MB/s; a share is ~5 MB
            result = asyncio.run(upload(proxied_config(grid, {slow: proxy}), path, secret, None))
            share_size = expected_layout(Geometry.from_params(PARAMS, cap.size)).share_size
            assert proxy.forwarded >= share_size  # its whole share went through the slow link
        assert str(result.cap) == str(cap)
        shares = check_complete_shares_are_right(grid, cap, path, secret)
        assert set(shares) == set(range(10)) and slow in servers_holding(grid.dir, cap.storage_index)
