"""``serve``: the daemon (Tahoe-compatible web API on ``api_listen``); see ``uploader.daemon``."""

from __future__ import annotations

import argparse
import os

from uploader.cli import add_config_flags, config_from_args
from uploader.config import Config
from uploader.daemon import serve


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the daemon: Tahoe's web API for immutable files, /status and /metrics",
        description="Run in the foreground as a daemon (systemd Type=notify): PUT /uri, POST /uri?t=upload, "
        "GET /uri/CAP (Range too) and GET /uri/CAP?t=json as Tahoe-LAFS serves them, plus GET /status and "
        "GET /metrics. SIGHUP re-reads the configuration; SIGTERM drains uploads, then exits 0. Logs go to stderr.",
    )
    add_config_flags(p, encoding=False)
    p.add_argument(
        "--api-listen", metavar="HOST:PORT", help="where the web API listens (default 127.0.0.1:3456)"
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default info")
    p.set_defaults(run=run, holds_interrupts=True)  # released by aio.run (uploader.interrupts)


def run(args: argparse.Namespace, config: Config) -> int:
    return serve(config, lambda: config_from_args(args), dict(os.environ))


__all__ = ["register", "run"]
