"""One Config, loaded once and passed explicitly (CONVENTIONS.md, "Configuration").

Precedence: defaults < TOML file < ``UPLOADER_<NAME>`` environment < command line. The file is
``--config PATH``, else ``$UPLOADER_CONFIG``, else ``$XDG_CONFIG_HOME/uploader/uploader.toml``, else
the configuration of the grid that ``grid start`` made most recently (recorded in the data dir).
A bad value raises ConfigError naming the setting, its source and what is expected (exit 3).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.errors import ConfigError
from uploader.wire.nurl import NurlError, parse_nurl

DEFAULT_API_LISTEN = "127.0.0.1:3456"
LOG_LEVELS = ("debug", "info", "warning", "error")
ERASURE_BACKENDS = ("auto", "isal", "zfec")


def xdg_config_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")).expanduser() / ".config")


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "uploader"


@dataclass(frozen=True, slots=True)
class ServerEntry:
    nurl: str
    nickname: str | None = None


@dataclass(frozen=True)
class Config:
    workers: int = field(default_factory=lambda: min(os.cpu_count() or 1, MAX_WORKERS))
    shares_needed: int = 3
    shares_total: int = 10
    shares_happy: int = 7  # when unset: min(7, shares_total)
    max_segment_size: int = 1024 * 1024
    # Chosen by measurement (tools/bench_upload, 256 MiB, k=3, N=10, 10 local servers, 2 cores):
    # window/depth 8/4 MiB: 126 MB/s, network process 3.11 CPU-s/GB; 8/16 MiB: 123, 3.21;
    # 16/4 MiB: 129, 3.09; 16/16 MiB: 133, 2.96. Deeper windows let writes coalesce more, which
    # saves per-request CPU on both ends. Memory: window x (N/k x segment size) of shared slots.
    # Bytes in flight per server: "auto" (uploader/depth.py: from the RTT measured at connect and
    # link_mbit_per_s, per the model in docs/performance.md) or a whole number of bytes.
    pipeline_depth: int | str = "auto"
    link_mbit_per_s: float | None = None  # the upstream link's rate, for pipeline_depth = "auto"
    window: int = 16  # segments in flight per upload
    # Behave like stock Tahoe-LAFS's uploader (one segment at a time, stop-and-wait, 1 MB write
    # batches) for side-by-side benchmarks; the shares and the cap are the same either way.
    stock_mode: bool = False
    erasure_backend: str = "auto"
    convergence_secret_file: Path | None = None  # None: <config dir>/uploader/convergence
    api_listen: str = DEFAULT_API_LISTEN
    daemon: str | None = None
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 60.0
    shutdown_timeout_s: float = 30.0
    max_uploads: int = 8  # the daemon: uploads encoding at once (each leases `window` slots); more queue
    log_level: str = "info"
    servers: tuple[ServerEntry, ...] = ()
    source: Path | None = None  # the file this came from, if any (not a setting)
    # Where each setting not left at its default came from (the file, UPLOADER_X, --x): for the
    # messages of errors found after loading, such as a data_dir that cannot be created.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, key: str) -> str:
        return self.origins.get(key, "the default")


# Text numbers (the environment; quoted TOML values) are plain ASCII decimals: Python's int() and
# float() also take other scripts' digits ("١٠"), underscores ("1_0"), surrounding spaces, "nan"
# and "inf", each of which would quietly give a value the user did not write.
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_MAX_DIGITS = 40  # past any bound below; int() refuses text past 4300 digits with its own message


def _whole_number(value: Any) -> int:
    """An int, or text of ASCII decimal digits (an optional sign); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a whole number")
    if isinstance(value, str) and not _INT_TEXT.fullmatch(value):
        raise ValueError("expected a whole number written in the digits 0-9")
    if isinstance(value, str) and len(value) > _MAX_DIGITS:
        raise ValueError(f"expected a whole number, got one of {len(value)} digits")
    return int(value)


