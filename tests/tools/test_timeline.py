"""tools/timeline.py's figures on literal spans and wire samples (the plotting is smoked in
tests/integration/test_trace.py on a real upload)."""

from __future__ import annotations

import pytest

from tools.timeline import analyse
from uploader.trace import Span


def test_analyse_cpu_link_and_overlap_over_the_data_phase() -> None:
    spans = [
        Span("busy", "0", 0.0, 1.0),  # the key pass and the first segments; clipped to the data phase
        Span("write", "a:1", 0.5, 2.0, 300),
    ]
    # 100 B/s link: busy from 0.5 to 1.5 (200 B/s), idle from 1.5 to 2.0
    samples = [(0.5, 0), (1.0, 100), (1.5, 200), (2.0, 200)]
    got = analyse(spans, samples, rate=100.0)
    assert got["seconds"] == 1.5
    assert got["cpu_busy"] == pytest.approx(0.333, abs=1e-3)  # 0.5 of 1.5 s
    assert got["link_busy"] == pytest.approx(0.667, abs=1e-3)
    assert got["overlap"] == pytest.approx(0.333, abs=1e-3)  # only 0.5-1.0 has both
    assert got["wire_use"] == pytest.approx(1.333, abs=1e-3)
    assert (got["workers"], got["servers"], got["share_bytes"]) == (1, 1, 300)
    assert (got["writes"], got["mean_write_bytes"]) == (1, 300)


def test_analyse_without_a_shaped_link_or_events() -> None:
    got = analyse([Span("write", "a:1", 0.0, 1.0, 10)], [], rate=None)
    assert "link_busy" not in got and got["writes_in_flight"] == 1.0 and got["cpu_busy"] == 0.0
    with pytest.raises(ValueError, match="no events were recorded"):
        analyse([], [], None)
