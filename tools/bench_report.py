"""The model sweep and the utilisation timelines as one run, and the generated parts of
docs/performance.md (``make bench-report``).

``python -m tools.bench --quick --out DIR``: the reduced sweep (16 MiB per point) and the
timeline at 1 Gbit/s; ``python -m tools.bench --out DIR``: the full sweep (64 MiB per point,
with the stock Tahoe client rows) and the timelines at 100 Mbit/s and 1 Gbit/s;
``python -m tools.bench --report``: the full run into ``docs/performance/``, then the sections of
docs/performance.md between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` are
rewritten from what it measured (the prose around them is not).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools import bench_model, timeline
from uploader.upload import STOCK_WRITE_SIZE

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance.md"
DOCS_DIR = REPO / "docs" / "performance"
KIB, MIB = 1024, 1024 * 1024


def run(out: Path, quick: bool = False, tahoe: bool | None = None) -> dict[str, Any]:
    """Sweep and timelines into ``out``; returns the summary (also ``out/summary.json``)."""
    start = time.monotonic()
    tahoe_bin = bench_model.TAHOE_BIN if (tahoe if tahoe is not None else not quick) else None
    summary: dict[str, Any] = {"sweep": bench_model.run(out, quick=quick, tahoe_bin=tahoe_bin)}
    size = (8 if quick else 16) * MIB
    for mbit in (1000.0,) if quick else (100.0, 1000.0):
        other_cpu = summary["sweep"]["other_cpu_s_per_mb"]
        summary[f"timeline_{mbit:g}"] = timeline.run(out, 50.0, mbit, size, other_cpu=other_cpu)
    summary["seconds"] = round(time.monotonic() - start, 1)
    summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
    summary["cpu_count"] = os.cpu_count()
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _mib(value: Any) -> str:
    if value == "" or isinstance(value, str):
        return str(value) or "–"
    return f"{value // MIB} MiB" if value >= MIB else f"{value // KIB} KiB"


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, float | int) else ""


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The sweep as a Markdown table; ratios outside ±20% in bold."""
    head = (
        "| sweep | mode | RTT ms | link | depth (resolved) | segment | workers | uploads "
        "| measured MB/s (slowest run) | predicted MB/s | measured/predicted | free cores | measured/predicted on them "
        "| link use |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        ratio = r["ratio"]
        ratio_text = "" if ratio == "" else f"{ratio:.2f}"
        if ratio != "" and not 0.8 <= ratio <= 1.2:
            ratio_text = f"**{ratio_text}**"
        link = f"{r['bandwidth_mbit']:g} Mbit/s" if r["bandwidth_mbit"] else "–"
        depth = (
            "–" if r["mode"] != "default" else f"{_mib(r['pipeline_depth'])} ({_mib(r['resolved_depth'])})"
        )
        predicted = "" if r["predicted_mb_per_s"] == "" else f"{r['predicted_mb_per_s']:.2f}"
        lines.append(
            f"| {r['sweep']} | {r['mode']} | {r['rtt_ms']:g} | {link} | {depth} | {_mib(r['segment_size'])} "
            f"| {r['workers']} | {r['uploads']} | {r['measured_mb_per_s']:.2f}{_slowest(r)} | {predicted} | {ratio_text} "
            f"| {_num(r.get('free_cores', ''))} | {_ratio(r.get('ratio_free_cores', ''))} "
            f"| {_pct(r['link_utilisation'])} |"
        )
    return head + "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float | int) else ""


def _ratio(value: Any) -> str:
    if not isinstance(value, float | int):
        return ""
    return f"{value:.2f}" if 0.8 <= value <= 1.2 else f"**{value:.2f}**"


def _slowest(r: dict[str, Any]) -> str:
    slowest = r.get("slowest_mb_per_s", "")
    return f" ({slowest:.2f})" if isinstance(slowest, float | int) and r.get("runs", 1) != 1 else ""


BASE_POINT = {
    "mode": "default",
    "rtt_ms": 50,
    "bandwidth_mbit": 0,
    "pipeline_depth": "auto",
    "segment_size": MIB,
    "workers": 2,
    "uploads": 1,
}


def findings(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The headline numbers, computed from the rows (never typed in)."""
    modelled = [r for r in rows if r["ratio"] != ""]
    inside = [r for r in modelled if 0.8 <= r["ratio"] <= 1.2]
    outside = [r for r in modelled if not 0.8 <= r["ratio"] <= 1.2]
    out = [
        f"- **{len(inside)} of the {len(modelled)} modelled points are within ±20% of the model**"
        + (
            "; outside: "
            + ", ".join(f"{r['sweep']} {r['mode']} {_point_label(r)} ({r['ratio']:.2f})" for r in outside)
            + "."
            if outside
            else "."
        )
    ]

    def pick(sweep: str, mode: str, **match: Any) -> dict[str, Any] | None:
        for r in rows:
            if r["sweep"] == sweep and r["mode"] == mode and all(r[k] == v for k, v in match.items()):
                return r
        return None

    for mbit in (100, 1000):
        auto = pick("bandwidth", "default", bandwidth_mbit=mbit, pipeline_depth="auto")
        fixed = pick("bandwidth", "default", bandwidth_mbit=mbit, pipeline_depth=16 * MIB)
        stock = pick("bandwidth", "stock", bandwidth_mbit=mbit)
        if auto and stock:
            text = (
                f"- **{mbit} Mbit/s, RTT 50 ms:** default (`auto`, resolved to {_mib(auto['resolved_depth'])}) "
                f"puts **{_pct(auto['link_utilisation'])}** of the link's rate in share bytes"
            )
            if fixed:
                text += f", 16 MiB {_pct(fixed['link_utilisation'])}"
            text += (
                f"; stock mode {_pct(stock['link_utilisation'])} (the model's steady state: "
                f"{_steady_use(stock):.1%}, whole upload {_whole_use(stock):.1%})."
            )
            out.append(text)
    free = [r for r in modelled if isinstance(r.get("ratio_free_cores", ""), float | int)]
    if free:
        ok = sum(1 for r in free if 0.8 <= r["ratio_free_cores"] <= 1.2)
        cores = [r["free_cores"] for r in free]
        between = sum(
            1
            for r in free
            if 0.8 * r["predicted_free_cores_mb_per_s"]
            <= r["measured_mb_per_s"]
            <= 1.2 * r["predicted_mb_per_s"]
        )
        out.append(
            f"- **On the cores the rest of the machine left free** (measured from /proc/stat during each "
            f"upload: {min(cores):.2f}–{max(cores):.2f} of {free[0].get('cores', '?')}), "
            f"**{ok} of the {len(free)} points are within ±20%** of the same model; **{between} of "
            f"{len(free)}** lie between the model on the free cores and the model on all cores (±20%)."
        )
    same = [r for r in rows if all(r[key] == value for key, value in BASE_POINT.items())]
    if len(same) > 1:
        best = [r["measured_mb_per_s"] for r in same]
        slowest = [r.get("slowest_mb_per_s", r["measured_mb_per_s"]) for r in same]
        out.append(
            f"- **Noise:** the base point's settings (default, RTT 50 ms, unshaped, `auto`, 1 MiB, 2 workers, "
            f"1 upload) appear in {len(same)} sweeps of this run: their best runs measured "
            f"{min(best):.1f}–{max(best):.1f} MB/s, single runs down to {min(slowest):.1f} MB/s."
        )
    a, f = pick("auto", "default", pipeline_depth="auto"), pick("auto", "default", pipeline_depth=16 * MIB)
    if a and f:
        out.append(
            f"- **Unshaped, RTT 0:** `auto` {a['measured_mb_per_s']:.1f} MB/s against 16 MiB "
            f"{f['measured_mb_per_s']:.1f} MB/s (ratio {a['measured_mb_per_s'] / f['measured_mb_per_s']:.2f}, "
            "same run)."
        )
    out.append(
        f"- The run took {summary.get('seconds', '?')} s; load average at its end "
        f"{summary.get('load_average', '?')} on {summary.get('cpu_count', '?')} cores (other work was "
        "running on the machine at the same time)."
    )
    return "\n".join(out) + "\n"


def _point_label(r: dict[str, Any]) -> str:
    parts = {
        "rtt": f"RTT {r['rtt_ms']:g} ms",
        "depth": f"depth {_mib(r['pipeline_depth'])}",
        "segment": f"segment {_mib(r['segment_size'])}",
        "workers": f"{r['workers']} workers",
        "uploads": f"{r['uploads']} uploads",
        "bandwidth": f"{r['bandwidth_mbit']:g} Mbit/s depth {_mib(r['pipeline_depth'])}",
        "auto": f"depth {_mib(r['pipeline_depth'])}",
        "tahoe": f"RTT {r['rtt_ms']:g} ms",
    }
    return parts.get(r["sweep"], "")


def _steady_use(r: dict[str, Any]) -> float:
    return _link_use(float(r["predicted_steady_mb_per_s"]), r)


def _whole_use(r: dict[str, Any]) -> float:
    return _link_use(float(r["predicted_mb_per_s"]), r)


def _link_use(mb_per_s: float, r: dict[str, Any]) -> float:
    """Share bytes per second over the link rate, for a plaintext rate."""
    share_rate: float = mb_per_s * 1e6 * int(r["n"]) / int(r["k"])
    return share_rate / (float(r["bandwidth_mbit"]) * 1e6 / 8)


def timeline_table(summary: dict[str, Any]) -> str:
    head = (
        "| link | mode | MB/s | CPU busy | link busy | both | bytes on the wire / rate | "
        "model's steady link use |\n|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for key, modes in summary.items():
        if not key.startswith("timeline_"):
            continue
        for mode, f in modes.items():
            lines.append(
                f"| {key.removeprefix('timeline_')} Mbit/s | {mode} | {f['measured_mb_per_s']:.2f} "
                f"| {_pct(f['cpu_busy'])} | {_pct(f.get('link_busy', ''))} | {_pct(f.get('overlap', ''))} "
                f"| {_pct(f.get('wire_use', ''))} | {_pct(f.get('predicted_steady_link_use', ''))} |"
            )
    return head + "\n".join(lines) + "\n"


def tahoe_table(rows: Sequence[dict[str, Any]]) -> str:
    """Stock client, our stock mode and our default by RTT; for the two stop-and-wait clients, also
    the formula's rate from their own RTT-0 rate: ``m·S / (m·S / rate₀ + RTT)``, with ``m·S``
    the plaintext between waits (one 1 MB batch per share)."""
    sel = [r for r in rows if r["sweep"] == "tahoe"]
    if not sel:
        return "(not measured in this run: `python -m tools.bench_model --tahoe`)\n"
    head = (
        "| RTT ms | stock Tahoe 1.20 client (128 KiB) | formula from its RTT-0 rate | our stock mode (128 KiB) "
        "| formula from its RTT-0 rate | our default (1 MiB) |\n|---|---|---|---|---|---|\n"
    )
    rate0 = {m: r["measured_mb_per_s"] for r in sel if r["rtt_ms"] == 0 for m in [r["mode"]]}
    lines = []
    for rtt in sorted({r["rtt_ms"] for r in sel}):
        by = {r["mode"]: r for r in sel if r["rtt_ms"] == rtt}
        cells = [f"{rtt:g}"]
        for mode in ("tahoe", "stock", "default"):
            r = by.get(mode)
            cells.append(f"{r['measured_mb_per_s']:.2f} MB/s" if r else "")
            if mode != "default":
                cells.append(_formula(r, rate0.get(mode)) if r else "")
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def _formula(r: dict[str, Any], rate0: float | None) -> str:
    if not rate0:
        return ""
    block = math.ceil(r["segment_size"] / r["k"])
    batch = math.ceil(STOCK_WRITE_SIZE / block) * r["segment_size"] / 1e6  # MB of plaintext per wait
    predicted = batch / (batch / rate0 + r["rtt_ms"] / 1000)
    return f"{predicted:.2f} ({r['measured_mb_per_s'] / predicted:.2f})"


def sections(out: Path, summary: dict[str, Any]) -> dict[str, str]:
    rows = bench_model.read_rows(out / "model.csv")
    return {
        "findings": findings(rows, summary),
        "table": table(rows),
        "tahoe": tahoe_table(rows),
        "timeline": timeline_table(summary),
        "inputs": _inputs(rows),
    }


def _inputs(rows: Sequence[dict[str, Any]]) -> str:
    rates = {r["segment_size"]: r["encode_mb_per_s"] for r in rows}
    r = rows[0]
    enc = ", ".join(f"{_mib(s)}: {v:g}" for s, v in sorted(rates.items()))
    return (
        f"Encode rate per worker (MB/s, by segment size) {enc}; key pass {r['key_pass_mb_per_s']:g} MB/s; "
        f"other processes {r['other_cpu_s_per_mb']:g} CPU-s per MB; {r['cores']} cores; "
        f"{r['size'] / MIB:g} MiB per point.\n"
    )


def _replacer(text: str) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(1) + text + m.group(2)


def update_doc(doc: Path, texts: dict[str, str]) -> None:
    """Rewrite each ``<!-- generated:NAME -->…<!-- /generated:NAME -->`` block of ``doc``."""
    content = doc.read_text()
    for name, text in texts.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(content):
            raise ValueError(f"{doc} has no generated:{name} block")
        content = pattern.sub(_replacer(text), content)
    doc.write_text(content)


def report(out: Path = DOCS_DIR, doc: Path = DOCS, quick: bool = False) -> dict[str, Any]:
    """The full run into ``out`` (the committed CSV and plots), then the doc's generated blocks."""
    summary = run(out, quick=quick)
    update_doc(doc, sections(out, summary))
    return summary


def render(out: Path = DOCS_DIR, doc: Path = DOCS) -> None:
    """The doc's generated blocks from a finished run in ``out`` (its model.csv, summary.json)."""
    update_doc(doc, sections(out, json.loads((out / "summary.json").read_text())))


if __name__ == "__main__":
    import sys

    render(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS_DIR)