def _decimal(value: Any, expected: str) -> float:
    """An int or float, or text such as ``10``, ``2.5`` or ``.5`` (ASCII digits, no exponent)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {expected}")
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise ValueError(f"expected {expected}, written as a decimal number such as 10 or 2.5")
    try:
        return float(value)
    except OverflowError:  # an int past the float range
        return float("inf")


# Settings a user may set, with their parser; `servers` and `source` are handled apart.
def _positive_int(name: str, value: Any) -> int:
    number = _whole_number(value)
    if number < 1:
        raise ValueError("expected a whole number >= 1")
    return number


# Each worker is a whole interpreter (~40 MB resident) and takes two shared-memory slots; more
# workers than cores only queue for the CPU. 256 is above any core count this runs on, and a fixed
# bound keeps one configuration file valid on every machine (4 x cpu_count would not), while a typo
# such as 100000 fails at once instead of spawning for minutes (under the reload lock, on SIGHUP).
MAX_WORKERS = 256


def _workers(name: str, value: Any) -> int:
    number = _positive_int(name, value)
    if number > MAX_WORKERS:
        raise ValueError(f"expected a whole number from 1 to {MAX_WORKERS}")
    return number


MAX_SEGMENT_SIZE_LIMIT = 1 << 30  # bytes; each slot holds N/k of a segment, window slots per upload


def _segment_size(name: str, value: Any) -> int:
    number = _positive_int(name, value)
    if number > MAX_SEGMENT_SIZE_LIMIT:
        raise ValueError(f"expected a whole number of bytes from 1 to {MAX_SEGMENT_SIZE_LIMIT}")
    return number


# Each segment in flight holds a shared-memory slot of N/k x max_segment_size (3.4 MiB at the
# defaults) until its blocks are written, and the pool maps window x max_uploads of them (plus two
# per worker) at start: 1024 is 3.4 GiB per upload at the defaults, 64 times the measured best (16,
# see Config). A typo such as 100000000 failed only later, when the pool tried to map its slots.
MAX_WINDOW = 1024
# Uploads encoding at once in the daemon, each leasing `window` slots; more than there can be
# workers (MAX_WORKERS) only share the same CPUs, and the rest wait queued at no cost.
MAX_UPLOADS = MAX_WORKERS
# Bytes in flight per server. No more than the window's share of a server can be in flight, which
# at MAX_WINDOW segments of MAX_SEGMENT_SIZE_LIMIT is far past any link's bandwidth-delay product
# (10 Gbit/s x 800 ms is 1 GB for all servers together); "auto" stops at depth.MAX_AUTO_DEPTH.
MAX_PIPELINE_DEPTH = 1 << 30


def _window(name: str, value: Any) -> int:
    number = _positive_int(name, value)
    if number > MAX_WINDOW:
        raise ValueError(f"expected a whole number of segments from 1 to {MAX_WINDOW}")
    return number


def _max_uploads(name: str, value: Any) -> int:
    number = _positive_int(name, value)
    if number > MAX_UPLOADS:
        raise ValueError(f"expected a whole number from 1 to {MAX_UPLOADS}")
    return number


def _positive_float(name: str, value: Any) -> float:
    number = _decimal(value, "a number of seconds")
    if not 0 < number < float("inf"):
        raise ValueError("expected a number of seconds > 0 (and finite)")
    return number


def _depth(name: str, value: Any) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        number = _positive_int(name, value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PIPELINE_DEPTH:
        raise ValueError(f'expected "auto" or a whole number of bytes from 1 to {MAX_PIPELINE_DEPTH}')
    return number


def _mbit(name: str, value: Any) -> float:
    number = _decimal(value, "a link rate in Mbit/s")
    if not 0 < number < float("inf"):
        raise ValueError("expected a link rate in Mbit/s > 0")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _choice(options: tuple[str, ...]) -> Any:
    def parse(name: str, value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value.lower()

    return parse


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError("expected a file path")
    return Path(value).expanduser()


def _host_port(name: str, value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("expected HOST:PORT")
    host, _, port = value.rpartition(":")
    # not str.isdigit(): it is true of "²" (which int() rejects) and of other scripts' digits
    if not host or not re.fullmatch("[0-9]{1,5}", port) or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT with a port from 0 to 65535")
    return value


def _url(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// URL")
    return value


_PARSERS: dict[str, Any] = {
    "workers": _workers,
    "shares_needed": _positive_int,
    "shares_total": _positive_int,
    "shares_happy": _positive_int,
    "max_segment_size": _segment_size,
    "pipeline_depth": _depth,
    "link_mbit_per_s": _mbit,
    "window": _window,
    "stock_mode": _bool,
    "erasure_backend": _choice(ERASURE_BACKENDS),
    "convergence_secret_file": _path,
    "api_listen": _host_port,
    "daemon": _url,
    "data_dir": _path,
    "connect_timeout_s": _positive_float,
    "request_timeout_s": _positive_float,
    "shutdown_timeout_s": _positive_float,
    "max_uploads": _max_uploads,
    "log_level": _choice(LOG_LEVELS),
}
SETTINGS = tuple(_PARSERS)
# The command-line flag of each setting that has one, where it is not --name-with-dashes.
FLAG_NAMES = {"shares_happy": "--happy"}


def flag_name(key: str) -> str:
    """The flag that sets ``key`` on a command line."""
    return FLAG_NAMES.get(key, "--" + key.replace("_", "-"))


def find_config_file(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """The file to read, by CONVENTIONS.md's order; None when there is none."""
    if explicit is not None:
        return explicit
    if env.get("UPLOADER_CONFIG"):
        return Path(env["UPLOADER_CONFIG"])
    user = xdg_config_home(env) / "uploader" / "uploader.toml"
    if user.exists():
        return user
    record = Path(env.get("UPLOADER_DATA_DIR") or default_data_dir(env)) / "current-grid"
    recorded = _read_grid_record(record)
    if recorded is not None and recorded.exists():
        return recorded
    return None  # no record, or one naming a grid that has since been removed: no configuration


