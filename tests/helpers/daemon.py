"""A real `python -m uploader serve` process for tests, with a notify socket the test binds itself."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tools.daemon import spawn_serve, write_daemon_config


def write_config(grid_toml: Path, path: Path, **overrides: Any) -> Path:
    """The grid's client configuration with ``overrides`` (e.g. api_listen, workers) as TOML."""
    write_daemon_config(grid_toml, path, overrides)
    return path


class DaemonProcess:
    def __init__(
        self, config: Path, workdir: Path, *, abstract: bool = False, watchdog_usec: int = 0
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.log_path = workdir / "serve.log"
        if abstract:
            self.notify_name = f"@uploader-test-{uuid.uuid4().hex}"
            address: str | bytes = b"\0" + self.notify_name[1:].encode()
        else:
            self.notify_name = str(workdir / "notify.sock")
            address = self.notify_name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self.watchdog_usec = watchdog_usec
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 90.0) -> DaemonProcess:
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_name, "HOME": str(self.workdir)}
        env.pop("XDG_CONFIG_HOME", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        self.proc = spawn_serve(self.config, env, self.log_path)
        try:
            ready = self.wait_for("READY", timeout_s)
        except BaseException:
            self.stop()
            raise
        m = re.search(r"listening on (http://\S+?);", ready.get("STATUS", ""))
        assert m, f"READY without the address in STATUS: {ready}"
        self.url = m[1]
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def poll_messages(self) -> None:
        """Wait up to 0.2 s for a message, then take whatever else is already queued."""
        self.sock.settimeout(0.2)
        while True:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                return
            self.sock.settimeout(0)
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            fields["_at"] = str(time.monotonic())
            self.messages.append(fields)

    def wait_for(self, key: str, timeout_s: float = 60.0, after: int = 0) -> dict[str, str]:
        """The first message (from index ``after``) that has ``key``; fails if the daemon exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in self.messages[after:]:
                if key in m:
                    return m
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} waiting for {key}:\n{self.log()}")
            self.poll_messages()
        raise AssertionError(f"no {key} from the daemon in {timeout_s} s; got {self.messages}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, _, body = self.request("GET", "/status")
        assert code == 200
        result: dict[str, Any] = json.loads(body)
        return result

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        return self.proc.returncode

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
