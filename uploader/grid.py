"""The embedded local grid: N storage servers on 127.0.0.1 as background processes.

| path under DIR          | what                                                                 |
|-------------------------|----------------------------------------------------------------------|
| ``server-01`` … ``NN``  | one storage server directory each (``python -m uploader storage``)   |
| ``server-NN/server.log``| that server's log (stderr; its stdout, the NURL, is not kept)        |
| ``grid.json``           | the record: per server its port and, while running, its PID and the  |
|                         | process start time (so ``stop`` never signals a recycled PID)         |
| ``grid.lock``           | flock held by ``start`` and ``stop`` for their whole run, so two of  |
|                         | them at once on one grid wait in turn instead of racing on the record |
| ``uploader.toml``       | a complete client configuration: ``[[servers]] nurl = …`` and more   |
|                         | (mode 0600: NURLs carry swissnums)                                   |
| ``servers.yaml``        | the same servers for a stock Tahoe client (GBS spec appendix A), 0600 |

Ports are chosen once (the first start listens on port 0 and records what it got) and kept, so
NURLs stay valid across ``stop``/``start`` and shares survive. ``start`` returns once every server
answers ``GET /storage/v1/version`` over TLS with its pinned SPKI hash, and records the grid's
``uploader.toml`` as the current grid in the data directory (``$XDG_DATA_HOME/uploader/current-grid``),
where ``uploader.config.find_config_file`` looks for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import ssl
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from uploader.config import default_data_dir
from uploader.storage.identity import NURL_FILE, read_identity
from uploader.wire import protocol as wire
from uploader.wire.nurl import Nurl, NurlError, lease_seed_of_cert, parse_nurl, spki_hash_of_cert
from workers.base32 import b32encode
from workers.errors import UploaderError

GRID_FILE = "grid.json"
CLIENT_CONFIG = "uploader.toml"
SERVERS_YAML = "servers.yaml"
LOG_FILE = "server.log"
LOCK_FILE = "grid.lock"
SERVER_LOCK = "server.lock"  # held by a running storage server (uploader/storage/server.py lock_directory)
LOCK_WAIT_S = 120.0  # how long start/stop wait for another start/stop on the same grid to finish
DEFAULT_SERVERS = 10
HOST = "127.0.0.1"


class GridError(UploaderError):
    """The grid could not be started, stopped or read; says which server and where its log is."""


@dataclass(slots=True)
class ServerRecord:
    name: str  # "server-01"
    port: int | None = None
    pid: int | None = None
    started: int | None = None  # /proc/<pid>/stat start time (clock ticks since boot)


@dataclass(slots=True)
class GridRecord:
    servers: list[ServerRecord] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path) -> GridRecord | None:
        path = directory / GRID_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls([ServerRecord(**entry) for entry in raw["servers"]])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GridError(f"{path} is not a grid record: {exc}") from None

    def save(self, directory: Path) -> None:
        """Replace ``grid.json`` atomically; raises OSError (the commands turn it into GridError)."""
        text = json.dumps({"servers": [asdict(s) for s in self.servers]}, indent=2) + "\n"
        _write_text(directory / GRID_FILE, text)


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    directory: Path
    pid: int | None
    nurl: Nurl | None
    up: bool
    detail: str  # why not up, or the server's available space


# --- processes -------------------------------------------------------------------------------------


def _start_time(pid: int) -> int | None:
    """The process's start time from /proc (None if there is no such live process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (a test that called start_grid)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_running(record: ServerRecord) -> bool:
    """True when the recorded process still runs (the same process: start times agree)."""
    if record.pid is None or record.started is None:
        return False
    _reap(record.pid)
    return _start_time(record.pid) == record.started


def _spawn(python: str, server_dir: Path, port: int) -> int:
    log = os.open(server_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    null_out = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        argv = [python, "-m", "uploader", "storage", "--dir", str(server_dir), "--listen", f"{HOST}:{port}"]
        env = dict(os.environ)
        source_root = str(Path(__file__).resolve().parent.parent)  # works from a checkout, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        return os.posix_spawn(
            python,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, null_out, 1),  # stdout is the NURL (a secret): not for the log
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log)
        os.close(null)
        os.close(null_out)


