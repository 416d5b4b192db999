"""The upload journal: what an interrupted upload needs to resume, kept durably on disk.

One file per running upload, ``DATA_DIR/journal/<id>.journal`` (mode 0600: it holds the file's key
and the per-server upload secrets), written at placement and then every few seconds, removed once
the cap is returned or the upload is aborted cleanly. A SIGKILL or a reboot leaves it behind, and
``put --resume`` (or the daemon at start) picks the upload up from there.

| part | what it is for |
|---|---|
| ``source`` (path, size, mtime_ns, ctime_ns, inode, device) | a source that changed since is never resumed with mixed data |
| ``k``, ``n``, ``segment_size``, ``key``, ``storage_index`` | the same shares again, without a key pass |
| ``servers``: server id (SPKI hash) → upload secret, share numbers | re-allocate with the same secret: the server's in-progress share is ours to finish |
| ``placed``, ``segments_done`` | how far it got (reported; the servers say what they still need) |

Two layers: ``encode``/``decode`` are pure (bytes ↔ ``JournalRecord``; anything malformed is a
``JournalError``, never another exception), and ``JournalDir``/``JournalHandle`` are a thin shell
that writes atomically (temporary file, fsync, rename, fsync of the directory) and holds an
advisory lock (``<id>.lock``, flock) while an upload owns a journal, so two processes never resume
the same upload; a killed process's lock goes with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.errors import LocalIOError

MAGIC = b"uploader-journal 1\n"
SUFFIX = ".journal"
OWNERS = ("put", "daemon")  # which front end resumes it: `put --resume`, or the daemon at start
MAX_JOURNAL_BYTES = 1 << 20  # a journal is a few KiB; anything bigger is not one of ours


class JournalError(LocalIOError):
    """A journal file that is truncated, corrupt, or not a journal; or one that cannot be written."""


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """What identifies the source's contents without reading them (taken before the key pass)."""

    path: str  # absolute
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: Path) -> SourceIdentity:
        st = os.stat(path)
        return cls(str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def changes(self, now: SourceIdentity) -> list[str]:
        """The fields that differ, as ``name was → is`` phrases (empty: unchanged).

        The device number is recorded but not compared: it can be renumbered at boot, and size,
        inode and both timestamps (ctime cannot be set back by a user) already pin the contents.
        """
        out = []
        for name in ("size", "mtime_ns", "ctime_ns", "inode"):
            was, now_value = getattr(self, name), getattr(now, name)
            if was != now_value:
                out.append(f"{name} was {was}, is {now_value}")
        return out


@dataclass(frozen=True, slots=True)
class ServerState:
    """One server of the upload: its secret for our buckets there, and the shares allocated to us."""

    server_id: str  # the NURL's SPKI hash (Upload._id)
    upload_secret: bytes
    shares: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class JournalRecord:
    owner: str
    source: SourceIdentity
    k: int
    n: int
    segment_size: int
    key: bytes  # 16 bytes: the AES key — a secret (it is the read cap's half)
    storage_index: bytes  # 16 bytes
    share_size: int
    servers: tuple[ServerState, ...] = ()
    placed: bool = False  # allocation finished: ``servers[].shares`` is the placement
    segments_done: int = 0  # segments [0, segments_done) acknowledged by every server writing them
    created: float = 0.0  # wall-clock seconds
    updated: float = 0.0
    # Forward compatibility: unknown keys are kept. Known: "happy", the servers-of-happiness the
    # upload was placed with (a resume keeps it, as it keeps k, N and the segment size).
    extra: dict[str, Any] = field(default_factory=dict)

    def secrets_by_server(self) -> dict[str, bytes]:
        return {s.server_id: s.upload_secret for s in self.servers}

    def placement(self) -> dict[str, tuple[int, ...]]:
        return {s.server_id: s.shares for s in self.servers if s.shares}


# ---- the pure codec -------------------------------------------------------------------------------


def encode(record: JournalRecord) -> bytes:
    """The journal file's bytes: a magic line, canonical JSON, and a SHA-256 line over the JSON."""
    obj = {
        "owner": record.owner,
        "source": {
            "path": record.source.path,
            "size": record.source.size,
            "mtime_ns": record.source.mtime_ns,
            "ctime_ns": record.source.ctime_ns,
            "inode": record.source.inode,
            "device": record.source.device,
        },
        "k": record.k,
        "n": record.n,
        "segment_size": record.segment_size,
        "key": record.key.hex(),
        "storage_index": record.storage_index.hex(),
        "share_size": record.share_size,
        "servers": [
            {"id": s.server_id, "upload_secret": s.upload_secret.hex(), "shares": list(s.shares)}
            for s in record.servers
        ],
        "placed": record.placed,
        "segments_done": record.segments_done,
        "created": record.created,
        "updated": record.updated,
        "extra": record.extra,
    }
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + body + b"\nsha256:" + hashlib.sha256(body).hexdigest().encode() + b"\n"


def decode(data: bytes) -> JournalRecord:
    """Parse a journal file's bytes; JournalError naming what is wrong for anything malformed."""
    if len(data) > MAX_JOURNAL_BYTES:
        raise JournalError(f"journal is {len(data)} bytes; a journal is at most {MAX_JOURNAL_BYTES}")
    if not data.startswith(MAGIC):
        raise JournalError("not an upload journal: expected it to start with 'uploader-journal 1'")
    rest = data[len(MAGIC) :]
    body, sep, tail = rest.rpartition(b"\nsha256:")
    if not sep or not tail.endswith(b"\n"):
        raise JournalError("journal is truncated: its closing checksum line is missing")
    if tail[:-1] != hashlib.sha256(body).hexdigest().encode():
        raise JournalError("journal is corrupt: its SHA-256 does not match its contents")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JournalError(f"journal is corrupt: its body is not JSON ({exc})") from None
    return _record(obj)


def _record(obj: Any) -> JournalRecord:
    top = _dict(obj, "journal")
    src = _dict(top.get("source"), "source")
    servers = top.get("servers")
    if not isinstance(servers, list):
        raise JournalError("journal field 'servers' must be a list")
    owner = _str(top, "owner")
    if owner not in OWNERS:
        raise JournalError(f"journal field 'owner' must be one of {', '.join(OWNERS)}, got {owner!r}")
    k, n = _int(top, "k", 1), _int(top, "n", 1)
    if not k <= n <= 256:
        raise JournalError(f"journal has k={k}, n={n}; expected 1 <= k <= n <= 256")
    entries = []
    for i, raw in enumerate(servers):
        entry = _dict(raw, f"servers[{i}]")
        shares = entry.get("shares")
        if not isinstance(shares, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < n for s in shares
        ):
            raise JournalError(f"journal field servers[{i}].shares must list share numbers below n={n}")
        entries.append(
            ServerState(_str(entry, "id"), _hex(entry, "upload_secret", None), tuple(sorted(set(shares))))
        )
    extra = top.get("extra", {})
    if not isinstance(extra, dict):
        raise JournalError("journal field 'extra' must be an object")
    return JournalRecord(
        owner=owner,
        source=SourceIdentity(
            _str(src, "path"),
            _int(src, "size", 0),
            _int(src, "mtime_ns", None),
            _int(src, "ctime_ns", None),
            _int(src, "inode", 0),
            _int(src, "device", 0),
        ),
        k=k,
        n=n,
        segment_size=_int(top, "segment_size", 1),
        key=_hex(top, "key", 16),
        storage_index=_hex(top, "storage_index", 16),
        share_size=_int(top, "share_size", 1),
        servers=tuple(entries),
        placed=_bool(top, "placed"),
        segments_done=_int(top, "segments_done", 0),
        created=_float(top, "created"),
        updated=_float(top, "updated"),
        extra=extra,
    )


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JournalError(f"journal field '{what}' must be an object")
    return value


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise JournalError(f"journal field '{name}' must be a non-empty string")
    return value


def _int(obj: dict[str, Any], name: str, minimum: int | None) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise JournalError(f"journal field '{name}' must be an integer{bound}, got {value!r}")
    return value


def _float(obj: dict[str, Any], name: str) -> float:
    value = obj.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise JournalError(f"journal field '{name}' must be a number, got {value!r}")
    return float(value)


def _bool(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name)
    if not isinstance(value, bool):
        raise JournalError(f"journal field '{name}' must be true or false")
    return value


def _hex(obj: dict[str, Any], name: str, length: int | None) -> bytes:
    value = obj.get(name)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or not raw or (length is not None and len(raw) != length):
        expected = f"{length} bytes" if length is not None else "bytes"
        raise JournalError(f"journal field '{name}' must be hex of {expected}")  # never the value: a secret
    return raw


# ---- the file shell -------------------------------------------------------------------------------


class JournalHandle:
    """One journal file, locked by this process until ``release`` (or ``remove``)."""

    def __init__(self, directory: Path, name: str, lock_fd: int) -> None:
        self.directory = directory
        self.name = name
        self._lock_fd = lock_fd

    @property
    def path(self) -> Path:
        return self.directory / (self.name + SUFFIX)

    @property
    def lock_path(self) -> Path:
        return self.directory / (self.name + ".lock")

    def save(self, record: JournalRecord) -> None:
        """Replace the journal atomically: write a temporary file, fsync, rename, fsync the directory."""
        data = encode(record)
        tmp = self.directory / (self.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
            _fsync_dir(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise JournalError(f"cannot write the upload journal {self.path}: {exc.strerror}") from None

    def load(self) -> JournalRecord:
        return read(self.path)

    def remove(self) -> None:
        """Delete the journal (the upload finished or was aborted), then let go of the lock."""
        try:
            for path in (self.path, self.directory / (self.name + ".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            _fsync_dir(self.directory)
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
        except OSError as exc:
            raise JournalError(f"cannot remove the upload journal {self.path}: {exc.strerror}") from None
        finally:
            self.release()

    def release(self) -> None:
        """Let go of the lock and keep the journal (the upload can be resumed later)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class JournalDir:
    """``DATA_DIR/journal``: created (0700) on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _ensure(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal directory {self.directory}: {exc.strerror}"
            ) from None

    def create(self) -> JournalHandle:
        """A new, locked, still empty journal (``save`` writes it)."""
        self._ensure()
        while True:
            name = secrets.token_hex(8)
            handle = self.claim(name)
            if handle is not None and not handle.path.exists():
                return handle
            if handle is not None:
                handle.release()

    def claim(self, name: str) -> JournalHandle | None:
        """Lock journal ``name`` for this process; None when another live process holds it."""
        lock_path = self.directory / (name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open the journal lock {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return JournalHandle(self.directory, name, fd)

    def names(self) -> list[str]:
        try:
            return sorted(p.name[: -len(SUFFIX)] for p in self.directory.glob("*" + SUFFIX))
        except OSError:
            return []

    def _drop_orphan_locks(self) -> None:
        """Remove lock files whose journal is gone and that no process holds: ``remove`` deletes the
        journal first, so a process killed between the two unlinks left its lock for good."""
        try:
            locks = sorted(self.directory.glob("*.lock"))
        except OSError:
            return
        for lock in locks:
            name = lock.name[: -len(".lock")]
            if (self.directory / (name + SUFFIX)).exists():
                continue
            try:
                handle = self.claim(name)
            except JournalError:
                continue
            if handle is None:  # held: an upload that has not written its journal yet
                continue
            if not handle.path.exists():
                with contextlib.suppress(OSError):
                    lock.unlink()
            handle.release()

    def unfinished(self, owner: str) -> Iterator[tuple[JournalHandle, JournalRecord | JournalError]]:
        """Each journal of ``owner`` that no live process holds, claimed, with its record (or why it
        cannot be read: the caller removes or releases it). Journals of other owners are left alone."""
        self._drop_orphan_locks()
        for name in self.names():
            handle = self.claim(name)
            if handle is None:
                continue
            try:
                record: JournalRecord | JournalError = handle.load()
            except JournalError as exc:
                record = exc
            except FileNotFoundError:  # finished meanwhile: drop the lock file claim() made
                with contextlib.suppress(OSError):
                    handle.lock_path.unlink()
                handle.release()
                continue
            if isinstance(record, JournalRecord) and record.owner != owner:
                handle.release()
                continue
            yield handle, record


def read(path: Path) -> JournalRecord:
    """Read and decode one journal file (FileNotFoundError passes through)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise JournalError(f"cannot read the upload journal {path}: {exc.strerror}") from None
    try:
        return decode(data)
    except JournalError as exc:
        raise JournalError(f"{path}: {exc}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "JournalDir",
    "JournalError",
    "JournalHandle",
    "JournalRecord",
    "ServerState",
    "SourceIdentity",
    "decode",
    "encode",
    "read",
]
