"""tools/model.py on literal inputs, including its limits (RTT 0, an unshaped link, depth 0)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from tools.model import (
    ModelInput,
    cpu_mb_per_s,
    ideal_depth,
    idle_s_per_cycle,
    pipelined_mb_per_s,
    predict_mb_per_s,
    segments_per_wait,
    stop_and_wait_mb_per_s,
    upload_mb_per_s,
    upload_seconds,
    write_bytes,
)

# k=3, N=10, 3 MB segments: 10 MB of shares per segment; 100 Mbit/s = 12.5 MB/s; RTT 50 ms.
BASE = ModelInput(
    k=3,
    n=10,
    segment_size=3_000_000,
    pipeline_depth=16_000_000,
    rtt_s=0.05,
    bandwidth=12.5e6,
    encode_mb_per_s=math.inf,
    write_size=1_000_000,  # one block: no batching of segments
)


def with_(**changes: Any) -> ModelInput:
    return dataclasses.replace(BASE, **changes)


def test_stop_and_wait_idles_one_rtt_per_segment() -> None:
    # a segment takes 10 MB / 12.5 MB/s = 0.8 s to send, then 0.05 s idle: 3 MB per 0.85 s
    assert stop_and_wait_mb_per_s(BASE) == pytest.approx(3 / 0.85)
    assert predict_mb_per_s(BASE, stock_mode=True) == pytest.approx(3 / 0.85)


def test_pipelined_fills_the_link() -> None:
    # 160 MB in flight >> bandwidth x RTT: the link never idles; plaintext = 12.5 x 3/10
    assert pipelined_mb_per_s(BASE) == pytest.approx(3.75)
    assert idle_s_per_cycle(BASE) == 0.0


def test_shallow_pipeline_is_stop_and_wait() -> None:
    # depth = one block (1 MB per server): one segment in flight, idle a full RTT per cycle
    x = with_(pipeline_depth=1_000_000)
    assert pipelined_mb_per_s(x) == pytest.approx(3 / 0.85)
    assert idle_s_per_cycle(x) == pytest.approx(0.05)


def test_depth_counts_whole_writes() -> None:
    # 1.05 MB per server admits one 1 MB write at a time (the next waits for the whole write to
    # fit): the same as 1 MB, idle a full RTT per cycle
    x = with_(pipeline_depth=1_050_000)
    assert idle_s_per_cycle(x) == pytest.approx(0.05)
    assert pipelined_mb_per_s(x) == pytest.approx(3 / 0.85)
    # two writes per server: 20 MB in flight covers 0.05 s + the first write (0.8 s)
    assert idle_s_per_cycle(with_(pipeline_depth=2_000_000)) == 0.0
    assert pipelined_mb_per_s(with_(pipeline_depth=2_000_000)) == pytest.approx(3.75)


def test_acknowledgement_unit_is_the_coalesced_write() -> None:
    # 4 MB writes (4 blocks, window 16 allows 8): one write per server in flight with a 4 MB
    # depth: 40 MB per 0.05 + 40/12.5 s; two writes (8 MB) fill the link
    x = with_(write_size=4_000_000, pipeline_depth=4_000_000)
    assert write_bytes(x) == 4_000_000
    assert pipelined_mb_per_s(x) == pytest.approx(12 / (0.05 + 3.2))
    assert pipelined_mb_per_s(with_(write_size=4_000_000, pipeline_depth=8_000_000)) == pytest.approx(3.75)


def test_depth_zero_is_stop_and_wait() -> None:
    x = with_(pipeline_depth=0)
    assert pipelined_mb_per_s(x) == pytest.approx(stop_and_wait_mb_per_s(x))


def test_rtt_zero_is_link_bound() -> None:
    x = with_(rtt_s=0.0)
    assert stop_and_wait_mb_per_s(x) == pytest.approx(3.75)
    assert pipelined_mb_per_s(x) == pytest.approx(3.75)


def test_unshaped_link_is_rtt_bound() -> None:
    x = with_(bandwidth=math.inf)
    assert stop_and_wait_mb_per_s(x) == pytest.approx(3 / 0.05)  # one segment per RTT
    # 160 MB of shares in flight per RTT: 48 MB of plaintext per 50 ms
    assert pipelined_mb_per_s(x) == pytest.approx(48 / 0.05)


def test_cpu_caps_everything() -> None:
    x = with_(bandwidth=math.inf, encode_mb_per_s=100.0, workers=2)
    assert pipelined_mb_per_s(x) == pytest.approx(200.0)
    # stop-and-wait encodes on one worker, then waits: 3 MB per (0.03 s + 0.05 s)
    assert stop_and_wait_mb_per_s(x) == pytest.approx(3 / 0.08)
    free = with_(bandwidth=math.inf, rtt_s=0.0, encode_mb_per_s=70.0, workers=1)
    assert pipelined_mb_per_s(free) == pytest.approx(70.0)
    assert stop_and_wait_mb_per_s(free) == pytest.approx(70.0)


def test_cores_shared_with_other_processes() -> None:
    # 2 cores; encoding costs 0.01 s/MB and everything else 0.03 s/MB: 2 / 0.04 = 50 MB/s
    x = with_(
        bandwidth=math.inf, rtt_s=0.0, encode_mb_per_s=100.0, workers=2, cores=2.0, other_cpu_s_per_mb=0.03
    )
    assert cpu_mb_per_s(x) == pytest.approx(50.0)
    assert pipelined_mb_per_s(x) == pytest.approx(50.0)
    # stop-and-wait: per 3 MB, 0.03 s encoding + 3 x 0.03 / 2 s elsewhere, serially
    assert stop_and_wait_mb_per_s(x) == pytest.approx(3 / (0.03 + 0.045))
    # plenty of cores: the workers are the limit again
    assert cpu_mb_per_s(with_(encode_mb_per_s=100.0, workers=2, cores=64.0, other_cpu_s_per_mb=0.03)) == 200.0


def test_concurrent_uploads() -> None:
    # stop-and-wait: two segments per cycle, 1.6 s to send + 0.05 idle
    x = with_(concurrent_uploads=2)
    assert stop_and_wait_mb_per_s(x) == pytest.approx(6 / 1.65)
    # the per-server budget is shared, so pipelining gains nothing more from a second upload
    assert pipelined_mb_per_s(x) == pytest.approx(3.75)


def test_window_caps_in_flight() -> None:
    # window 1 = one segment in flight, whatever the depth
    x = with_(window=1, bandwidth=math.inf)
    assert pipelined_mb_per_s(x) == pytest.approx(3 / 0.05)


def test_whole_upload_adds_key_pass_and_fixed_round_trips() -> None:
    # 30 MB: key pass 30/100 = 0.3 s, 4 round trips 0.2 s, steady state 30/3.75 = 8 s
    x = with_(key_pass_mb_per_s=100.0)
    assert upload_seconds(x, 30_000_000) == pytest.approx(8.5)
    assert upload_mb_per_s(x, 30_000_000) == pytest.approx(30 / 8.5)
    assert upload_seconds(x, 30_000_000, stock_mode=True) == pytest.approx(0.5 + 30 / (3 / 0.85))
    # two concurrent uploads of 15 MB on two workers: the key passes run side by side (0.15 s)
    two = with_(key_pass_mb_per_s=100.0, concurrent_uploads=2, workers=2)
    assert upload_seconds(two, 30_000_000) == pytest.approx(0.15 + 0.2 + 30 / pipelined_mb_per_s(two))
    # nothing costs anything: infinite
    free = with_(rtt_s=0.0, bandwidth=math.inf)
    assert upload_mb_per_s(free, 1000) == math.inf


def test_stock_batches_segments_between_waits() -> None:
    # Tahoe's 4 MB batches of 1 MB blocks: the link waits once per 4 segments
    x = with_(write_size=4_000_000, bandwidth=math.inf)
    assert segments_per_wait(x) == 4
    assert stop_and_wait_mb_per_s(x) == pytest.approx(12 / 0.05)
    assert segments_per_wait(with_(write_size=1_000_001)) == 2


def test_a_coalesced_write_larger_than_the_depth_still_goes() -> None:
    # depth 0, but writes of 4 blocks (min(4 MB, window/2 = 8 blocks)): 40 MB in flight
    x = with_(pipeline_depth=0, write_size=4_000_000, bandwidth=math.inf)
    assert pipelined_mb_per_s(x) == pytest.approx(12 / 0.05)
    # window 2: at most one block per write (window/2 = 1)
    assert pipelined_mb_per_s(
        with_(pipeline_depth=0, write_size=4_000_000, window=2, bandwidth=math.inf)
    ) == (pytest.approx(3 / 0.05))


def test_ideal_depth() -> None:
    assert ideal_depth(12.5e6, 0.05, 10) == pytest.approx(62_500)
    assert ideal_depth(12.5e6, 0.05, 10, concurrent_uploads=2) == pytest.approx(31_250)
    assert ideal_depth(12.5e6, 0.0, 10) == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 11},
        {"segment_size": 0},
        {"pipeline_depth": -1},
        {"rtt_s": -0.1},
        {"bandwidth": 0.0},
        {"encode_mb_per_s": 0.0},
        {"workers": 0},
        {"cores": 0.0},
        {"other_cpu_s_per_mb": -1.0},
        {"write_size": 0},
        {"key_pass_mb_per_s": 0.0},
    ],
)
def test_rejects_bad_inputs(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        with_(**bad)
