"""tools/netshape.py: the namespace, veth and tbf exist while in use and are gone afterwards."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tools.netshape import shaped_link, tbf_args

pytestmark = pytest.mark.integration


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def test_tbf_args() -> None:
    assert tbf_args(100_000_000) == ["rate", "100000000bit", "burst", "65536", "latency", "50ms"]
    assert tbf_args(8_000_000_000)[3] == "4000000"


def test_shaped_link_is_made_and_removed() -> None:
    with shaped_link(100_000_000) as link:
        assert link.namespace in _run("ip", "netns", "list")
        qdisc = _run("tc", "qdisc", "show", "dev", f"{link.namespace}h")
        assert "tbf" in qdisc and "100Mbit" in qdisc
        inside = _run(*link.exec_prefix(), "ip", "-o", "addr", "show")
        assert link.ns_ip in inside
        assert link.host_interface == f"{link.namespace}h"
        before = link.tx_bytes()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x" * 1000, (link.ns_ip, 9))  # discard port: nothing needs to listen
        assert link.tx_bytes() > before  # the ping went out on the shaped end
    assert link.namespace not in _run("ip", "netns", "list")
    assert f"{link.namespace}h" not in _run("ip", "-o", "link", "show")


def test_removed_after_an_error() -> None:
    with pytest.raises(RuntimeError), shaped_link(None) as link:
        raise RuntimeError("boom")
    assert link.namespace not in _run("ip", "netns", "list")
