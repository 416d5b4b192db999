"""A tiny smoke run of tools/bench_model.py: three points on a 4-server grid (one behind tbf),
the CSV and the plot."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tools.bench_model import COLUMNS, Point, run

pytestmark = pytest.mark.integration


def test_bench_model_smoke(tmp_path: Path) -> None:
    points = [
        Point("rtt", "default", 0.0, 1 << 20, 65536),
        Point("rtt", "stock", 20.0, 1 << 20, 65536),
        Point("bandwidth", "default", 5.0, 1 << 20, 65536, 1000.0),  # tbf in a namespace
    ]
    summary = run(tmp_path, quick=True, points=points, size=300_000, k=2, n=4, workers=1)
    with (tmp_path / "model.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["mode"], float(r["rtt_ms"])) for r in rows] == [
        ("default", 0.0),
        ("stock", 20.0),
        ("default", 5.0),
    ]
    assert rows[0]["link_utilisation"] == "" and float(rows[2]["link_utilisation"]) > 0
    for row in rows:
        assert float(row["measured_mb_per_s"]) > 0 and float(row["predicted_mb_per_s"]) > 0
    assert Path(summary["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
