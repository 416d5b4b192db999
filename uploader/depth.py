"""``pipeline_depth = "auto"``: bytes in flight per server from the measured RTT and the link rate.

The formula (ARCHITECTURE.md, "Throughput model"; docs/performance.md): the link never idles
when the bytes in flight to all N servers cover one round trip of the link, ``bw × RTT``, plus
one write to each server, which must arrive whole before the server acknowledges it
(``tools/model.py``: idle per cycle = ``RTT + N·w/bw − W/bw``). A server's budget admits only
whole writes (``uploader/flow.py``), so the depth is counted in writes of ``write_size``:

    depth = write_size × (1 + ceil(bw × RTT / N / U / write_size))

that is, the issue's ``bw × RTT / N / U`` rounded up to whole writes, plus the write being
acknowledged.

``U`` is the number of uploads that each have their own depth. Ours share one budget per
server across all uploads of a client (``uploader/flow.py``), so the uploader passes ``U = 1``.

- **RTT** is measured when the client connects: one ``GET /storage/v1/version`` per server,
  timed after the connection is open, the slowest server's time taken (a deeper budget costs
  no memory: the segment slots bound that).
- **Bandwidth** is the configured ``link_mbit_per_s`` (the upstream link, Mbit/s). It is not
  estimated from delivery rates: a delivery rate is bounded by the depth it would size, and an
  underestimate would shrink the depth that limited it. Without it the depth is
  ``UNKNOWN_LINK_DEPTH``, the depth measured best on every link we could emulate.
- **Floor**: two writes (one sending while the other is acknowledged); **cap**:
  ``MAX_AUTO_DEPTH``.

An explicit integer ``pipeline_depth`` is used as is.
"""

from __future__ import annotations

import math

MIB = 1024 * 1024
AUTO = "auto"
UNKNOWN_LINK_DEPTH = 16 * MIB  # the measured default before "auto" (docs/performance.md)
MAX_AUTO_DEPTH = 64 * MIB


def auto_depth(
    *,
    rtt_s: float,
    bandwidth: float | None,
    n: int,
    k: int,
    write_size: int,
    concurrent_uploads: int = 1,
    cap: int = MAX_AUTO_DEPTH,
) -> int:
    """Bytes in flight per server (see the module docstring); ``bandwidth`` in bytes/s, None
    when unknown; ``write_size`` is the largest coalesced write."""
    if not 1 <= k <= n or concurrent_uploads < 1 or write_size < 1 or cap < 2 * write_size:
        raise ValueError(
            f"need 1 <= k <= n, concurrent_uploads, write_size >= 1 and cap >= 2 writes; got "
            f"k={k}, n={n}, concurrent_uploads={concurrent_uploads}, write_size={write_size}, cap={cap}"
        )
    if rtt_s < 0 or (bandwidth is not None and not bandwidth > 0):
        raise ValueError(f"need rtt_s >= 0 and bandwidth > 0, got rtt_s={rtt_s}, bandwidth={bandwidth}")
    if bandwidth is None or math.isinf(bandwidth):
        return max(2 * write_size, min(cap, UNKNOWN_LINK_DEPTH))
    writes = 1 + max(1, math.ceil(bandwidth * rtt_s / n / concurrent_uploads / write_size))
    return min(cap, writes * write_size)


def resolve(
    setting: int | str,
    *,
    rtt_s: float | None,
    link_mbit_per_s: float | None,
    n: int,
    k: int,
    write_size: int,
) -> int:
    """The depth to use for the ``pipeline_depth`` setting: an integer as is, ``"auto"`` by
    ``auto_depth`` (``rtt_s`` may be None only when the link rate is unknown)."""
    if isinstance(setting, int):
        return setting
    if setting != AUTO:
        raise ValueError(f"pipeline_depth must be a whole number of bytes or {AUTO!r}, got {setting!r}")
    bandwidth = link_mbit_per_s * 1e6 / 8 if link_mbit_per_s is not None else None
    if bandwidth is not None and rtt_s is None:
        raise ValueError("an automatic pipeline_depth with a known link rate needs the measured RTT")
    return auto_depth(rtt_s=rtt_s or 0.0, bandwidth=bandwidth, n=n, k=k, write_size=write_size)
