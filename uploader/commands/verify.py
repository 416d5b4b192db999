"""``verify CAP``: read every share of a file on every server in full and check it (``tahoe check --verify``).

Prints which shares exist where and which are good or corrupt; exit 0 when the file is healthy (every
share number has a good copy, no copy is corrupt), 5 when it is not, 6 when no server holds any share.
A verify cap (URI:CHK-Verifier:…) is enough: nothing is decrypted.
"""

from __future__ import annotations

import argparse
from typing import Any

from uploader import aio
from uploader.chk.caps import CapError, ChkCap, LitCap, VerifyCap, parse_cap
from uploader.cli import add_config_flags, emit, report_error
from uploader.config import Config
from uploader.errors import UploaderError, UsageError
from uploader.gridclient import GridClient
from uploader.progress import ProgressBar
from uploader.verify import VerifyReport
from workers.base32 import b32encode
from workers.geometry import ceil_div

EXIT_UNHEALTHY = 5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="check every share of a file on every server",
        description="Read every share of the file CAP names on every server and check every hash (like "
        "`tahoe check --verify`). Exit 0 when healthy, 5 when not (4: no server could be reached; 6: no server holds a share). Corrupt shares are reported to their servers.",
    )
    p.add_argument("cap", metavar="CAP", help="a read cap or a verify cap (URI:CHK-Verifier:…)")
    add_config_flags(p, encoding=False, pool=False)  # verify decodes nothing: no workers
    p.set_defaults(run=run, holds_interrupts=True)  # released by aio.run (uploader.interrupts)


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        try:
            cap = parse_cap(args.cap)
        except CapError as exc:
            raise UsageError(f"CAP: {exc}") from None
        if isinstance(cap, LitCap):
            if args.json:
                emit({"storage_index": None, "size": cap.size, "healthy": True, "lit": True})
            else:
                print(
                    "LIT cap: the file's bytes are in the cap itself; nothing on the grid to check. healthy"
                )
            return 0
        report = aio.run(_verify(config, cap))
    except UploaderError as exc:
        return report_error(args, exc)
    if args.json:
        emit(as_json(report))
    else:
        print(as_text(report), flush=True)
    return 0 if report.healthy else EXIT_UNHEALTHY


async def _verify(config: Config, cap: ChkCap | VerifyCap) -> VerifyReport:
    bar = ProgressBar("verify", cap.n * ceil_div(cap.size, cap.k))
    try:
        async with GridClient(config, start_pool=False) as grid:
            return await grid.verify(cap, progress=bar)
    finally:
        bar.close()


def as_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "storage_index": b32encode(report.storage_index),
        "k": report.k,
        "n": report.n,
        "size": report.size,
        "healthy": report.healthy,
        "recoverable": report.recoverable,
        "good_shares": sorted(report.good),
        "missing_shares": report.missing,
        "corrupt_shares": len(report.corrupt),
        "shares": [
            {
                "server": s.server,
                "shnum": s.shnum,
                "status": s.status,
                **({"reason": s.reason} if s.reason else {}),
            }
            for s in report.shares
        ],
        "servers": report.servers,
        "seconds": round(report.seconds, 3),
    }


def as_text(report: VerifyReport) -> str:
    lines = [
        f"storage index {b32encode(report.storage_index)}: k={report.k}, N={report.n}, {report.size} bytes"
    ]
    by_server: dict[str, list[str]] = {}
    for s in report.shares:
        text = f"share {s.shnum}: {s.status}" + (f" ({s.reason})" if s.reason else "")
        by_server.setdefault(s.server, []).append(text)
    for server, error in sorted(report.servers.items()):
        if error is not None:
            lines.append(f"  {server}: unreachable ({error})")
        elif server in by_server:
            lines.extend(f"  {server}: {text}" for text in by_server[server])
        else:
            lines.append(f"  {server}: no shares")
    missing = ", ".join(map(str, report.missing)) or "none"
    lines.append(
        f"good shares: {len(report.good)} of {report.n} (missing: {missing}); corrupt copies: {len(report.corrupt)}"
    )
    if report.healthy:
        lines.append("healthy")
    else:
        lines.append(
            "unhealthy (" + ("recoverable" if report.recoverable else f"NOT recoverable: k={report.k}") + ")"
        )
    return "\n".join(lines)


__all__ = ["as_json", "as_text", "register", "run"]
