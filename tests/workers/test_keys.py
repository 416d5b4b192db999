"""Convergent key and storage index (chk-format §4, §5, worked example §15)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry
from workers.hashes import sha256d
from workers.keys import ConvergentKeyHasher, convergence_tag, convergent_key, random_key, storage_index

SECRET = b"aaaaaaaaaaaaaaaa"
PLAINTEXT = b"a" * 56
KEY_HEX = "c66e2700c124ec49fbab9a5e186168db"


def example_geometry() -> Geometry:
    return Geometry.from_params(EncodingParams(1, 1, 131072), 56)


def test_worked_example_tag() -> None:
    tag = convergence_tag(SECRET, 1, 1, 56)
    assert tag == b"allmydata_immutable_content_to_key_with_added_secret_v1+16:aaaaaaaaaaaaaaaa,6:1,1,56,"
    assert len(tag) == 85


def test_worked_example_key_and_storage_index() -> None:
    key = convergent_key(SECRET, example_geometry(), PLAINTEXT)
    assert key.hex() == KEY_HEX
    assert b32encode(key) == "yzxcoagbetwet65ltjpbqyli3m"
    si = storage_index(key)
    assert si.hex() == "475a787f99b6851539fedf220e1e35cb"
    assert b32encode(si) == "i5nhq74zw2crkop634ra4hrvzm"


def test_worked_example_key_from_the_literal_hash_input() -> None:
    # The spec spells out the exact bytes fed to SHA256d; hash them independently of workers.keys.
    fed = (
        b"85:allmydata_immutable_content_to_key_with_added_secret_v1+16:aaaaaaaaaaaaaaaa,6:1,1,56,,"
        + PLAINTEXT
    )
    assert sha256d(fed)[:16].hex() == KEY_HEX


def test_key_uses_the_adjusted_segment_size() -> None:
    data = bytes(range(256)) * 4
    small = Geometry.from_params(EncodingParams(3, 10, 4096), len(data))
    other_max = Geometry.from_params(EncodingParams(3, 10, 1 << 20), len(data))
    assert small.segment_size == other_max.segment_size == 1026
    assert convergent_key(b"s", small, data) == convergent_key(b"s", other_max, data)
    segmented = Geometry.from_params(EncodingParams(3, 10, 512), len(data))
    assert convergent_key(b"s", segmented, data) != convergent_key(b"s", small, data)


def test_key_depends_on_every_input() -> None:
    g = example_geometry()
    base = convergent_key(SECRET, g, PLAINTEXT)
    assert convergent_key(b"b" * 16, g, PLAINTEXT) != base
    assert convergent_key(SECRET, g, b"a" * 55 + b"b") != base
    assert convergent_key(SECRET, Geometry.from_params(EncodingParams(1, 2, 131072), 56), PLAINTEXT) != base


@given(st.binary(max_size=40), st.lists(st.binary(max_size=200), min_size=1, max_size=6))
def test_streaming_key_equals_one_shot(secret: bytes, chunks: list[bytes]) -> None:
    data = b"".join(chunks) + bytes(56)
    g = Geometry.from_params(EncodingParams(3, 7, 100), len(data))
    hasher = ConvergentKeyHasher.for_geometry(secret, g)
    direct = ConvergentKeyHasher(secret, g.k, g.n, g.segment_size)
    for chunk in [*chunks, bytes(56)]:
        hasher.update(memoryview(chunk))
        direct.update(chunk)
    key = hasher.key()
    assert len(key) == 16
    assert key == direct.key() == convergent_key(secret, g, data)


def test_random_keys() -> None:
    a, b = random_key(), random_key()
    assert len(a) == len(b) == 16
    assert a != b


@given(st.binary(min_size=16, max_size=16))
def test_storage_index_is_16_bytes_and_key_dependent(key: bytes) -> None:
    si = storage_index(key)
    assert len(si) == 16
    assert si != key
    assert storage_index(bytes(b ^ 1 for b in key)) != si
