"""``grid start|stop|status --dir DIR``: the embedded local grid (CONVENTIONS.md "The embedded grid").

``start [--servers N]`` returns once every server answers and prints where the client configuration
is; ``status`` prints one line per server and exits 0 only when all are up; ``stop`` ends exactly
the recorded processes. NURLs are not printed here (they carry the swissnum): they are in
``DIR/uploader.toml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from uploader.cli import emit, positive_seconds
from uploader.config import Config
from uploader.grid import CLIENT_CONFIG, SERVERS_YAML, ServerStatus, grid_status, start_grid, stop_grid


def _servers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"expected a number of servers from 1 to 256, got {text!r}")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "grid",
        help="start, stop or check the embedded local grid",
        description="The embedded local grid: storage servers on 127.0.0.1, in DIR. `start` makes the grid on "
        "its first run (10 servers unless --servers), returns once every server answers, and says where the "
        "client configuration is (DIR/uploader.toml, which the other commands then find on their own); "
        "`status` prints one line per server and exits 0 only when all are up; `stop` ends exactly the "
        "recorded processes. NURLs are not printed (they carry the swissnum): they are in DIR/uploader.toml.",
    )
    actions = p.add_subparsers(dest="grid_action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start the grid's servers (made on first start)")
    start.add_argument("--servers", type=_servers, metavar="N", help="servers in a new grid (default 10)")
    start.add_argument(
        "--timeout",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for servers (seconds > 0; default 60)",
    )
    stop = actions.add_parser("stop", help="stop the grid's servers")
    status = actions.add_parser("status", help="one line per server; exit 0 only when all are up")
    for action, output in (
        (start, "JSON Lines, one object per server"),
        (stop, 'one JSON object, {"stopped": [server names]}'),
        (status, "JSON Lines, one object per server"),
    ):
        action.add_argument("--dir", type=Path, required=True, metavar="DIR", help="the grid's directory")
        action.add_argument("--json", action="store_true", help=f"print {output}")
        action.set_defaults(run=run, needs_config=False)


def _line(s: ServerStatus, as_json: bool) -> str:
    where = s.nurl.address if s.nurl is not None else "-"
    if as_json:
        return json.dumps({"server": s.name, "up": s.up, "pid": s.pid, "address": where, "detail": s.detail})
    return f"{s.name}  {'up' if s.up else 'down':4}  pid {s.pid or '-'}  {where}  {s.detail}"


def run(args: argparse.Namespace, config: Config) -> int:
    directory: Path = args.dir.expanduser().resolve()
    if args.grid_action == "start":
        statuses = start_grid(directory, args.servers, timeout_s=args.timeout)
        for s in statuses:
            print(_line(s, args.json))
        if not args.json:
            print(f"{len(statuses)} servers up; client configuration: {directory / CLIENT_CONFIG}")
            print(f"stock Tahoe client servers: {directory / SERVERS_YAML}")
        return 0
    if args.grid_action == "stop":
        stopped = stop_grid(directory)
        if args.json:
            emit({"stopped": stopped})
        else:
            print(f"stopped {len(stopped)} servers" + (f": {', '.join(stopped)}" if stopped else ""))
        return 0
    statuses = grid_status(directory)
    for s in statuses:
        print(_line(s, args.json))
    return 0 if all(s.up for s in statuses) else 1
