"""Tahoe's on-disk immutable share container (chk-format §10.4, leases §12). Pure: bytes in, bytes out.

| offset           | size            | field                                                          |
|------------------|-----------------|----------------------------------------------------------------|
| 0x00             | 4               | container version, u32be: 2 (1 = old, cleartext lease secrets)|
| 0x04             | 4               | ``min(allocated_size, 2**32 - 1)`` (unused legacy field)       |
| 0x08             | 4               | number of lease records, u32be                                 |
| 0x0c             | allocated_size  | the share bytes (chk-format §10.1)                             |
| 0x0c + size      | 72 per lease    | u32be owner number, 32-byte renew secret, 32-byte cancel       |
|                  |                 | secret, u32be expiry (Unix seconds)                            |

In version 2 the two secrets are stored as BLAKE2b-256 digests (no key, no personalisation) of the
real secrets, so the server keeps no usable copy. The share length is implied by the file size:
``file_size - 0x0c - 72 * num_leases``. A lease lasts 31 days from when it is added or renewed; a
matching renew secret renews, an unknown one adds a lease. Mutable containers (which start with a
magic string, not a small version number) are not immutable shares and are refused here.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from uploader.storage.errors import ContainerError

HEADER = struct.Struct(">LLL")
HEADER_SIZE = HEADER.size  # 0x0c
LEASE = struct.Struct(">L32s32sL")
LEASE_SIZE = LEASE.size  # 72
CONTAINER_VERSION = 2
LEASE_DURATION_S = 31 * 24 * 60 * 60  # 2,678,400
MAX_EXPIRY = 2**32 - 1
OWNER_NUM = 0  # Tahoe's owner number for leases that arrive over HTTP


def hash_lease_secret(secret: bytes) -> bytes:
    """How a version-2 container stores a lease secret: BLAKE2b with a 32-byte digest."""
    return hashlib.blake2b(secret, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class ContainerHeader:
    version: int
    legacy_size: int  # min(allocated_size, 2**32 - 1); informative only
    num_leases: int


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    owner_num: int
    renew: bytes  # as stored: a BLAKE2b-256 digest (v2) or the secret itself (v1)
    cancel: bytes
    expiry: int  # Unix seconds

    def pack(self) -> bytes:
        return LEASE.pack(self.owner_num, self.renew, self.cancel, min(self.expiry, MAX_EXPIRY))


def pack_header(allocated_size: int, num_leases: int, version: int = CONTAINER_VERSION) -> bytes:
    return HEADER.pack(version, min(allocated_size, MAX_EXPIRY), num_leases)


def unpack_header(data: bytes) -> ContainerHeader:
    """Parse the 12-byte header; ContainerError for short data or a non-immutable container."""
    if len(data) < HEADER_SIZE:
        raise ContainerError(f"share container header needs {HEADER_SIZE} bytes, got {len(data)}")
    version, legacy, leases = HEADER.unpack_from(data)
    if version not in (1, 2):
        raise ContainerError(f"not an immutable share container (version word {version:#x}, expected 1 or 2)")
    return ContainerHeader(version, legacy, leases)


def share_length(file_size: int, header: ContainerHeader) -> int:
    """Bytes of share data in a container file of ``file_size`` bytes."""
    length = file_size - HEADER_SIZE - LEASE_SIZE * header.num_leases
    if length < 0:
        raise ContainerError(
            f"share container of {file_size} bytes cannot hold {header.num_leases} leases after its header"
        )
    return length


def unpack_lease(data: bytes) -> LeaseRecord:
    if len(data) != LEASE_SIZE:
        raise ContainerError(f"a lease record is {LEASE_SIZE} bytes, got {len(data)}")
    owner, renew, cancel, expiry = LEASE.unpack(data)
    return LeaseRecord(owner, renew, cancel, expiry)


def new_lease(
    renew_secret: bytes, cancel_secret: bytes, now_s: float, version: int = CONTAINER_VERSION
) -> LeaseRecord:
    """A lease record for these secrets, expiring 31 days after ``now_s``."""
    if version == 1:
        renew, cancel = renew_secret, cancel_secret
    else:
        renew, cancel = hash_lease_secret(renew_secret), hash_lease_secret(cancel_secret)
    return LeaseRecord(OWNER_NUM, renew, cancel, int(now_s) + LEASE_DURATION_S)


def renew_matches(record: LeaseRecord, renew_secret: bytes, version: int) -> bool:
    """Constant-time comparison of a presented renew secret with a stored lease."""
    stored = renew_secret if version == 1 else hash_lease_secret(renew_secret)
    return hmac.compare_digest(record.renew, stored)


@dataclass(frozen=True, slots=True)
class LeaseUpdate:
    """Where to write what: ``record`` at ``offset``; the header's lease count becomes ``num_leases``."""

    offset: int
    record: bytes
    num_leases: int


def plan_add_or_renew(
    header: ContainerHeader,
    lease_area: bytes,
    lease_offset: int,
    renew_secret: bytes,
    cancel_secret: bytes,
    now_s: float,
) -> LeaseUpdate | None:
    """The one write that adds or renews a lease (Tahoe's rule), or None when nothing changes.

    ``lease_area`` is the container's lease records (``72 * num_leases`` bytes), which start at
    ``lease_offset`` in the file. A lease whose renew secret matches gets expiry now + 31 days if
    that is later than its current expiry; otherwise a new lease record is appended.
    """
    fresh = new_lease(renew_secret, cancel_secret, now_s, header.version)
    for i in range(header.num_leases):
        record = unpack_lease(lease_area[i * LEASE_SIZE : (i + 1) * LEASE_SIZE])
        if renew_matches(record, renew_secret, header.version):
            if fresh.expiry <= record.expiry:
                return None
            renewed = LeaseRecord(record.owner_num, record.renew, record.cancel, fresh.expiry)
            return LeaseUpdate(lease_offset + i * LEASE_SIZE, renewed.pack(), header.num_leases)
    return LeaseUpdate(lease_offset + header.num_leases * LEASE_SIZE, fresh.pack(), header.num_leases + 1)


__all__ = [
    "CONTAINER_VERSION",
    "HEADER_SIZE",
    "LEASE_DURATION_S",
    "LEASE_SIZE",
    "ContainerHeader",
    "LeaseRecord",
    "LeaseUpdate",
    "hash_lease_secret",
    "new_lease",
    "pack_header",
    "plan_add_or_renew",
    "renew_matches",
    "share_length",
    "unpack_header",
    "unpack_lease",
]
