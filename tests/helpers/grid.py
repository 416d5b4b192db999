"""Reading shares straight off the embedded grid's disks (Tahoe's container format), for checks."""

from __future__ import annotations

from pathlib import Path

from uploader.storage.container import share_length, unpack_header
from workers.base32 import b32encode


def share_files(grid_dir: Path, storage_index: bytes) -> dict[Path, int]:
    """Every complete share file of ``storage_index`` in the grid: {path: shnum}."""
    si = b32encode(storage_index)
    out = {}
    for path in sorted(grid_dir.glob(f"server-*/storage/shares/{si[:2]}/{si}/*")):
        out[path] = int(path.name)
    return out


def read_share(path: Path) -> bytes:
    """The share bytes inside one container file (without container header and leases)."""
    raw = path.read_bytes()
    header = unpack_header(raw[:12])
    return raw[12 : 12 + share_length(len(raw), header)]


def shares_on_disk(grid_dir: Path, storage_index: bytes) -> dict[int, bytes]:
    """{shnum: share bytes}; when several servers hold one share number, the first found wins."""
    out: dict[int, bytes] = {}
    for path, shnum in share_files(grid_dir, storage_index).items():
        out.setdefault(shnum, read_share(path))
    return out


def servers_holding(grid_dir: Path, storage_index: bytes) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for path, shnum in share_files(grid_dir, storage_index).items():
        out.setdefault(path.parts[len(grid_dir.parts)], set()).add(shnum)
    return out
