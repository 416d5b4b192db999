"""``storage --dir DIR [--listen HOST:PORT] [--reserved-space BYTES]``: one GBS storage server.

Prints its NURL on stdout once it listens (also written to ``DIR/nurl``) and runs until SIGTERM or
SIGINT. Without ``--listen`` it listens on the address of its previous run (so its NURL stays the
same), or on 127.0.0.1 with a free port the first time.

``--emulate-rtt-ms MS`` (hidden, for ``tools/bench_model``) holds every response MS milliseconds
after its request was handled, emulating a round-trip time on loopback (``storage/app.py`` says
what it does and does not emulate).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from uploader.cli import VERSION, positive_seconds
from uploader.config import Config
from uploader.errors import ConfigError
from uploader.storage.identity import NURL_FILE
from uploader.storage.server import ServerSettings, run_server
from uploader.storage.store import IDLE_BUCKET_TIMEOUT_S, StoreSettings
from uploader.wire.nurl import NurlError, check_host, parse_nurl

_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
_SIZE = re.compile(r"([0-9]+)\s*([kmgt]i?)?b?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``5G`` (10^9), ``5GiB`` (2^30) and the like."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"expected a size in bytes such as 1000000, 5G or 5GiB, got {text!r}"
        )
    return int(m[1]) * _UNITS[(m[2] or "").lower()]


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
    return host, int(port)


def _non_negative_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 3_600_000:
        raise argparse.ArgumentTypeError(f"expected milliseconds from 0 to less than 3600000, got {text!r}")
    return value


def _nurl_host(text: str) -> str:
    """What clients will accept in the NURL (checked as they parse it), without brackets."""
    try:
        return check_host(text)
    except NurlError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "storage",
        help="run one GBS storage server",
        description="Run a Tahoe-LAFS compatible (GBS over HTTPS) storage server keeping shares in DIR. "
        "Prints its NURL on stdout and writes it to DIR/nurl.",
    )
    p.add_argument(
        "--dir", type=Path, required=True, metavar="DIR", help="server directory (made if missing)"
    )
    p.add_argument(
        "--listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free one (default: the previous run's, else 127.0.0.1:0)",
    )
    p.add_argument(
        "--nurl-host",
        type=_nurl_host,
        metavar="HOST",
        help="host to put in the NURL: an IP address or DNS name (default: the listen host)",
    )
    p.add_argument(
        "--reserved-space",
        type=parse_size,
        default=0,
        metavar="BYTES",
        help="free disk space never allocated",
    )
    p.add_argument("--max-share-size", type=parse_size, metavar="BYTES", help="largest share accepted")
    p.add_argument(
        "--idle-timeout",
        type=positive_seconds,
        default=IDLE_BUCKET_TIMEOUT_S,
        metavar="SECONDS",
        help="abort an in-progress upload after this long without writes (default 1800)",
    )
    p.add_argument(
        "--request-timeout",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="silence allowed while a request body is arriving (default 60)",
    )
    p.add_argument(  # benchmarks only (tools/bench_model.py): hidden from --help
        "--emulate-rtt-ms", type=_non_negative_ms, default=0.0, help=argparse.SUPPRESS
    )
    p.set_defaults(run=run, needs_config=False)


def previous_listen(directory: Path) -> tuple[str, int] | None:
    """The host and port in DIR/nurl from the previous run, if any."""
    try:
        nurl = parse_nurl((directory / NURL_FILE).read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, NurlError):
        return None
    return nurl.host, nurl.port


def run(args: argparse.Namespace, config: Config) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    directory: Path = args.dir.expanduser().resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--dir {directory}: cannot create it: {exc.strerror}") from None
    host, port = args.listen or previous_listen(directory) or ("127.0.0.1", 0)
    settings = ServerSettings(
        directory=directory,
        host=host,
        port=port,
        nurl_host=args.nurl_host,  # Nurl.host: no brackets
        store=StoreSettings(
            reserved_space=args.reserved_space,
            max_share_size=args.max_share_size,
            idle_bucket_timeout_s=args.idle_timeout,
        ),
        request_timeout_s=args.request_timeout,
        application_version=f"uploader/{VERSION}".encode("ascii"),
        emulate_rtt_s=args.emulate_rtt_ms / 1000,
    )
    return run_server(settings)
