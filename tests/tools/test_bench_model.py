"""A tiny smoke run of tools/bench_model.py: a few points on a 4-server grid (one behind tbf, one
with two concurrent uploads, one through a stock Tahoe client), the CSV and the plot."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tools.bench_model import COLUMNS, Point, read_rows, run

pytestmark = pytest.mark.integration


def test_bench_model_smoke(tmp_path: Path, tahoe_bin: Path) -> None:
    points = [
        Point("rtt", "default", 20.0, 1 << 20, 65536, workers=1),
        Point("rtt", "stock", 20.0, 1 << 20, 65536, workers=1),
        Point("uploads", "default", 20.0, "auto", 65536, workers=1, uploads=2),
        Point("tahoe", "tahoe", 20.0, "auto", 131072),
        Point("bandwidth", "default", 5.0, "auto", 65536, 1000.0, workers=1),  # tbf in a namespace
    ]
    summary = run(
        tmp_path,
        quick=True,
        points=points,
        size=300_000,
        k=2,
        n=4,
        tahoe_bin=tahoe_bin,
        calibrate=False,
        repeats=1,
        warm_up=False,
    )
    with (tmp_path / "model.csv").open() as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS
    rows = read_rows(tmp_path / "model.csv")
    assert [(r["sweep"], r["mode"], r["rtt_ms"]) for r in rows] == [
        ("rtt", "default", 20),
        ("rtt", "stock", 20),
        ("uploads", "default", 20),
        ("tahoe", "tahoe", 20),
        ("bandwidth", "default", 5),
    ]
    assert rows[0]["link_utilisation"] == "" and rows[4]["link_utilisation"] > 0
    assert rows[4]["wire_utilisation"] >= rows[4]["link_utilisation"]  # headers count on the wire
    # "auto" told the 1 Gbit/s link: the floor, two 4 MiB writes (125 MB/s x 5 ms / 4 is less)
    assert rows[4]["resolved_depth"] == 8 * 1024 * 1024
    assert rows[3]["predicted_mb_per_s"] == "" and rows[3]["measured_mb_per_s"] > 0
    for row in rows[:3] + rows[4:]:
        assert row["measured_mb_per_s"] > 0 and row["predicted_mb_per_s"] > 0
    assert summary["modelled_points"] == 4
    assert Path(summary["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
