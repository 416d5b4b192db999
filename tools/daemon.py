"""A daemon (``python -m uploader serve``) for the tools that measure or load one: its configuration
from a grid's, started on a free port, waited for, and stopped with SIGTERM (it drains first)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.stock_tahoe import free_port

REPO = Path(__file__).resolve().parent.parent


def write_daemon_config(grid_toml: Path, path: Path, overrides: dict[str, Any]) -> None:
    """The configuration ``grid start`` wrote, with ``overrides``, as a new TOML file at ``path``."""
    table = tomllib.loads(grid_toml.read_text())
    servers = table.pop("servers", [])
    table.update(overrides)
    lines = [f"{k} = {json.dumps(str(v) if isinstance(v, Path) else v)}" for k, v in table.items()]
    for s in servers:
        lines += ["", "[[servers]]", *(f"{k} = {json.dumps(v)}" for k, v in s.items())]
    path.write_text("\n".join(lines) + "\n")


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90, log: Path | None = None) -> None:
    """Until ``GET /status`` answers 200; a daemon that exits first is an error (with its log's tail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
            raise RuntimeError(f"the daemon exited with {proc.returncode} before it answered\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/status", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the daemon did not answer at {url} within {timeout_s} s")


def spawn_serve(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m uploader serve --config CONFIG`` with ``env``; its stdout and stderr go to ``log``
    (written afresh)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "uploader", "serve", "--config", str(config)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
        )


@contextmanager
def running_daemon(
    grid_dir: Path, work: Path, overrides: dict[str, Any] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A daemon for the grid in ``grid_dir`` (its data, config and ``serve.log`` in ``work``); its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    config = work / "daemon.toml"
    settings = {"api_listen": url.removeprefix("http://"), "data_dir": work / "data", **(overrides or {})}
    write_daemon_config(grid_dir / "uploader.toml", config, settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADER_")}
    env.update(HOME=str(work), XDG_CONFIG_HOME=str(work / ".config"))
    env.pop("NOTIFY_SOCKET", None)
    daemon = spawn_serve(config, env, work / "serve.log")
    try:
        wait_up(url, daemon, log=work / "serve.log")
        yield url, daemon
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


__all__ = ["running_daemon", "wait_up", "write_daemon_config"]
