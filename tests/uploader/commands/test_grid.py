"""``grid`` command argument parsing (the grid itself is tested in tests/uploader/test_grid.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "-inf", "abc"])
def test_a_timeout_that_is_not_a_positive_finite_number_is_a_usage_error(
    tmp_path: Path, timeout: str
) -> None:
    grid = tmp_path / "grid"
    cmd = [sys.executable, "-m", "uploader", "grid", "start", "--dir", str(grid), "--servers", "1"]
    out = subprocess.run([*cmd, f"--timeout={timeout}"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"argument --timeout: expected a finite number of seconds > 0, got '{timeout}'" in out.stderr
    assert not grid.exists()  # refused before anything was made or started
