"""The chart's history: rates from cumulative counters, the bounded ring, columns and ``since``."""

from __future__ import annotations

import pytest

from uploader.api.history import History, ServerStats, rates


def test_rates_from_cumulative_counters() -> None:
    assert rates(None, {}, 1.0, {"a": 5.0}) == {"a": 0.0}  # the first reading is a baseline
    assert rates(1.0, {"a": 5.0, "b": 1.0}, 3.0, {"a": 9.0, "b": 1.0, "c": 7.0}) == {
        "a": 2.0,
        "b": 0.0,
        "c": 0.0,  # new since the last reading: no rate yet
    }
    assert rates(1.0, {"a": 5.0}, 2.0, {"a": 1.0}) == {"a": 0.0}  # went down (a restarted worker)
    assert rates(2.0, {"a": 5.0}, 2.0, {"a": 9.0}) == {"a": 0.0}  # no time passed


def test_history_samples_fractions_and_bytes_per_second() -> None:
    h = History(capacity=10)
    assert h.last_t is None
    assert h.add(0.0, {"0": 0.0, "1": 0.0}, {"s:1": 0}, 0.0) is None
    s = h.add(2.0, {"0": 1.0, "1": 3.0}, {"s:1": 4_000_000}, 0.5)
    assert s is not None
    assert (s.seq, s.t, s.workers, s.servers, s.network) == (
        1,
        2.0,
        {"0": 0.5, "1": 1.0},  # 3 busy seconds in 2 s is capped at 1
        {"s:1": 2_000_000.0},
        0.25,
    )
    assert h.add(2.0, {"0": 1.0}, {}, 0.5) is None  # the clock did not move: nothing recorded
    assert h.last_seq == 1 and h.last_t == 2.0
    late = h.add(3.5, {"0": 1.0}, {}, 0.5, loop_lag_s=0.0123)
    assert late is not None and late.loop_lag_ms == 12.3
    assert h.to_json()["loop_lag_ms"] == [0.0, 12.3]


def test_history_is_a_bounded_ring_and_since_gives_only_newer_samples() -> None:
    h = History(capacity=5)
    for i in range(20):
        h.add(float(i), {"0": i * 0.5}, {"h:2": i * 100.0}, 0.0)
    assert len(h.samples) == 5 and h.last_seq == 19
    full = h.to_json()
    assert full["seq"] == [15, 16, 17, 18, 19] and full["t"] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert full["workers"] == {"0": [0.5] * 5} and full["servers"] == {"h:2": [100.0] * 5}
    assert full["capacity"] == 5 and full["last_seq"] == 19
    newer = h.to_json(since=18)
    assert newer["seq"] == [19] and newer["workers"] == {"0": [0.5]}
    assert h.to_json(since=19)["seq"] == [] and h.to_json(since=19)["workers"] == {}


def test_series_that_come_and_go_are_padded_with_none_and_sorted_naturally() -> None:
    h = History()
    h.add(0.0, {"0": 0.0}, {"h:10": 0, "h:9": 0}, 0.0)
    h.add(1.0, {"0": 0.5}, {"h:10": 10, "h:9": 20}, 0.0)
    h.add(2.0, {"0": 1.0, "10": 0.0, "2": 0.0}, {"h:10": 10}, 0.0)  # workers 2 and 10 appear
    h.add(3.0, {"0": 1.5, "10": 1.0, "2": 0.25}, {"h:10": 10}, 0.0)
    cols = h.to_json()
    assert list(cols["workers"]) == ["0", "2", "10"]
    assert cols["workers"]["10"] == [None, 0.0, 1.0]
    assert list(cols["servers"]) == ["h:9", "h:10"]
    assert cols["servers"]["h:9"] == [20.0, None, None]


def test_a_history_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        History(capacity=0)


def test_server_stats_rate_and_latency_of_the_last_tick() -> None:
    first = ServerStats()
    first.update(10.0, 1000, 4, 0.4)  # writes before the first reading: their mean latency, no rate
    assert (first.rate, first.latency_s) == (0.0, 0.1)
    s = ServerStats()
    s.update(10.0, 0, 0, 0.0)
    assert (s.rate, s.latency_s) == (0.0, None)
    s.update(12.0, 8_000_000, 4, 0.2)
    assert (s.rate, s.latency_s) == (4_000_000.0, 0.05)
    s.update(13.0, 8_000_000, 4, 0.2)  # idle: no rate, the last latency stays
    assert (s.rate, s.latency_s) == (0.0, 0.05)
    s.update(14.0, 9_000_000, 6, 0.8)
    assert (s.rate, s.latency_s) == (1_000_000.0, 0.3)
