"""The event recorder (uploader/trace.py) on a real upload: worker busy spans from the pool, write
spans from the upload's write path, nothing when it is off, and its bound."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.localgrid import LocalGrid
from tools import timeline
from uploader import trace
from uploader.gridclient import GridClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with LocalGrid(tmp_path_factory.mktemp("trace") / "grid", servers=4) as g:
        yield g


def _upload(grid: LocalGrid, path: Path) -> tuple[int, dict[str, list[int]]]:
    config = grid.config(shares_needed=2, shares_total=4, shares_happy=4, workers=2, max_segment_size=65536)

    async def go() -> tuple[int, dict[str, list[int]]]:
        async with GridClient(config, max_uploads=1) as client:
            result = await client.upload(path)
        return result.share_bytes_sent, result.servers

    return asyncio.run(go())


def test_trace_records_worker_busy_and_link_writes(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(1_000_000))
    recorder = trace.start()
    try:
        sent, servers = _upload(grid, path)
    finally:
        assert trace.stop() is recorder
    busy = [s for s in recorder.spans if s.kind == "busy"]
    writes = [s for s in recorder.spans if s.kind == "write"]
    # 16 segments encoded plus the key pass: every job's answer is one busy span
    assert len(busy) >= 17 and {s.who for s in busy} <= {"0", "1"}
    assert all(s.start <= s.end for s in recorder.spans)
    assert sum(s.nbytes for s in writes) == sent > 1_000_000 * 4 // 2
    assert {s.who for s in writes} == set(servers)
    assert recorder.dropped == 0
    # the timeline tool on this real trace (no shaped link: no wire samples)
    figures = timeline.analyse(recorder.spans, [], None)
    assert 0 < figures["cpu_busy"] <= 1 and figures["servers"] == 4 and figures["share_bytes"] == sent
    png = timeline.plot(recorder.spans, [], None, "smoke", tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_is_off_by_default_and_bounded(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(300_000))
    assert trace.stop() is None
    _upload(grid, path)  # nothing to record into: must not fail, records nothing
    assert trace.stop() is None
    recorder = trace.start(limit=3)
    try:
        path.write_bytes(os.urandom(300_000))
        _upload(grid, path)
    finally:
        trace.stop()
    assert len(recorder.spans) == 3 and recorder.dropped > 0
    with pytest.raises(ValueError, match="at least one span"):
        trace.start(limit=0)
