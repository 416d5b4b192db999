"""pipeline_depth = "auto" on a real client: the RTT timed at connect (servers holding each response
200 ms) and the configured link rate give bw × RTT / N in whole writes, plus one; unset link: the
default depth."""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path

import pytest

from tools.measure import storage_server
from uploader.config import load_config
from uploader.depth import UNKNOWN_LINK_DEPTH
from uploader.gridclient import GridClient

pytestmark = pytest.mark.integration


def _depth_and_rtt(tmp_path: Path, nurls: list[str], settings: dict[str, object]) -> tuple[int, float | None]:
    toml = tmp_path / "uploader.toml"
    toml.write_text("".join(f'[[servers]]\nnurl = "{nurl}"\n' for nurl in nurls))
    config = load_config(toml, {"HOME": str(tmp_path)}, settings)

    async def go() -> tuple[int, float | None]:
        async with GridClient(config, max_uploads=1) as client:
            return client.settings.pipeline_depth, client.rtt_s

    return asyncio.run(go())


def test_auto_depth_from_timed_rtt_and_configured_link(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        nurls = [
            stack.enter_context(storage_server(tmp_path / f"s{i}", ("--emulate-rtt-ms", "200")))[1]
            for i in range(2)
        ]
        common = {"shares_needed": 1, "shares_total": 2, "shares_happy": 2, "workers": 1}
        depth, rtt = _depth_and_rtt(tmp_path, nurls, {**common, "link_mbit_per_s": 1000})
        assert rtt is not None and rtt >= 0.2
        # 1000 Mbit/s = 125 MB/s; RTT >= 200 ms; N = 2: >= 12.5 MB per server in 4 MiB writes,
        # plus the write being acknowledged
        write = 4 * 1024 * 1024
        assert depth == write * (1 + math.ceil(125e6 * rtt / 2 / write))
        assert depth >= 5 * write
        assert _depth_and_rtt(tmp_path, nurls, common) == (UNKNOWN_LINK_DEPTH, None)
        explicit = {**common, "link_mbit_per_s": 1000, "pipeline_depth": 65536}
        assert _depth_and_rtt(tmp_path, nurls, explicit) == (65536, None)
