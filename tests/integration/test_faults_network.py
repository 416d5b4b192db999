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
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers.faults import download_matches
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


def proxied_config(grid: LocalGrid, proxies: dict[str, Proxy], timeout_s: float = TIMEOUT_S) -> Config:
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
    # window 4: a write every 2 segments, so a share of these 8-10-segment files arrives in pieces
    # and a stall can land mid-share (with the default 16, the first write carries 8 segments).
    return replace(
        config,
        servers=tuple(servers),
        connect_timeout_s=timeout_s,
        request_timeout_s=timeout_s,
        window=4,
    )


def setup(tmp_path: Path, seed: int) -> tuple[Path, bytes, ChkCap]:
    rng = random.Random(seed)
    path = tmp_path / "source"
    path.write_bytes(rng.randbytes(rng.randint(7, 9) * MiB + rng.randint(1, MiB - 1)))
    secret = rng.randbytes(32)
    cap, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(cap, ChkCap)
    return path, secret, cap


class Staller:
    """A watcher thread: once the first victim's in-progress share holds ``target`` blocks (read off
    its disk, 1 ms polls), stall every victim's proxy; records what had reached each victim then."""

    def __init__(self, grid: LocalGrid, proxies: dict[str, Proxy], cap: ChkCap, target: int = 2) -> None:
        self.grid, self.proxies, self.cap, self.target = grid, proxies, cap, target
        self.g = Geometry.from_params(PARAMS, cap.size)
        self.at_stall: dict[str, tuple[int, int]] = {}  # name -> (bytes forwarded, blocks written)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _written(self, name: str) -> int:
        si = b32encode(self.cap.storage_index)
        shares = sorted(self.grid.dir.glob(f"{name}/storage/shares/incoming/{si[:2]}/{si}/*"))
        return blocks_written(shares[0], expected_layout(self.g), self.g.num_segments) if shares else 0

    def _watch(self) -> None:
        first = next(iter(self.proxies))
        while not self._done.is_set():
            if self._written(first) >= self.target:
                for proxy in self.proxies.values():
                    proxy.stall()
                for name, proxy in self.proxies.items():
                    self.at_stall[name] = (proxy.forwarded, self._written(name))
                return
            time.sleep(0.001)

    def __enter__(self) -> Staller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def assert_mid_transfer(self) -> None:
        print(self.at_stall)
        assert set(self.at_stall) == set(self.proxies), "the stall was never made"
        first = next(iter(self.proxies))
        assert self.at_stall[first][1] >= self.target
        for forwarded, written in self.at_stall.values():
            assert forwarded > 0 and written < self.g.num_segments  # each stalled before its share was done


async def upload(config: Config, path: Path, secret: bytes) -> UploadResult:
    async with GridClient(config) as client:
        return await client.upload(path, params=PARAMS, happy=7, secret=secret)


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
            with Staller(grid, {victim: proxy}, cap) as staller:
                result = asyncio.run(upload(proxied_config(grid, {victim: proxy}), path, secret))
            staller.assert_mid_transfer()
            assert proxy.connections >= 2  # the client tried it again before dropping it
        assert str(result.cap) == str(cap)
        assert download_matches(grid.config(), cap, path, tmp_path / "got")  # our get: bit-exact
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
            with Staller(grid, proxies, cap) as staller, pytest.raises(NotEnoughServers) as failure:
                asyncio.run(upload(proxied_config(grid, proxies), path, secret))
            staller.assert_mid_transfer()
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
        with Proxy(ports[slow], rate=2_000_000) as proxy:  # 2 MB/s; a share is ~3 MB
            # (a slow link is not a dead one: timeouts that a loaded machine cannot trip by accident)
            result = asyncio.run(upload(proxied_config(grid, {slow: proxy}, 20.0), path, secret))
            share_size = expected_layout(Geometry.from_params(PARAMS, cap.size)).share_size
            assert proxy.forwarded >= share_size  # its whole share went through the slow link
        assert str(result.cap) == str(cap)
        assert download_matches(grid.config(), cap, path, tmp_path / "got")  # our get: bit-exact
        shares = check_complete_shares_are_right(grid, cap, path, secret)
        assert set(shares) == set(range(10)) and slow in servers_holding(grid.dir, cap.storage_index)
