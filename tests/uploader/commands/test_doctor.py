"""``python -m uploader doctor``: versions and the erasure backend in use, as text and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from uploader.commands.doctor import report
from uploader.config import Config
from workers import erasure, isal

pytestmark = pytest.mark.integration  # runs the CLI


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uploader", "doctor", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_json_names_isal_and_its_library() -> None:
    out = doctor("--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["erasure"]["setting"] == "auto"
    assert info["erasure"]["in_use"] == "isal"  # the install brings ISA-L (pyeclib's wheel)
    assert Path(info["erasure"]["library"]).is_file()
    assert info["erasure"]["self_check"] == "passed"
    assert info["packages"]["zfec"] and info["packages"]["pyeclib"]


def test_text_and_the_setting_from_flag_and_environment() -> None:
    out = doctor("--erasure-backend", "zfec")
    assert out.returncode == 0, out.stderr
    assert "erasure_backend = zfec" in out.stdout
    assert "erasure backend in use: zfec;" in out.stdout
    out = doctor(env={"UPLOADER_ERASURE_BACKEND": "isal"})
    assert out.returncode == 0, out.stderr
    assert "erasure backend in use: isal (/" in out.stdout and "self-check against zfec: passed" in out.stdout


def test_forced_isal_that_cannot_load_exits_3_and_auto_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(erasure, "_isal", None)  # a fault: no library where ISA-L is looked for
    monkeypatch.setattr(isal, "candidate_libraries", lambda: ["/nonexistent/libisal.so.2"])
    info, code = report(Config(erasure_backend="isal"))
    assert code == 3
    assert info["erasure"]["in_use"] is None
    assert "/nonexistent/libisal.so.2" in info["erasure"]["error"]
    info, code = report(Config(erasure_backend="auto"))
    assert code == 0
    assert info["erasure"]["in_use"] == "zfec"
    assert "ISA-L could not be loaded" in info["erasure"]["fallback_reason"]
