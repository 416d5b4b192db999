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


def test_help_is_for_users_and_says_what_json_prints() -> None:
    from uploader.cli import build_parser

    grid = build_parser("grid")._subparsers._group_actions[0].choices["grid"]  # type: ignore[union-attr]
    text = grid.format_help()
    assert "CONVENTIONS.md" not in text and "``" not in text  # no internal docstring markup
    actions = grid._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert '{"stopped": [server names]}' in actions["stop"].format_help()
    assert "one object per server" in actions["status"].format_help()


@pytest.mark.parametrize("servers", ["²", "١٠", "1_0", " 3"])
def test_servers_must_be_ascii_digits(tmp_path: Path, servers: str) -> None:
    grid = tmp_path / "grid"
    cmd = [sys.executable, "-m", "uploader", "grid", "start", "--dir", str(grid), f"--servers={servers}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "expected a number of servers from 1 to 256" in out.stderr, out.stderr
    assert not grid.exists()
