"""The on-disk container: header, lease records, BLAKE2b-hashed secrets, add-or-renew planning."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.storage import container as c
from uploader.storage.errors import ContainerError

R, C = b"r" * 32, b"c" * 32


def test_header_layout() -> None:
    assert c.pack_header(48, 1) == bytes.fromhex("000000020000003000000001")
    assert c.pack_header(2**33, 0)[4:8] == b"\xff\xff\xff\xff"  # legacy field saturates
    assert c.unpack_header(c.pack_header(48, 3)) == c.ContainerHeader(2, 48, 3)


def test_non_immutable_containers_are_refused() -> None:
    with pytest.raises(ContainerError):
        c.unpack_header(b"Tahoe mutable container v1\n")
    with pytest.raises(ContainerError):
        c.unpack_header(b"\x00\x00")


def test_share_length_from_file_size() -> None:
    header = c.ContainerHeader(2, 48, 2)
    assert c.share_length(12 + 48 + 144, header) == 48
    with pytest.raises(ContainerError):
        c.share_length(100, header)


def test_v2_lease_stores_blake2b_digests() -> None:
    record = c.new_lease(R, C, 1000.0)
    assert record.renew == hashlib.blake2b(R, digest_size=32).digest()
    assert record.cancel == hashlib.blake2b(C, digest_size=32).digest()
    assert record.expiry == 1000 + 31 * 86400
    packed = record.pack()
    assert len(packed) == c.LEASE_SIZE == 72
    assert c.unpack_lease(packed) == record
    assert c.renew_matches(record, R, 2)
    assert not c.renew_matches(record, C, 2)


def test_v1_lease_keeps_cleartext_secrets() -> None:
    record = c.new_lease(R, C, 0, version=1)
    assert record.renew == R
    assert c.renew_matches(record, R, 1)


def test_plan_adds_then_renews() -> None:
    header = c.ContainerHeader(2, 48, 1)
    area = c.new_lease(R, C, 1000).pack()
    # An unknown renew secret adds a second lease after the first.
    add = c.plan_add_or_renew(header, area, 60, b"x" * 32, C, 2000)
    assert add is not None and add.offset == 60 + 72 and add.num_leases == 2
    # The same renew secret later renews in place.
    renew = c.plan_add_or_renew(header, area, 60, R, C, 5000)
    assert renew is not None and renew.offset == 60 and renew.num_leases == 1
    assert c.unpack_lease(renew.record).expiry == 5000 + c.LEASE_DURATION_S
    # Renewing to an earlier expiry changes nothing.
    assert c.plan_add_or_renew(header, area, 60, R, C, 10) is None


@given(st.binary(min_size=12, max_size=12))
def test_header_bytes_parse_or_raise_container_error(data: bytes) -> None:
    try:
        header = c.unpack_header(data)
    except ContainerError:
        return
    assert header.version in (1, 2)
