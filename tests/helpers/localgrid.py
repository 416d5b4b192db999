"""An embedded local grid for tests: real storage server processes on 127.0.0.1, via `grid start`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from uploader.config import Config, load_config


class LocalGrid:
    def __init__(self, directory: Path, servers: int = 10) -> None:
        self.dir = directory
        self.servers = servers

    def _grid(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "uploader", "grid", *args, "--dir", str(self.dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> LocalGrid:
        out = self._grid("start", "--servers", str(self.servers))
        if out.returncode != 0:
            raise RuntimeError(f"grid start failed: {out.stdout}\n{out.stderr}")
        return self

    def stop(self) -> None:
        self._grid("stop")

    def __enter__(self) -> LocalGrid:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "grid.json").read_text())
        return data

    def pids(self) -> dict[str, int]:
        return {s["name"]: s["pid"] for s in self.record()["servers"]}

    def kill(self, name: str) -> None:
        os.kill(self.pids()[name], signal.SIGKILL)

    def config(self, **cli: Any) -> Config:
        return load_config(self.dir / "uploader.toml", {"HOME": str(self.dir)}, cli)
