"""The GBS client benchmark's smoke run, so it cannot rot. No timing is asserted."""

from __future__ import annotations

import pytest

from tools import bench_gbs

pytestmark = pytest.mark.integration


def test_bench_gbs_quick_run_reports_its_figures() -> None:
    result = bench_gbs.run(quick=True)
    assert result["server"] == "ours" and result["bytes"] > 0
    for key in ("mb_per_s", "client_cpu_s_per_gb", "server_cpu_s_per_gb"):
        assert result[key] > 0
