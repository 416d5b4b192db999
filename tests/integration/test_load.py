"""The load tool at CI size: 100 concurrent uploads of mixed sizes (~60 MB) through a real daemon to
10 real servers; every cap equal to the one `cap` computes, 10 read back bit-exact, memory (PSS of
daemon + workers) within what the configuration allows (tools/load.py's ``memory_bound``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_hundred_concurrent_uploads_through_the_daemon(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tools.load", "--uploads", "100", "--total-mb", "60", "--workers", "2"]
    argv += ["--read-back", "10", "--json", "--out", str(tmp_path), "--seed", "7"]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout, out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print({k: v for k, v in result.items() if "rss" in k or "pss" in k or k == "upload_mb_per_s"})
    assert result["ok"] is True
    assert result["uploads"] == 100 and 55e6 < result["bytes"] < 65e6
    assert result["failures"] == [] and result["wrong_caps"] == 0
    assert result["read_back"] == 10 and result["read_back_mismatches"] == 0
    assert 0 < result["peak_total_pss"] <= result["memory_bound"]
    assert result["daemon_exit"] == 0  # it drained and stopped cleanly on SIGTERM
    logs = list(tmp_path.glob("load-*.log"))
    assert len(logs) == 1
    lines = [line for line in logs[0].read_text().splitlines() if " file=" in line]
    assert len(lines) == 100 and all(line.endswith("result=ok") for line in lines)
    assert "URI:" not in logs[0].read_text()  # read caps are secrets: never in the log
