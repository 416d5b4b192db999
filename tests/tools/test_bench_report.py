"""tools/bench_report.py: the generated blocks of a doc are replaced and nothing else; the table
marks ratios outside ±20%; the headline figures come from the rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.bench_report import findings, table, tahoe_table, update_doc

MIB = 1024 * 1024


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sweep": "rtt", "mode": "default", "rtt_ms": 50.0, "bandwidth_mbit": 0.0, "pipeline_depth": "auto",
        "resolved_depth": 16 * MIB, "segment_size": MIB, "workers": 2, "uploads": 1, "k": 3, "n": 10,
        "measured_mb_per_s": 10.0, "predicted_mb_per_s": 10.0, "ratio": 1.0, "link_utilisation": "",
        "predicted_steady_mb_per_s": 12.0,
    }  # fmt: skip
    return row | kw


def test_update_doc_rewrites_only_the_generated_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "p.md"
    doc.write_text("intro\n<!-- generated:a -->\nold\n<!-- /generated:a -->\nprose\n")
    update_doc(doc, {"a": "new $1 \\g<0>\n"})  # no regex replacement syntax is interpreted
    assert doc.read_text() == "intro\n<!-- generated:a -->\nnew $1 \\g<0>\n<!-- /generated:a -->\nprose\n"
    with pytest.raises(ValueError, match="no generated:b block"):
        update_doc(doc, {"b": "x"})


def test_table_marks_outliers_and_findings_count_them() -> None:
    rows = [
        _row(),
        _row(sweep="depth", pipeline_depth=128 * 1024, resolved_depth=128 * 1024, ratio=0.7, measured_mb_per_s=7.0),
        _row(sweep="tahoe", mode="tahoe", predicted_mb_per_s="", ratio="", resolved_depth=""),
    ]  # fmt: skip
    rows[1] |= {"free_cores": 0.5, "ratio_free_cores": 0.95, "cores": 2, "predicted_free_cores_mb_per_s": 7.4}
    text = table(rows)
    assert "| **0.70** |" in text and "| 1.00 |" in text and "128 KiB (128 KiB)" in text
    assert "| **0.70** | 0.50 | 0.95 |" in text
    assert len(text.strip().splitlines()) == 2 + 3
    summary = findings(rows, {"seconds": 1.0, "load_average": [1.0], "cpu_count": 2})
    assert (
        "1 of the 2 modelled points are within ±20%" in summary
        and "depth default depth 128 KiB (0.70)" in summary
    )
    assert "(measured from /proc/stat during each upload: 0.50–0.50 of 2), **1 of the 1 points" in summary
    assert "**1 of 1** lie between the model on the free cores and the model on all cores" in summary


def test_findings_link_use_at_the_acceptance_point() -> None:
    common = {"sweep": "bandwidth", "bandwidth_mbit": 100.0, "rtt_ms": 50.0}
    rows = [
        _row(**common, pipeline_depth="auto", resolved_depth=4 * MIB, link_utilisation=0.93),
        _row(**common, pipeline_depth=16 * MIB, link_utilisation=0.92),
        # stock: 3.0 MB/s of plaintext predicted in the steady state = 10 MB/s of shares of 12.5
        _row(**common, mode="stock", link_utilisation=0.8, predicted_steady_mb_per_s=3.0, predicted_mb_per_s=2.7),
    ]  # fmt: skip
    text = findings(rows, {})
    assert "puts **93.0%** of the link's rate" in text and "16 MiB 92.0%" in text
    assert "stock mode 80.0% (the model's steady state: 80.0%, whole upload 72.0%)" in text


def test_findings_report_the_spread_of_identical_settings() -> None:
    rows = [
        _row(measured_mb_per_s=80.0, slowest_mb_per_s=40.0, runs=2),
        _row(sweep="segment", measured_mb_per_s=30.0, slowest_mb_per_s=20.0, runs=2),
    ]
    text = findings(rows, {})
    assert "appear in 2 sweeps of this run: their best runs measured 30.0–80.0 MB/s" in text
    assert "single runs down to 20.0 MB/s" in text
    assert "| 80.00 (40.00) |" in table(rows)


def test_tahoe_table_checks_stop_and_wait_against_the_rtt0_rate() -> None:
    # 128 KiB segments, k=3: 23 segments (3.014656 MB) per 1 MB batch; 30.14656 MB/s at RTT 0 is
    # 0.1 s per batch, so 50 ms more per batch gives 3.014656 / 0.15 = 20.10 MB/s
    common = {"sweep": "tahoe", "segment_size": 131072, "predicted_mb_per_s": "", "ratio": ""}
    rows = [
        _row(**common, mode="tahoe", rtt_ms=0.0, measured_mb_per_s=30.14656),
        _row(**common, mode="tahoe", rtt_ms=50.0, measured_mb_per_s=20.1),
    ]
    text = tahoe_table(rows)
    assert "| 50 | 20.10 MB/s | 20.10 (1.00) |" in text
    assert "not measured" in tahoe_table([_row()])
