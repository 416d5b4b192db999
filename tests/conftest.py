"""Shared fixtures: isolated home/XDG dirs, the cache directory, the stock Tahoe venv, hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).resolve().parent / "vectors"

# CI: deterministic, modest example counts, no deadlines (the machine is shared and noisy).
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def cache_dir() -> Path:
    """The one git-ignored cache for slow-to-build things (override with UPLOADER_TEST_CACHE)."""
    return Path(os.environ.get("UPLOADER_TEST_CACHE", REPO / ".cache"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and XDG dirs, so no secret or config lands in the real home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    for name in list(os.environ):
        if name.startswith("UPLOADER_") and name != "UPLOADER_TEST_CACHE":
            monkeypatch.delenv(name)
    return home


@pytest.fixture(scope="session")
def tahoe_venv() -> Path:
    """The stock Tahoe-LAFS 1.20.0 venv. Built by `make tahoe`; built here if missing; fails, never skips."""
    venv = cache_dir() / "tahoe-venv"
    if not (venv / ".ok").exists():
        from tools.tahoe_venv import build

        try:
            build(venv, REPO / "tests" / "tahoe-constraints.txt")
        except Exception as exc:  # the test must fail loudly, not skip
            pytest.fail(f"could not build the stock Tahoe-LAFS venv at {venv}: {exc}")
    return venv


@pytest.fixture(scope="session")
def tahoe_python(tahoe_venv: Path) -> Path:
    return tahoe_venv / "bin" / "python"


@pytest.fixture(scope="session")
def tahoe_bin(tahoe_venv: Path) -> Path:
    return tahoe_venv / "bin" / "tahoe"
