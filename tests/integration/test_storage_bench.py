"""Smoke run of tools/bench_storage so the benchmark cannot rot (figures are not asserted)."""

from __future__ import annotations

import pytest

from tools import bench_storage

pytestmark = pytest.mark.integration


def test_quick_run_reports_its_figures() -> None:
    result = bench_storage.run(quick=True)
    assert result["bytes"] == 8 * 2**20
    for key in ("mb_per_s", "server_cpu_s_per_gb", "server_cpu_share", "client_cpu_s_per_gb", "seconds"):
        assert isinstance(result[key], float) and result[key] >= 0
