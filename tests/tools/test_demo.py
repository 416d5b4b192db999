"""``make demo`` (``python -m tools.demo``), the README's first command, end to end on a small file:
grid up, put, get, byte-for-byte check, grid down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_demo_uploads_downloads_checks_and_stops_its_grid(tmp_path: Path, isolated_home: Path) -> None:
    grid = tmp_path / "demo-grid"
    out = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--size", str(6 * 2**20), "--servers", "10", "--dir", str(grid)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^cap: +URI:CHK:[a-z2-7]{26}:[a-z2-7]{52}:3:10:6291552$", out.stdout, re.M), out.stdout
    assert re.search(r"^upload: +[0-9.]+ MB/s", out.stdout, re.M) and re.search(
        r"^download: +[0-9.]+ MB/s", out.stdout, re.M
    )
    assert "check:    OK" in out.stdout and out.stdout.rstrip().endswith("grid stopped")
    assert len(json.loads((grid / "grid.json").read_text())["servers"]) == 10
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(grid) in " ".join(p.info["cmdline"] or [])]
    assert not left, f"the demo left servers running: {left}"
