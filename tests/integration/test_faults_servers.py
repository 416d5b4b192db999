"""Storage servers SIGKILLed in the window the server-kill tests of test_upload_faults.py do not
reach: right after placement gave them a share (their in-progress share exists), before any block of
it was written (usually: the watcher polls every millisecond). The upload drops them and finishes on the others with the right cap; nothing on
the killed servers looks complete, and after a restart they hold nothing of this upload."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.faults import download_matches
from tests.helpers.grid import servers_holding, share_files, shares_on_disk
from tests.helpers.localgrid import LocalGrid
from tests.integration.test_upload_faults import blocks_written, incoming
from uploader import upload as upload_module
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.trees import expected_layout
from uploader.encoding import encode_file_inline
from uploader.gridclient import GridClient
from workers.geometry import EncodingParams, Geometry

pytestmark = pytest.mark.integration

MiB = 1 << 20
PARAMS = EncodingParams(3, 10, MiB)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_module, "RETRY_DELAYS_S", (0.05, 0.1, 0.2))


def test_servers_killed_between_allocation_and_their_first_block(tmp_path: Path) -> None:
    rng = random.Random(901)
    path = tmp_path / "source"
    path.write_bytes(rng.randbytes(rng.randint(7, 9) * MiB + rng.randint(1, MiB - 1)))
    secret = rng.randbytes(32)
    cap, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(cap, ChkCap)
    g = Geometry.from_params(PARAMS, cap.size)
    layout = expected_layout(g)
    killed: dict[str, int] = {}  # victim -> blocks its share held at the kill
    done = threading.Event()

    with LocalGrid(tmp_path / "grid", 10) as grid:
        victims = rng.sample(sorted(grid.pids()), 2)

        def watch() -> None:
            """Kill each victim as soon as its in-progress share file exists (1 ms polls)."""
            while not done.is_set() and len(killed) < len(victims):
                for name in victims:
                    shares = sorted(grid.dir.glob(f"{name}/storage/shares/incoming/*/*/*"))
                    if name not in killed and shares:
                        grid.kill(name)
                        killed[name] = blocks_written(shares[0], layout, g.num_segments)
                time.sleep(0.001)

        async def main() -> str:
            async with GridClient(grid.config()) as client:
                result = await client.upload(path, params=PARAMS, happy=7, secret=secret)
                return str(result.cap)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            got = asyncio.run(main())
        finally:
            done.set()
            watcher.join()
        print(killed)
        assert set(killed) == set(victims)
        # placed, and (polls permitting: usually 0) far from all of its blocks written
        assert all(n < g.num_segments for n in killed.values())
        assert got == str(cap)
        assert download_matches(grid.config(), cap, path, tmp_path / "got")  # our get: bit-exact
        holding = servers_holding(grid.dir, cap.storage_index)
        assert not set(victims) & set(holding)
        _, ref_shares = reference.encode(path.read_bytes(), PARAMS, secret)
        shares = shares_on_disk(grid.dir, cap.storage_index)
        assert all(raw == ref_shares[s] for s, raw in shares.items())
        # 8 shares, or more: a victim killed before its allocate was answered counts as refused,
        # and placement gives its share to another server
        assert len(shares) >= 8 and reference.decode(cap, shares) == path.read_bytes()
        grid.start()  # the victims come back and clean their incoming areas
        assert set(incoming(grid, cap.storage_index)) == set()
        assert not set(victims) & {
            p.parts[len(grid.dir.parts)] for p in share_files(grid.dir, cap.storage_index)
        }
