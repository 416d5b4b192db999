"""Stock Tahoe-LAFS 1.20 nodes: the interop peer of the tests and the yardstick of the benchmark.

This module is the one copy of the stock-node management; ``tests/helpers/stock.py`` re-exports it,
so ``tools/`` stays importable without ``tests/`` on the path.

* ``StockStorageNode``: ``tahoe create-node`` listening on 127.0.0.1, then ``tahoe run
  --allow-stdin-close`` in its own session with stdin from /dev/null; SIGTERM stops it. A stock
  node writes no NURL to disk: it is rebuilt from the node directory (GBS spec appendix A.5), the
  tub id comes from ``private/storage.furl`` and the permutation seed from the ``permutation-seed``
  file, which holds exactly what the node announces.
* ``StockClientNode``: ``tahoe create-client`` with its web API on 127.0.0.1, no introducer, and a
  ``private/servers.yaml`` (appendix A.1–A.4); ready once the web API lists every server as
  connected. ``put``/``get`` run the ``tahoe`` CLI against it.
* ``servers_yaml_for``: the ``servers.yaml`` text for any list of servers.
* ``start_all``/``stop_all``: nodes are slow to start (about 1.5 s of CPU each), so several are
  created, started and waited for in parallel.
* ``stock_put_rate``/``stock_get_rate``: ``tahoe put``/``tahoe get`` through a stock client whose
  servers are the embedded grid's (``grid start`` writes ``servers.yaml``), timed, for the benchmark.
  Also ``python -m tools.stock_tahoe put-rate|get-rate --grid DIR FILE|CAP``.

Every port a stock node opens is on 127.0.0.1 except one: its log tub listens on an ephemeral port
of 0.0.0.0 (``allmydata.util.iputil._foolscapEndpointForPortNumber``), which Tahoe 1.20 gives no
setting for. Run nodes in a loopback-only network namespace if that matters.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from uploader.grid import probe_server
from uploader.wire.nurl import NurlError, parse_nurl, spki_hash_of_pem_cert
from workers.base32 import b32decode, b32encode
from workers.errors import UploaderError

HOST = "127.0.0.1"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 600.0
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TAHOE_BIN = REPO / ".cache" / "tahoe-venv" / "bin" / "tahoe"


class StockTahoeError(RuntimeError):
    """A stock node could not be created, started or used; the message names its log."""


# --- small pieces ----------------------------------------------------------------------------------

_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


# A node binds its port only once it runs, a second or more after the port was chosen. A port from
# the kernel's ephemeral range (Linux: 32768-60999) can be taken meanwhile by any port-0 listener or
# any outgoing connection (another node's, a test's), and then the node either fails to listen or a
# probe of "its" port reaches someone else. So ports come from below that range, where nothing is
# handed out implicitly.
_PORT_RANGE = (20000, 32000)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 outside the ephemeral range, never the same twice in this process."""
    with _ports_lock:
        for _ in range(1000):
            port = random.randint(*_PORT_RANGE)
            if port in _ports_handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind((HOST, port))
                except OSError:
                    continue
            _ports_handed_out.add(port)
            return port
    raise StockTahoeError(f"no free TCP port on {HOST} in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def stock_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for stock Tahoe processes: ours, less PYTHONPATH and UPLOADER_* settings."""
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONPATH", None)
    for name in [n for n in env if n.startswith("UPLOADER_")]:
        del env[name]
    return env


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the web API is on 127.0.0.1


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class StorageAnnouncement:
    """What a stock client must know about one storage server (GBS spec A.2)."""

    nurl: str
    tub_id: bytes  # 20 bytes: the lease seed (A.4)
    server_id: str | None = None  # the key under ``storage:``; default ``tub-<tub id>``
    permutation_seed: str | None = None  # base32 text exactly as the server announces it
    nickname: str | None = None


def servers_yaml_for(servers: Iterable[StorageAnnouncement | tuple[str, bytes]]) -> str:
    """``private/servers.yaml`` for a stock client: one entry per server, from announcements or
    ``(nurl, tub_id)`` pairs (then the server id is ``tub-<tub id>`` and the seed SHA-256 of it)."""
    lines = ["storage:"]
    for item in servers:
        ann = item if isinstance(item, StorageAnnouncement) else StorageAnnouncement(*item)
        if len(ann.tub_id) != 20:
            raise ValueError(f"a tub id is 20 bytes, got {len(ann.tub_id)}")  # A.2: else every upload fails
        if not ann.nurl.endswith("#v=1"):
            raise ValueError("a NURL for a stock client needs the #v=1 fragment")  # A.2: else never connects
        tub = b32encode(ann.tub_id)
        lines += [f"  {_yaml_str(ann.server_id or 'tub-' + tub)}:", "    ann:"]
        if ann.nickname:
            lines.append(f"      nickname: {_yaml_str(ann.nickname)}")
        lines += [
            "      anonymous-storage-NURLs:",
            f"        - {_yaml_str(ann.nurl)}",
            f"      anonymous-storage-FURL: {_yaml_str(f'pb://{tub}@')}",
        ]
        if ann.permutation_seed:
            lines.append(f"      permutation-seed-base32: {_yaml_str(ann.permutation_seed)}")
    return "\n".join(lines) + "\n"


# --- node processes --------------------------------------------------------------------------------


class _Node:
    """One node directory and its ``tahoe run`` process (own session; SIGTERM to stop)."""

    def __init__(self, directory: Path, tahoe_bin: Path, env: Mapping[str, str] | None) -> None:
        self.dir = Path(directory)
        self.tahoe_bin = Path(tahoe_bin)
        self.env = stock_env(env)
        self.log_path = self.dir.with_name(self.dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dir})"

    @property
    def created(self) -> bool:
        return (self.dir / "tahoe.cfg").exists()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def tahoe(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run the ``tahoe`` CLI with this node's environment; raise StockTahoeError unless it succeeds."""
        cmd = [str(self.tahoe_bin), *args]
        shown = " ".join("URI:…" if a.startswith("URI:") else a for a in args)  # caps are secrets
        try:
            out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise StockTahoeError(f"`tahoe {shown}` ran past {timeout_s:g} s") from None
        if out.returncode != 0:
            raise StockTahoeError(
                f"`tahoe {shown}` exited with {out.returncode}: {(out.stderr or out.stdout).strip()[-2000:]}"
            )
        return out

    def create(self) -> _Node:
        raise NotImplementedError

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> _Node:
        raise NotImplementedError

    def start(self) -> _Node:
        """Launch ``tahoe run`` (returns at once; ``wait_ready`` waits)."""
        if self.running:
            raise StockTahoeError(f"{self} is already running")
        if not self.created:
            self.create()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.tahoe_bin), "run", "--allow-stdin-close", str(self.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the node's process group, SIGKILL after ``timeout_s``; its exit status (None if never started)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self, deadline: float, timeout_s: float, waiting_for: str) -> None:
        if self.proc is None:
            raise StockTahoeError(f"{self} was not started")
        if self.proc.poll() is not None:
            raise StockTahoeError(
                f"{self} exited with {self.proc.returncode} while waiting for {waiting_for}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise StockTahoeError(
                f"{self}: no {waiting_for} after {timeout_s:g} s; log {self.log_path}:\n{self.log_tail()}"
            )

    def __enter__(self) -> _Node:
        start_all([self])
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StockStorageNode(_Node):
    """A stock storage node serving GBS (and Foolscap) on one TCP port of 127.0.0.1."""

    def __init__(
        self,
        directory: Path,
        tahoe_bin: Path,
        *,
        nickname: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(directory, tahoe_bin, env)
        self.nickname = nickname or self.dir.name
        self._port = port

    def create(self) -> StockStorageNode:
        port = self._port or free_port()
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        self.tahoe(
            "create-node",
            f"--nickname={self.nickname}",
            f"--port=tcp:{port}:interface={HOST}",
            f"--location=tcp:{HOST}:{port}",
            "--webport=none",
            str(self.dir),
        )
        self._port = port
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> StockStorageNode:
        """Wait until the node announces a permutation seed and answers a GBS version request."""
        deadline = time.monotonic() + timeout_s
        last = "its node directory has no storage.furl and permutation-seed yet"
        while True:
            if (self.dir / "private" / "storage.furl").exists() and (self.dir / "permutation-seed").exists():
                try:
                    probe_server(parse_nurl(self.nurl), timeout_s=2.0)
                    return self
                except (
                    OSError,
                    ssl.SSLError,
                    http.client.HTTPException,
                    UploaderError,
                    NurlError,
                    StockTahoeError,
                ) as exc:
                    last = f"the last probe of port {self._port} failed: {type(exc).__name__}: {exc}"
            self._check_alive(deadline, timeout_s, f"GBS version answer ({last})")
            time.sleep(0.1)

    # -- identity, rebuilt from the node directory (GBS spec A.5) ---------------------------------

    @property
    def port(self) -> int:
        for hint in self._location_hints():
            if hint.startswith("tcp:"):
                return int(hint.rsplit(":", 1)[1])
        raise StockTahoeError(f"{self}: no tcp hint in tub.location")

    def _location_hints(self) -> list[str]:
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(self.dir / "tahoe.cfg", encoding="utf-8")
        return [h.strip() for h in cfg.get("node", "tub.location", fallback="").split(",") if h.strip()]

    def _storage_furl(self) -> str:
        furl = (self.dir / "private" / "storage.furl").read_text(encoding="ascii").strip()
        if "/" not in furl.removeprefix("pb://"):  # the node may still be writing it
            raise StockTahoeError(f"{self}: private/storage.furl is not complete yet")
        return furl

    @property
    def nurls(self) -> list[str]:
        """One NURL per ``tcp:``/``tor:`` hint in ``tub.location``: SPKI hash of ``private/node.pem``,
        swissnum of ``private/storage.furl`` (GBS and Foolscap share port and swissnum)."""
        swissnum = self._storage_furl().rsplit("/", 1)[1]
        spki = spki_hash_of_pem_cert((self.dir / "private" / "node.pem").read_bytes())
        out = []
        for hint in self._location_hints():
            kind, _, hostport = hint.partition(":")
            if kind in ("tcp", "tor"):
                scheme = "pb" if kind == "tcp" else "pb+tor"
                out.append(f"{scheme}://{spki}@{hostport}/{swissnum}#v=1")
        return out

    @property
    def nurl(self) -> str:
        return self.nurls[0]

    @property
    def tub_id(self) -> bytes:
        """The 20-byte tub id of ``private/storage.furl`` (= SHA-1 of the certificate's DER)."""
        return b32decode(self._storage_furl().removeprefix("pb://").split("@", 1)[0], 20)

    @property
    def server_id(self) -> str:
        """``v0-<base32 Ed25519 key>``: the id introducer-fed clients key this server by."""
        return (self.dir / "node.pubkey").read_text(encoding="ascii").strip().removeprefix("pub-")

    @property
    def permutation_seed(self) -> str | None:
        """The announced ``permutation-seed-base32`` (written by the node when it first starts)."""
        try:
            return (self.dir / "permutation-seed").read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None

    @property
    def announcement(self) -> StorageAnnouncement:
        return StorageAnnouncement(
            self.nurl, self.tub_id, self.server_id, self.permutation_seed, self.nickname
        )

    @property
    def storage_dir(self) -> Path:
        return self.dir / "storage"


class StockClientNode(_Node):
    """A stock client node (no storage, no introducer) using the servers of a ``servers.yaml``."""

    def __init__(
        self,
        directory: Path,
        tahoe_bin: Path,
        servers_yaml_text: str,
        k: int = 3,
        happy: int = 7,
        n: int = 10,
        *,
        expect_connected: int | None = None,
        web_port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(directory, tahoe_bin, env)
        self.servers_yaml_text = servers_yaml_text
        self.k, self.happy, self.n = k, happy, n
        # every entry of a servers.yaml carries exactly one such key (A.2)
        self.expect_connected = (
            servers_yaml_text.count("anonymous-storage-NURLs:")
            if expect_connected is None
            else expect_connected
        )
        self._web_port = web_port

    def create(self) -> StockClientNode:
        port = self._web_port or free_port()
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        self.tahoe(
            "create-client",
            f"--nickname={self.dir.name}",
            f"--webport=tcp:{port}:interface={HOST}",
            f"--shares-needed={self.k}",
            f"--shares-happy={self.happy}",
            f"--shares-total={self.n}",
            str(self.dir),
        )
        self._web_port = port
        private = self.dir / "private"
        (private / "introducers.yaml").unlink(missing_ok=True)  # absent, never empty (A.1)
        fd = os.open(private / "servers.yaml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # NURLs carry swissnums
            fh.write(self.servers_yaml_text)
        return self

    @property
    def web_url(self) -> str:
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(self.dir / "tahoe.cfg", encoding="utf-8")
        port = cfg.get("node", "web.port").split(":")[1]
        return f"http://{HOST}:{port}/"

    @property
    def convergence_secret_file(self) -> Path:
        """``private/convergence`` (written when the node first starts)."""
        return self.dir / "private" / "convergence"

    def servers(self) -> list[dict[str, Any]]:
        """The welcome page's server list (``GET /?t=json``)."""
        with _NO_PROXY.open(self.web_url + "?t=json", timeout=5) as resp:
            servers: list[dict[str, Any]] = json.load(resp)["servers"]
        return servers

    def connected(self) -> int:
        return sum(
            1 for s in self.servers() if str(s.get("connection_status", "")).lower().startswith("connected")
        )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> StockClientNode:
        """Wait until the web API lists ``expect_connected`` servers as connected (A.3)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if self.connected() >= self.expect_connected:
                    return self
            self._check_alive(deadline, timeout_s, f"{self.expect_connected} connected servers")
            time.sleep(0.2)

    def put(self, file: Path, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """``tahoe put FILE``: the cap it prints."""
        out = self.tahoe("-d", str(self.dir), "put", str(file), timeout_s=timeout_s)
        return out.stdout.strip().splitlines()[-1]

    def put_http(self, file: Path, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """``PUT /uri`` with the file as the body, to this running node's web API: the upload as
        ``tahoe put`` hands it over, without the CLI's own start-up (~0.8 s here). The cap."""
        conn = http.client.HTTPConnection(
            HOST, int(self.web_url.rsplit(":", 1)[1].strip("/")), timeout=timeout_s
        )
        try:
            with Path(file).open("rb") as body:
                size = os.fstat(body.fileno()).st_size
                conn.request("PUT", "/uri", body=body, headers={"Content-Length": str(size)})
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace").strip()
        finally:
            conn.close()
        if resp.status != 200 or not text.startswith("URI:"):
            raise UploaderError(f"stock node answered PUT /uri with {resp.status}: {text[:200]}")
        return text

    def get(self, cap: str, out: Path, timeout_s: float = CLI_TIMEOUT_S) -> None:
        """``tahoe get CAP OUT``."""
        self.tahoe("-d", str(self.dir), "get", cap, str(out), timeout_s=timeout_s)


# --- several nodes at once ---------------------------------------------------------------------------

N = TypeVar("N", bound=_Node)


def start_all(nodes: Sequence[N], timeout_s: float = START_TIMEOUT_S) -> Sequence[N]:
    """Create (where needed), start and wait for every node, in parallel. On any failure, stop all
    of them and raise the first error."""
    if not nodes:
        return nodes
    try:
        with ThreadPoolExecutor(max_workers=min(len(nodes), 16)) as pool:
            list(pool.map(lambda node: node if node.created else node.create(), nodes))
            for node in nodes:
                node.start()
            list(pool.map(lambda node: node.wait_ready(timeout_s), nodes))
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def stop_all(nodes: Iterable[_Node], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every node at once, then wait for each (SIGKILL after ``timeout_s``)."""
    nodes = list(nodes)
    for node in nodes:
        if node.running and node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGTERM)
    for node in nodes:
        node.stop(timeout_s)


# --- the benchmark's yardstick --------------------------------------------------------------------


def client_for_grid(
    tahoe_bin: Path, grid_dir: Path, node_dir: Path, *, env: Mapping[str, str] | None = None
) -> StockClientNode:
    """A started stock client using the embedded grid's servers (``grid_dir/servers.yaml``, written
    by ``grid start``) and its encoding (``shares_*`` of ``grid_dir/uploader.toml``)."""
    grid_dir = Path(grid_dir)
    conf = tomllib.loads((grid_dir / "uploader.toml").read_text(encoding="utf-8"))
    node = StockClientNode(
        node_dir,
        tahoe_bin,
        (grid_dir / "servers.yaml").read_text(encoding="utf-8"),
        int(conf.get("shares_needed", 3)),
        int(conf.get("shares_happy", 7)),
        int(conf.get("shares_total", 10)),
        env=env,
    )
    start_all([node])
    return node


@contextlib.contextmanager
def _grid_client(
    tahoe_bin: Path, grid_dir: Path, client: StockClientNode | None
) -> Iterator[StockClientNode]:
    if client is not None:
        yield client
        return
    with tempfile.TemporaryDirectory(prefix="stock-client-") as tmp:
        node = client_for_grid(tahoe_bin, grid_dir, Path(tmp) / "client")
        try:
            yield node
        finally:
            node.stop()


def stock_put_rate(
    tahoe_bin: Path, grid_dir: Path, file: Path, *, client: StockClientNode | None = None
) -> dict[str, Any]:
    """``tahoe put FILE`` once through a stock client of the embedded grid in ``grid_dir`` (a new
    client node unless ``client`` is given); ``seconds`` is the CLI's wall time, start-up included."""
    size = Path(file).stat().st_size
    with _grid_client(tahoe_bin, grid_dir, client) as node:
        start = time.perf_counter()
        cap = node.put(Path(file))
        seconds = time.perf_counter() - start
    return {
        "mb_per_s": round(size / seconds / 1e6, 2),
        "seconds": round(seconds, 3),
        "cap": cap,
        "size": size,
    }


def stock_get_rate(
    tahoe_bin: Path,
    grid_dir: Path,
    cap: str,
    *,
    out: Path | None = None,
    client: StockClientNode | None = None,
) -> dict[str, Any]:
    """``tahoe get CAP OUT`` once, like ``stock_put_rate``; ``out`` is kept only when given."""
    with _grid_client(tahoe_bin, grid_dir, client) as node, tempfile.TemporaryDirectory() as tmp:
        target = Path(out) if out is not None else Path(tmp) / "download"
        start = time.perf_counter()
        node.get(cap, target)
        seconds = time.perf_counter() - start
        size = target.stat().st_size
    return {
        "mb_per_s": round(size / seconds / 1e6, 2),
        "seconds": round(seconds, 3),
        "cap": cap,
        "size": size,
    }


__all__ = [
    "StockClientNode",
    "StockStorageNode",
    "StockTahoeError",
    "StorageAnnouncement",
    "client_for_grid",
    "free_port",
    "servers_yaml_for",
    "start_all",
    "stock_env",
    "stock_get_rate",
    "stock_put_rate",
    "stop_all",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time stock `tahoe put`/`tahoe get` on the embedded grid.")
    parser.add_argument("what", choices=("put-rate", "get-rate"))
    parser.add_argument("target", help="FILE for put-rate, CAP for get-rate")
    parser.add_argument("--grid", type=Path, required=True, help="the directory of `grid start`")
    parser.add_argument("--tahoe", type=Path, default=DEFAULT_TAHOE_BIN, help="the stock `tahoe` executable")
    args = parser.parse_args(argv)
    if args.what == "put-rate":
        result = stock_put_rate(args.tahoe, args.grid, Path(args.target))
    else:
        result = stock_get_rate(args.tahoe, args.grid, args.target)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