def _read_grid_record(record: Path) -> Path | None:
    """The path ``grid start`` recorded in ``record``; None when there is no record.

    A record that exists but cannot be used (not a file, unreadable, not UTF-8, empty, not one
    absolute path) is a ConfigError: treated as absent, every command would go on with no servers
    and a misleading error of its own, far from the file that is at fault."""
    try:
        raw = record.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # no record (a data dir that is a file: its own error)
        return None
    except OSError as exc:  # a directory, no permission
        why = f"cannot be read ({exc.strerror or exc})"
    else:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = None
        if text is None:
            why = "is not UTF-8 text"
        elif not text:
            why = "is empty"
        elif "\n" in text or "\0" in text or not Path(text).is_absolute():
            why = "does not hold one absolute path"
        else:
            return Path(text)
    raise ConfigError(
        f"the current-grid record {record} {why}: expected one line, the absolute path of the "
        "uploader.toml that `grid start` wrote. Run `grid start` again, remove the record, or name "
        "a configuration with --config or UPLOADER_CONFIG"
    )


def load_config(path: Path | None, env: Mapping[str, str], cli: Mapping[str, Any]) -> Config:
    """Defaults < config file < UPLOADER_* environment < command line (``None`` CLI values are unset)."""
    values: dict[str, Any] = {"data_dir": default_data_dir(env)}
    origin: dict[str, str] = {}  # where each value set came from, for messages
    servers: tuple[ServerEntry, ...] = ()
    source = find_config_file(path, env)
    if source is not None:
        where = str(source)
        table = _read_toml(source)
        for key, raw in table.items():
            if key == "servers":
                servers = _parse_servers(raw, where)
            elif key in _PARSERS:
                values[key] = _parse(key, raw, f"{where}")
                origin[key] = where
            else:
                raise ConfigError(
                    f"unknown setting {key!r} in {where}; known settings: {', '.join(SETTINGS)}, servers"
                )
        if "data_dir" in table or "convergence_secret_file" in table:
            base = source.parent
            for key in ("data_dir", "convergence_secret_file"):
                if key in table and not values[key].is_absolute():
                    values[key] = base / values[key]
    for key in SETTINGS:
        var = "UPLOADER_" + key.upper()
        if var in env:
            values[key] = _parse(key, env[var], var)
            origin[key] = var
    for key, raw in cli.items():
        if raw is not None:
            if key not in _PARSERS:
                raise KeyError(f"not a setting: {key}")
            flag = flag_name(key)
            values[key] = _parse(key, raw, flag)
            origin[key] = flag
    if "shares_happy" not in values:
        values["shares_happy"] = min(Config.shares_happy, values.get("shares_total", Config.shares_total))
        origin["shares_happy"] = "the default, min(7, shares_total)"
    config = Config(**values, servers=servers, source=source, origins=dict(origin))
    _check_relations(config, origin)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"configuration file {path} is not UTF-8 text (byte {exc.start}): expected TOML"
        ) from None


def _parse(key: str, raw: Any, where: str) -> Any:
    try:
        return _PARSERS[key](key, raw)
    except ValueError as exc:
        raise ConfigError(f"{key} is {raw!r} (from {where}): {exc}") from None


def _parse_servers(raw: Any, where: str) -> tuple[ServerEntry, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f'servers (from {where}) must be an array of tables: [[servers]] nurl = "pb://…"')
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("nurl"), str):
            raise ConfigError(f'servers[{i}] (from {where}) needs a nurl = "pb://…#v=1" string')
        extra = set(entry) - {"nurl", "nickname"}
        if extra:
            raise ConfigError(
                f"servers[{i}] (from {where}) has unknown keys {sorted(extra)}; expected nurl, nickname"
            )
        if not entry["nurl"].startswith("pb://"):
            raise ConfigError(
                f"servers[{i}].nurl (from {where}) must start with pb://, got {entry['nurl'][:16]!r}…"
            )
        try:
            parse_nurl(entry["nurl"])
        except NurlError as exc:  # its text shows no more of the NURL than its first characters
            raise ConfigError(f"servers[{i}].nurl (from {where}) is not a NURL: {exc}") from None
        nickname = entry.get("nickname")
        if nickname is not None and not isinstance(nickname, str):
            raise ConfigError(f"servers[{i}].nickname (from {where}) must be a string")
        out.append(ServerEntry(entry["nurl"], nickname))
    return tuple(out)


def _check_relations(config: Config, origin: Mapping[str, str]) -> None:
    def named(key: str) -> str:
        return f"{key} = {getattr(config, key)} (from {origin.get(key, 'the default')})"

    k, n, h = config.shares_needed, config.shares_total, config.shares_happy
    if not k <= n <= 256:
        raise ConfigError(
            f"{named('shares_needed')} and {named('shares_total')} must satisfy 1 <= needed <= total <= 256"
        )
    if not 1 <= h <= n:
        raise ConfigError(f"{named('shares_happy')} must be between 1 and {named('shares_total')}")
