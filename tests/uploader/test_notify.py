"""systemd notify: addresses, watchdog interval, message format, and a real datagram socket."""

from __future__ import annotations

import socket
from pathlib import Path

from uploader.notify import Notifier, message, socket_address, watchdog_interval_s


def test_socket_address() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == b"\0abstract"
    assert socket_address(None) is None
    assert socket_address("") is None
    assert socket_address("relative") is None


def test_watchdog_interval() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, 5) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "5"}, 5) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "6"}, 5) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, 5) is None
    assert watchdog_interval_s({}, 5) is None


def test_message() -> None:
    assert message(READY=1, STATUS="up\nnow") == b"READY=1\nSTATUS=up now"


def test_sends_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        n.send(READY=1)
        assert sock.recv(4096) == b"READY=1"
        n.close()


def test_without_a_socket_nothing_happens() -> None:
    n = Notifier({})
    assert not n.enabled
    n.send(READY=1)


def test_a_missing_socket_is_not_fatal(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    n.send(READY=1)
    n.close()
