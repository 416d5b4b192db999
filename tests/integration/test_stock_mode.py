"""``stock_mode``: Tahoe-LAFS's stop-and-wait upload, byte-identical to the default pipeline."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.grid import shares_on_disk
from tests.helpers.localgrid import LocalGrid
from uploader.chk.caps import ChkCap
from uploader.gbs import StorageClient
from uploader.gridclient import GridClient
from uploader.upload import STOCK_WRITE_SIZE

pytestmark = pytest.mark.integration

SETTINGS: dict[str, Any] = {
    "shares_needed": 3,
    "shares_total": 5,
    "shares_happy": 5,
    "max_segment_size": 65536,
}


class WriteLog:
    """Wraps StorageClient.write: the size of each write and the most writes in flight at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        original = StorageClient.write

        async def write(
            client: StorageClient, si: bytes, shnum: int, offset: int, data: Any, secret: bytes
        ) -> Any:
            buffers: Sequence[Any] = data if isinstance(data, list | tuple) else [data]
            self.sizes.append(sum(len(memoryview(b)) for b in buffers))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await original(client, si, shnum, offset, data, secret)
            finally:
                self.in_flight -= 1

        monkeypatch.setattr(StorageClient, "write", write)


def _upload(grid: LocalGrid, path: Path, **settings: Any) -> tuple[str, dict[int, bytes]]:
    config = grid.config(**SETTINGS, **settings)

    async def main() -> object:
        async with GridClient(config) as client:
            return (await client.upload(path)).cap

    cap = asyncio.run(main())
    assert isinstance(cap, ChkCap)
    return str(cap), shares_on_disk(grid.dir, cap.storage_index)


def test_stock_mode_is_byte_identical_and_stop_and_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file"
    path.write_bytes(os.urandom(4 * 1024 * 1024 + 12345))  # 65 segments; ~1.4 MB per share
    with LocalGrid(tmp_path / "pipelined", 5) as grid:
        default_cap, default_shares = _upload(grid, path)
    log = WriteLog(monkeypatch)
    with LocalGrid(tmp_path / "stock", 5) as grid:
        stock_cap, stock_shares = _upload(grid, path, stock_mode=True)
    assert stock_cap == default_cap
    assert set(stock_shares) == set(range(5))
    assert stock_shares == default_shares
    # one write per share at a time (stop-and-wait), and the block batches are Tahoe's 1 MB
    assert log.max_in_flight <= 5
    batches = [size for size in log.sizes if size >= STOCK_WRITE_SIZE]
    assert len(batches) == 5 and all(size < STOCK_WRITE_SIZE + 65536 for size in batches)
