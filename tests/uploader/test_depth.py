"""pipeline_depth = "auto": the formula on literal inputs, its floor and cap, explicit values."""

from __future__ import annotations

import math

import pytest

from uploader.depth import MAX_AUTO_DEPTH, UNKNOWN_LINK_DEPTH, auto_depth, resolve

MIB = 1024 * 1024
BASE = {"n": 10, "k": 3, "write_size": 4 * MIB}


def test_formula_whole_writes_covering_bandwidth_times_rtt_over_n() -> None:
    # 10 Gbit/s, 100 ms, N=10: 12.5 MB per server = 3 writes of 4 MiB, plus the one being acked
    assert auto_depth(rtt_s=0.1, bandwidth=1.25e9, **BASE) == 4 * 4 * MIB
    # divided by concurrent uploads that each have their own depth: 6.25 MB = 2 writes, + 1
    assert auto_depth(rtt_s=0.1, bandwidth=1.25e9, concurrent_uploads=2, **BASE) == 3 * 4 * MIB


def test_floor_is_two_writes_and_cap_holds() -> None:
    # 100 Mbit/s, 50 ms: 62.5 kB per server, less than one write: two writes
    assert auto_depth(rtt_s=0.05, bandwidth=12.5e6, **BASE) == 8 * MIB
    assert auto_depth(rtt_s=0.0, bandwidth=12.5e6, **BASE) == 8 * MIB
    assert auto_depth(rtt_s=1.0, bandwidth=1.25e10, **BASE) == MAX_AUTO_DEPTH
    assert auto_depth(rtt_s=1.0, bandwidth=1.25e10, cap=12 * MIB, **BASE) == 12 * MIB


def test_unknown_or_unshaped_link_uses_the_measured_default() -> None:
    assert auto_depth(rtt_s=0.05, bandwidth=None, **BASE) == UNKNOWN_LINK_DEPTH
    assert auto_depth(rtt_s=0.05, bandwidth=math.inf, **BASE) == UNKNOWN_LINK_DEPTH
    assert auto_depth(rtt_s=0.05, bandwidth=None, n=10, k=3, write_size=10 * MIB, cap=64 * MIB) == 20 * MIB


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rtt_s": -1.0, "bandwidth": 1.0},
        {"rtt_s": 0.1, "bandwidth": 0.0},
        {"rtt_s": 0.1, "bandwidth": 1.0, "concurrent_uploads": 0},
        {"rtt_s": 0.1, "bandwidth": 1.0, "cap": 4 * MIB},  # less than two writes
    ],
)
def test_bad_inputs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        auto_depth(**BASE, **kwargs)  # type: ignore[arg-type]


def test_resolve_explicit_wins_auto_uses_rtt_and_link() -> None:
    assert resolve(12345, rtt_s=None, link_mbit_per_s=100.0, **BASE) == 12345
    assert resolve("auto", rtt_s=None, link_mbit_per_s=None, **BASE) == UNKNOWN_LINK_DEPTH
    # 10,000 Mbit/s = 1.25e9 bytes/s
    assert resolve("auto", rtt_s=0.1, link_mbit_per_s=10_000.0, **BASE) == 16 * MIB
    with pytest.raises(ValueError, match="needs the measured RTT"):
        resolve("auto", rtt_s=None, link_mbit_per_s=100.0, **BASE)
    with pytest.raises(ValueError, match="whole number of bytes or 'auto'"):
        resolve("deep", rtt_s=0.1, link_mbit_per_s=None, **BASE)
