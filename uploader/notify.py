"""systemd's notify protocol (sd_notify(3)): newline-separated ``KEY=VALUE`` datagrams to the unix
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace).

| message           | when                                                         |
|-------------------|--------------------------------------------------------------|
| ``READY=1``       | the API accepts connections (again after a reload)           |
| ``STATUS=…``      | a line for ``systemctl status``                              |
| ``WATCHDOG=1``    | every ``$WATCHDOG_USEC``/2 while the event loop is healthy   |
| ``RELOADING=1``   | SIGHUP, with ``MONOTONIC_USEC`` (Type=notify-reload's rule)  |
| ``STOPPING=1``    | SIGTERM                                                      |

Without ``$NOTIFY_SOCKET`` every call is a no-op. A failed send is logged, never fatal: the
service manager's absence must not stop uploads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("uploader.notify")


def socket_address(value: str | None) -> str | bytes | None:
    """The address ``$NOTIFY_SOCKET`` names: ``@x`` is the abstract ``\\0x``; only absolute paths
    and abstract names are accepted (as sd_notify does); anything else is None."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wpid = env.get("WATCHDOG_PID", "")
    if wpid and (not wpid.isdigit() or int(wpid) != pid):
        return None
    return int(usec) / 2e6


def message(**fields: str | int) -> bytes:
    """``message(READY=1, STATUS="x")`` → ``b"READY=1\\nSTATUS=x"``; newlines in values are flattened."""
    return "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()).encode()


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.name = env.get("NOTIFY_SOCKET", "")
        self.address = socket_address(self.name)
        self.watchdog_s = watchdog_interval_s(env, os.getpid())
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)  # a stuck service manager must not stall the event loop

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> None:
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto(message(**fields), self.address)
        except OSError as exc:
            log.warning("cannot notify the service manager at %s: %s", self.name, exc)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["Notifier", "message", "monotonic_usec", "socket_address", "watchdog_interval_s"]
