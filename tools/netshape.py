"""Bandwidth shaping for the benchmarks: a network namespace behind a veth pair with a tbf qdisc.

The kernel here has no ``netem``; ``tbf`` works. ``shaped_link(rate)`` makes, for its duration:

| piece | where |
|---|---|
| namespace ``uplNNNN`` (unique per process and call) | servers run in it (``ip netns exec``) |
| veth ``uplNNNNh`` (root namespace, 10.231.X.1/30) | the client's side; tbf at ``rate`` on its egress |
| veth ``uplNNNNp`` (inside, 10.231.X.2/30) | the servers listen here |

Only the client → servers direction is shaped (the upstream link of the model); responses flow
unshaped. tbf counts whole packets (TCP/IP and TLS headers too), so the payload rate is a few
percent below ``rate``. Needs root. Everything is removed in a ``finally``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

_COUNTER = itertools.count()


@dataclass(frozen=True, slots=True)
class ShapedLink:
    namespace: str
    host_ip: str  # the client's end, in the root namespace
    ns_ip: str  # the servers' end, inside ``namespace``
    rate_bit_s: int | None

    @property
    def host_interface(self) -> str:
        """The client's end of the veth pair (its tx counters count the shaped direction)."""
        return f"{self.namespace}h"

    def tx_bytes(self) -> int:
        """Bytes sent so far from the client's end onto the shaped link (what tbf let through)."""
        with open(f"/sys/class/net/{self.host_interface}/statistics/tx_bytes") as fh:
            return int(fh.read())

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.namespace]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def tbf_args(rate_bit_s: int) -> list[str]:
    """tbf settings for ``rate``: a burst of ~4 ms of traffic (at least 64 KiB, so one TSO
    segment fits), and at most 50 ms of queue before drops."""
    burst = max(64 * 1024, rate_bit_s // 8 // 250)
    return ["rate", f"{rate_bit_s}bit", "burst", str(burst), "latency", "50ms"]


@contextlib.contextmanager
def shaped_link(rate_bit_s: int | None) -> Iterator[ShapedLink]:
    """A namespace reachable over a veth link shaped to ``rate_bit_s`` (None: unshaped)."""
    serial = (os.getpid() * 7 + next(_COUNTER)) % 60000
    name = f"upl{serial}"
    third, fourth = divmod(serial % (250 * 64), 64)
    host_ip, ns_ip = f"10.231.{third % 250}.{fourth * 4 + 1}", f"10.231.{third % 250}.{fourth * 4 + 2}"
    host_if, ns_if = f"{name}h", f"{name}p"
    made_ns = made_link = False
    try:
        _ip("netns", "add", name)  # fails if the name is taken: then nothing of it is ours
        made_ns = True
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        made_link = True
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        if rate_bit_s is not None:
            subprocess.run(
                ["tc", "qdisc", "add", "dev", host_if, "root", "tbf", *tbf_args(rate_bit_s)],
                check=True,
                capture_output=True,
            )
        yield ShapedLink(name, host_ip, ns_ip, rate_bit_s)
    finally:
        if made_link:
            subprocess.run(["ip", "link", "del", host_if], capture_output=True)  # removes both ends
        if made_ns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
