"""AES-128-CTR over the whole file, startable at any byte offset (chk-format §6).

The oracle is the `cryptography` package's CTR mode, an implementation independent of the
pycryptodome one under test.
"""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from workers.aes import aes_ctr

KEY = bytes.fromhex("c66e2700c124ec49fbab9a5e186168db")
keys = st.binary(min_size=16, max_size=16)


def oracle(key: bytes, data: bytes, first_block: int = 0) -> bytes:
    """Encrypt data that starts at keystream block ``first_block`` with an independent library."""
    enc = Cipher(algorithms.AES(key), modes.CTR(first_block.to_bytes(16, "big"))).encryptor()
    return enc.update(data) + enc.finalize()


def test_worked_example_ciphertext() -> None:
    assert aes_ctr(KEY, 0, b"a" * 56).hex() == (
        "561a358556560c7f9754bd0ff48e5a3f2baf1137c031e3aab298cf440117834a"
        "79566b6681c9451d431ab7dd87b7ad7e7f40fe16b7a42ae1"
    )


def test_empty_input() -> None:
    assert aes_ctr(KEY, 12345, b"") == b""


@given(keys, st.binary(max_size=2000))
def test_whole_file_matches_independent_ctr(key: bytes, data: bytes) -> None:
    assert aes_ctr(key, 0, data) == oracle(key, data)


@given(keys, st.integers(1, 5000), st.integers(0, 2**32), st.data())
def test_any_offset_equals_slicing_the_whole_file(
    key: bytes, size: int, seed: int, data: st.DataObject
) -> None:
    plaintext = random.Random(seed).randbytes(size)
    whole = aes_ctr(key, 0, plaintext)
    off = data.draw(st.integers(0, size - 1), label="offset")
    n = data.draw(st.integers(0, size - off), label="length")
    assert aes_ctr(key, off, plaintext[off : off + n]) == whole[off : off + n]
    assert aes_ctr(key, off, memoryview(plaintext)[off : off + n]) == whole[off : off + n]


@given(keys, st.integers(0, 2**40), st.binary(max_size=100))
def test_ctr_is_its_own_inverse(key: bytes, offset: int, data: bytes) -> None:
    assert aes_ctr(key, offset, aes_ctr(key, offset, data)) == data


def test_counter_is_one_128_bit_big_endian_integer() -> None:
    # Start 5 bytes before the low 64 bits of the counter wrap: the carry must reach the high half.
    block = 2**64 - 1
    offset = block * 16 + 11
    data = bytes(range(40))
    expected = oracle(KEY, bytes(11) + data, first_block=block)[11:]
    assert aes_ctr(KEY, offset, data) == expected


def test_keystream_is_not_restarted_per_segment() -> None:
    data = bytes(64)
    assert aes_ctr(KEY, 32, data[32:]) != aes_ctr(KEY, 0, data[32:])