@contextlib.contextmanager
def _grid_lock(directory: Path, wait_s: float) -> Iterator[None]:
    """Hold ``DIR/grid.lock`` for a whole ``start`` or ``stop``.

    Without it two starts at once both read the record, both start servers, and the loser's
    record (PIDs of copies that exited on the server lock) overwrites the winner's, so ``stop``
    leaves servers running. The second waits up to ``wait_s`` (a start takes as long as its
    servers need), then GridError. The kernel drops the lock if the holder dies.
    """
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise GridError(
                        f"another `grid start` or `grid stop` is running on {directory} and did not "
                        f"finish within {wait_s:g} s; try again when it has"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def running_server_pid(server_dir: Path, wait_s: float = 2.0) -> int | None:
    """The PID of a storage server already running on ``server_dir`` (it holds ``server.lock``),
    or None when none is. GridError when one is but its PID cannot be read.

    ``start`` asks before starting a server the record does not show running: a second server
    on the directory would only exit on the lock, and the first one's NURL must not be deleted.
    """
    try:
        fd = os.open(server_dir / SERVER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # free: no server runs here (closing the fd drops our lock)
        except BlockingIOError:
            pass
        deadline = time.monotonic() + wait_s
        while True:  # the server writes its PID just after taking the lock
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            if text.isdigit() and _start_time(int(text)) is not None:
                return int(text)
            if time.monotonic() >= deadline:
                raise GridError(
                    f"a storage server is running on {server_dir} (its {SERVER_LOCK} is held) but its "
                    "PID cannot be read; stop it, then start the grid again"
                )
            time.sleep(0.05)
    finally:
        os.close(fd)


# --- probing ---------------------------------------------------------------------------------------


def probe_server(nurl: Nurl, timeout_s: float = 5.0) -> wire.VersionInfo:
    """``GET /storage/v1/version`` over TLS, checking the SPKI pin before the swissnum is sent."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # trust comes from the SPKI pin below, as in Tahoe
    conn = http.client.HTTPSConnection(nurl.host, nurl.port, timeout=timeout_s, context=ctx)
    try:
        conn.connect()
        assert isinstance(conn.sock, ssl.SSLSocket)
        der = conn.sock.getpeercert(binary_form=True)
        if der is None or spki_hash_of_cert(der) != nurl.spki_hash:
            raise GridError(f"server at {nurl.address} shows a certificate that does not match its NURL")
        conn.request(
            "GET",
            wire.version_path(),
            headers={"Authorization": wire.build_authorization(nurl.swissnum), "Accept": wire.CBOR_MIME_TYPE},
        )
        response = conn.getresponse()
        body = response.read(64 * 1024)
        if response.status != 200:
            raise GridError(f"server at {nurl.address} answered version with HTTP {response.status}")
        return wire.parse_version(body)
    finally:
        conn.close()


def _read_nurl(server_dir: Path) -> Nurl | None:
    try:
        return parse_nurl((server_dir / NURL_FILE).read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, NurlError):
        return None


# --- configuration files ---------------------------------------------------------------------------


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(text: str) -> str:
    """``text`` as a TOML basic string (TOML 1.0 "String").

    Not ``json.dumps``: its ASCII escapes write a character outside the BMP (an emoji in a path) as
    a surrogate pair ``\\ud83d\\ude00``, which TOML forbids, so every later command would fail on the
    file. Here ``"``, ``\\`` and the control characters (U+0000..U+001F, U+007F) are escaped and
    everything else is written as is (the file is UTF-8). A lone surrogate, which is what Python
    makes of bytes in a file name that are not UTF-8, has no TOML form: GridError.
    """
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise GridError(
                f"{text!a} cannot be written to {CLIENT_CONFIG}: it holds bytes that are not UTF-8 "
                "(use a directory whose path is valid UTF-8)"
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def client_config_text(directory: Path, nurls: Sequence[tuple[str, Nurl]]) -> str:
    """A complete ``uploader.toml`` for this grid (keys of uploader.config)."""
    n = len(nurls)
    happy = min(7, n)
    # The directory is not repeated in this comment: a comment cannot escape a newline in a path.
    lines = ["# The embedded local grid (data_dir is in its directory), written by `grid start`."]
    # k, N and happiness stay at their defaults (flags like `-k 2 -n 4` then work as documented),
    # except what a grid of fewer than 7 servers cannot meet.
    if happy < 7:
        lines.append(f"shares_happy = {happy}")
    if happy < 3:
        lines.append(f"shares_needed = {happy}")
    lines.append(f"data_dir = {_toml_str(str(directory / 'client'))}")
    for name, nurl in nurls:
        lines += ["", "[[servers]]", f"nurl = {_toml_str(str(nurl))}", f"nickname = {_toml_str(name)}"]
    return "\n".join(lines) + "\n"


def servers_yaml_text(entries: Sequence[tuple[str, Nurl, bytes]]) -> str:
    """``private/servers.yaml`` for a stock Tahoe client (GBS spec appendix A).

    Each entry is (nickname, NURL, certificate DER). The fURL's tub id is SHA-1 of the certificate
    (CONVENTIONS.md), so stock clients derive the same lease secrets as ours; the permutation seed
    is the SPKI digest.
    """
    lines = [
        "# Stock Tahoe-LAFS client form (NODEDIR/private/servers.yaml), written by `grid start`.",
        "storage:",
    ]
    for name, nurl, cert_der in entries:
        identity_seed = b32encode(nurl.spki_digest)
        tub_id = b32encode(lease_seed_of_cert(cert_der))
        lines += [
            f"  {_yaml_str('gbs-' + identity_seed)}:",
            "    ann:",
            f"      nickname: {_yaml_str(name)}",
            "      anonymous-storage-NURLs:",
            f"        - {_yaml_str(str(nurl))}",
            f"      anonymous-storage-FURL: {_yaml_str(f'pb://{tub_id}@')}",
            f"      permutation-seed-base32: {_yaml_str(identity_seed)}",
        ]
    return "\n".join(lines) + "\n"


def current_grid_record(env: Mapping[str, str]) -> Path:
    """Where the most recent grid's ``uploader.toml`` path is recorded (config.find_config_file)."""
    return Path(env.get("UPLOADER_DATA_DIR") or default_data_dir(env)) / "current-grid"


def _write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` atomically. On failure (disk full…) the old file stays and the temporary
    file is removed, so a failed write leaves nothing behind; the OSError propagates."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        try:
            os.replace(tmp, path)
        except OSError as exc:  # it names the temporary file; the one that is in the way is path
            exc.filename, exc.filename2 = str(path), None
            raise
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:  # write() and close() name no file
            exc.filename = str(path)
        raise


def _fs_error(exc: OSError, action: str, directory: Path) -> GridError:
    """An ordinary filesystem failure (not a directory, permission denied, disk full) as the
    one-line error the CLI prints, naming the path and the reason instead of a traceback."""
    where = exc.filename if exc.filename is not None else directory
    reason = exc.strerror or str(exc)
    return GridError(f"cannot {action} the grid in {directory}: {where}: {reason}")


# --- commands ----------------------------------------------------------------------------------------


def server_dir(directory: Path, name: str) -> Path:
    return directory / name


def start_grid(
    directory: Path,
    servers: int | None = None,
    *,
    python: str = sys.executable,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
) -> list[ServerStatus]:
    """Start every server of the grid in ``directory`` that is not running; wait until all answer.

    A new grid gets ``servers`` servers (default 10); an existing one keeps its count. A server
    found running on its directory but not in the record (a start that was interrupted) is adopted
    into the record, not started twice. Holds ``DIR/grid.lock`` throughout (another start or stop
    waits up to ``lock_wait_s``). Raises GridError naming the failing server (and stops the servers
    this call started).
    """
    directory = directory.expanduser().resolve()
    try:
        return _start_grid(
            directory, servers, python, timeout_s, env if env is not None else os.environ, lock_wait_s
        )
    except OSError as exc:
        raise _fs_error(exc, "start", directory) from None


def _start_grid(
    directory: Path,
    servers: int | None,
    python: str,
    timeout_s: float,
    env: Mapping[str, str],
    lock_wait_s: float,
) -> list[ServerStatus]:
    if directory.exists() and not directory.is_dir():
        raise GridError(f"--dir {directory} is not a directory")
    _toml_str(str(directory))  # a path uploader.toml cannot hold fails now, before any server starts
    directory.mkdir(parents=True, exist_ok=True)
    with _grid_lock(directory, lock_wait_s):
        return _start_locked(directory, servers, python, timeout_s, env)


def _start_locked(
    directory: Path, servers: int | None, python: str, timeout_s: float, env: Mapping[str, str]
) -> list[ServerStatus]:
    record = GridRecord.load(directory)
    if record is None:
        count = DEFAULT_SERVERS if servers is None else servers
        if not 1 <= count <= 256:
            raise GridError(f"--servers must be 1..256, got {count}")
        record = GridRecord([ServerRecord(f"server-{i:02d}") for i in range(1, count + 1)])
    elif servers is not None and servers != len(record.servers):
        raise GridError(
            f"the grid in {directory} has {len(record.servers)} servers; start it without --servers "
            f"(or use a new directory for {servers})"
        )
    started: list[ServerRecord] = []
    try:
        for server in record.servers:
            if is_running(server):
                continue
            sdir = server_dir(directory, server.name)
            sdir.mkdir(exist_ok=True)
            running = running_server_pid(sdir)
            if running is not None:  # not ours to start, nor to stop on failure: recorded, kept
                server.pid, server.started = running, _start_time(running)
                continue
            (sdir / NURL_FILE).unlink(missing_ok=True)
            pid = _spawn(python, sdir, server.port or 0)
            server.pid, server.started = pid, _start_time(pid)
            started.append(server)
        record.save(directory)
        statuses = _wait_until_up(directory, record, timeout_s)
        _write_configs(directory, statuses, env)
    except (GridError, OSError):
        # Whatever failed (a server, or the disk), no process of this call is left running
        # unrecorded; the record's own save may fail too (disk full): the first error is the one to tell.
        with contextlib.suppress(OSError):
            _stop(directory, record, started)
        raise
    return statuses


def _wait_until_up(directory: Path, record: GridRecord, timeout_s: float) -> list[ServerStatus]:
    deadline = time.monotonic() + timeout_s
    out = []
    for server in record.servers:
        sdir = server_dir(directory, server.name)
        while True:
            status = _status(directory, server)
            if status.up:
                break
            if not is_running(server):
                raise GridError(f"{server.name} exited at start-up: {status.detail}; see {sdir / LOG_FILE}")
            if time.monotonic() > deadline:
                raise GridError(
                    f"{server.name} did not answer within {timeout_s:g} s: {status.detail}; see {sdir / LOG_FILE}"
                )
            time.sleep(0.05)
        if status.nurl is not None and server.port != status.nurl.port:
            server.port = status.nurl.port
            record.save(directory)
        out.append(status)
    return out


def _status(directory: Path, server: ServerRecord) -> ServerStatus:
    sdir = server_dir(directory, server.name)
    nurl = _read_nurl(sdir)
    running = is_running(server)
    if nurl is None:
        return ServerStatus(server.name, sdir, server.pid if running else None, None, False, "no NURL yet")
    try:
        info = probe_server(nurl, timeout_s=2.0)
    except (OSError, ssl.SSLError, http.client.HTTPException, UploaderError) as exc:
        return ServerStatus(
            server.name, sdir, server.pid if running else None, nurl, False, f"not answering ({exc})"
        )
    return ServerStatus(
        server.name, sdir, server.pid if running else None, nurl, True, f"{info.available_space} bytes free"
    )


def _write_configs(directory: Path, statuses: Sequence[ServerStatus], env: Mapping[str, str]) -> None:
    nurls = [(s.name, s.nurl) for s in statuses if s.nurl is not None]
    entries = [(s.name, s.nurl, read_identity(s.directory).cert_der) for s in statuses if s.nurl is not None]
    (directory / "client").mkdir(exist_ok=True, mode=0o700)
    config_path = directory / CLIENT_CONFIG
    # Both hold NURLs, whose swissnums are credentials: owner-only, like Tahoe's private/ files.
    _write_text(config_path, client_config_text(directory, nurls), 0o600)
    _write_text(directory / SERVERS_YAML, servers_yaml_text(entries), 0o600)
    _record_current_grid(config_path, env)


def _record_current_grid(config_path: Path, env: Mapping[str, str]) -> None:
    """Record ``config_path`` as the most recent grid's configuration (config.find_config_file
    reads it). Only a convenience: when the data directory cannot take it, the grid is still up
    and its configuration written, so this warns on stderr, naming the setting, and goes on."""
    current = current_grid_record(env)
    try:
        current.parent.mkdir(parents=True, exist_ok=True)
        _write_text(current, f"{config_path}\n")
    except OSError as exc:
        setting = (
            "UPLOADER_DATA_DIR"
            if env.get("UPLOADER_DATA_DIR")
            else "the default data directory ($XDG_DATA_HOME/uploader; UPLOADER_DATA_DIR sets another)"
        )
        print(
            f"uploader: warning: cannot record this grid as the current one in {current} "
            f"(from {setting}): {exc.filename or current}: {exc.strerror or exc}; "
            f"commands find its configuration only with --config {config_path}",
            file=sys.stderr,
        )


def grid_status(directory: Path) -> list[ServerStatus]:
    directory = directory.expanduser().resolve()
    record = GridRecord.load(directory)
    if record is None:
        raise GridError(f"there is no grid in {directory} (run `grid start --dir {directory}`)")
    return [_status(directory, s) for s in record.servers]


def stop_grid(directory: Path, timeout_s: float = 15.0, lock_wait_s: float = LOCK_WAIT_S) -> list[str]:
    """SIGTERM exactly the recorded processes (SIGKILL after ``timeout_s``); returns the names stopped.

    Holds ``DIR/grid.lock`` like ``start``, so a stop during a start ends the servers that start
    records instead of reading a record about to be overwritten.
    """
    directory = directory.expanduser().resolve()
    # A first start holds the lock before it has a record: wait for it too (no lock file is made
    # in a directory that holds no grid).
    if GridRecord.load(directory) is None and not (directory / LOCK_FILE).exists():
        raise GridError(f"there is no grid in {directory}")
    try:
        with _grid_lock(directory, lock_wait_s):
            record = GridRecord.load(directory)
            if record is None:
                raise GridError(f"there is no grid in {directory}")
            try:
                return _stop(directory, record, record.servers, timeout_s)
            except OSError as exc:  # the servers are stopped; only saving the record failed (disk full…)
                where = exc.filename if exc.filename is not None else directory / GRID_FILE
                raise GridError(
                    f"stopped the grid's servers in {directory}, but cannot save its record: {where}: "
                    f"{exc.strerror or exc}"
                ) from None
    except OSError as exc:  # DIR/grid.lock cannot be made (a read-only directory…): nothing stopped
        raise _fs_error(exc, "stop", directory) from None


def _stop(
    directory: Path, record: GridRecord, which: Sequence[ServerRecord], timeout_s: float = 15.0
) -> list[str]:
    live = [s for s in which if is_running(s)]
    for server in live:
        assert server.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(is_running(s) for s in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    for server in live:
        if is_running(server):
            assert server.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGKILL)
    while any(is_running(s) for s in live):
        time.sleep(0.01)
    for server in which:
        server.pid = server.started = None
    record.save(directory)
    return [s.name for s in live]


__all__ = [
    "GridError",
    "GridRecord",
    "ServerRecord",
    "ServerStatus",
    "client_config_text",
    "current_grid_record",
    "grid_status",
    "is_running",
    "probe_server",
    "servers_yaml_text",
    "start_grid",
    "stop_grid",
]
