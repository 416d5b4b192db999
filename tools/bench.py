"""``make bench``: every benchmark in one run, printed as JSON sections.

``python -m tools.bench [--quick] [--only NAME ...]``. Each section comes from a module in
``tools/`` with ``run(...) -> dict``; ``--quick`` is the tiny smoke run the test suite uses.

``python -m tools.bench [--quick] --out DIR`` runs the throughput model's sweep and the
utilisation timelines instead (``tools/bench_report.py``: CSV, PNGs, summary.json in DIR);
``--report`` runs the full one into docs/performance/ and refreshes docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

# (section name, module, keyword arguments for a full run, for a quick run)
SECTIONS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("encode", "tools.bench_encode", {"size": 256 * 2**20}, {"size": 8 * 2**20, "quick": True}),
    ("erasure", "tools.bench_erasure", {}, {"quick": True}),
    ("storage", "tools.bench_storage", {}, {"quick": True}),
    ("gbs", "tools.bench_gbs", {}, {"quick": True}),
    ("upload", "tools.bench_upload", {}, {"quick": True}),
    ("stock_grid", "tools.bench_stock_grid", {}, {"quick": True}),
    ("download", "tools.bench_download", {}, {"quick": True}),
    ("status", "tools.bench_status", {}, {"quick": True}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the project's benchmarks side by side, in one process tree."
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument("--only", nargs="*", default=None, help="section names to run")
    parser.add_argument("--out", type=Path, help="run the model sweep and timelines into DIR instead")
    parser.add_argument("--report", action="store_true", help="full sweep, refresh docs/performance.md")
    args = parser.parse_args(argv)
    if args.out is not None or args.report:
        from tools import bench_report

        if args.report:
            summary = bench_report.report(args.out or bench_report.DOCS_DIR, quick=args.quick)
        else:
            summary = bench_report.run(args.out, quick=args.quick)
        print(json.dumps(summary, indent=2), flush=True)
        return 0
    for name, module, full, quick in SECTIONS:
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        mod = importlib.import_module(module)
        result = mod.run(**(quick if args.quick else full))
        result["bench_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps({name: result}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
