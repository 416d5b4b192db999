"""Erasure coding: zfec's systematic Reed-Solomon over GF(2^8) (chk-format §7), two backends.

``encode(pieces)`` takes k equal-length pieces and returns N blocks (blocks 0..k-1 are the pieces
themselves); ``encode_into(buf, block_size)`` writes the N-k check blocks into a buffer that holds
the k pieces back to back; ``decode(blocks, nums)`` takes any k blocks with their block numbers and
returns the k pieces. One interface, chosen by the ``erasure_backend`` setting:

- ``zfec``: the reference (and the oracle: it supplies ISA-L's matrix and checks it);
- ``isal``: Intel ISA-L through ctypes (``workers.isal``); it must load and prove itself
  byte-identical to zfec (``self_check``) or selection fails with ``ErasureBackendError``;
- ``auto``: ISA-L when it loads and passes the check, else zfec, with the reason logged.

The module-level functions use the process's active backend: zfec until ``configure`` is called
(the worker does at start-up with the pool's setting; in-process paths stay on zfec).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import zfec

from workers.hashes import BytesLike
from workers.isal import ErasureBackendError, IsalBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "isal", "zfec")


class ErasureBackend(Protocol):
    name: str

    def encode(self, pieces: Sequence[BytesLike], k: int, n: int) -> list[BytesLike]: ...

    def encode_into(self, buf: memoryview, block_size: int, k: int, n: int) -> None: ...

    def decode(self, blocks: Sequence[BytesLike], nums: Sequence[int], k: int, n: int) -> list[BytesLike]: ...


@lru_cache(maxsize=64)
def _encoder(k: int, n: int) -> Any:
    return zfec.Encoder(k, n)


@lru_cache(maxsize=64)
def _decoder(k: int, n: int) -> Any:
    return zfec.Decoder(k, n)


class ZfecBackend:
    name = "zfec"
    path = ""

    def encode(self, pieces: Sequence[BytesLike], k: int, n: int) -> list[BytesLike]:
        blocks: list[BytesLike] = _encoder(k, n).encode(tuple(pieces))
        return blocks

    def encode_into(self, buf: memoryview, block_size: int, k: int, n: int) -> None:
        if len(buf) < n * block_size:
            raise ValueError(f"{n} blocks of {block_size} bytes do not fit a {len(buf)}-byte buffer")
        pieces = [buf[i * block_size : (i + 1) * block_size] for i in range(k)]
        blocks = self.encode(pieces, k, n)
        for j in range(k, n):
            buf[j * block_size : (j + 1) * block_size] = blocks[j]

    def decode(self, blocks: Sequence[BytesLike], nums: Sequence[int], k: int, n: int) -> list[BytesLike]:
        pieces: list[BytesLike] = _decoder(k, n).decode(tuple(blocks), tuple(nums))
        return pieces


ZFEC = ZfecBackend()

# (k, N, block length): the self-check's vectors (odd lengths, and a short and a long tail for SIMD)
_CHECKS = ((1, 1, 5), (1, 3, 17), (2, 3, 31), (3, 10, 4099), (7, 10, 100), (25, 50, 33), (101, 256, 67))


def self_check(backend: ErasureBackend) -> None:
    """Prove ``backend`` byte-identical to zfec on fixed vectors (encode, encode_into, decode of
    check blocks only and of a mixed set); raise ErasureBackendError naming the first difference."""
    rnd = random.Random(0x150C)
    for k, n, size in _CHECKS:
        where = f"{backend.name} self-check at k={k} N={n}, {size}-byte blocks"
        pieces = [rnd.randbytes(size) for _ in range(k)]
        expected = [bytes(b) for b in ZFEC.encode(pieces, k, n)]
        try:
            got = [bytes(b) for b in backend.encode(pieces, k, n)]
            buf = bytearray(b"".join(pieces) + bytes((n - k) * size))
            backend.encode_into(memoryview(buf), size, k, n)
            last = list(range(n - k, n))
            mixed = sorted(rnd.sample(range(n), k))
            decoded = [
                [bytes(p) for p in backend.decode([expected[i] for i in nums], nums, k, n)]
                for nums in (last, mixed)
            ]
        except (OSError, ValueError, TypeError) as exc:
            raise ErasureBackendError(f"{where}: failed with {type(exc).__name__}: {exc}") from None
        bad = [j for j in range(n) if got[j] != expected[j]]
        if bad:
            raise ErasureBackendError(f"{where}: block(s) {bad[:5]} differ from zfec's")
        if bytes(buf) != b"".join(expected):
            raise ErasureBackendError(f"{where}: encode_into differs from zfec's blocks")
        if any(d != pieces for d in decoded):
            raise ErasureBackendError(f"{where}: decoding zfec's blocks does not give the pieces back")


@dataclass(frozen=True)
class Selection:
    requested: str  # the setting: auto, isal or zfec
    backend: ErasureBackend
    library: str  # the ISA-L file in use ("" for zfec)
    note: str  # why auto fell back to zfec ("" otherwise)

    @property
    def name(self) -> str:
        return self.backend.name


_isal: IsalBackend | ErasureBackendError | None = None


def load_isal() -> IsalBackend:
    """ISA-L loaded and self-checked, once per process; ErasureBackendError (cached) if it cannot be."""
    global _isal
    if _isal is None:
        try:
            backend = IsalBackend.load()
            self_check(backend)
            _isal = backend
        except ErasureBackendError as exc:
            _isal = exc
    if isinstance(_isal, ErasureBackendError):
        raise _isal
    return _isal


def select(requested: str) -> Selection:
    """The backend the setting names, loaded and checked; ``isal`` that cannot be used raises."""
    if requested == "zfec":
        return Selection(requested, ZFEC, "", "")
    if requested == "isal":
        isal = load_isal()
        return Selection(requested, isal, isal.path, "")
    if requested == "auto":
        try:
            isal = load_isal()
        except ErasureBackendError as exc:
            log.warning("erasure_backend = auto: using zfec, because %s", exc)
            return Selection(requested, ZFEC, "", str(exc))
        return Selection(requested, isal, isal.path, "")
    raise ErasureBackendError(f"erasure_backend must be one of {', '.join(BACKENDS)}, got {requested!r}")


_active: ErasureBackend = ZFEC


def configure(requested: str) -> Selection:
    """Select a backend and make it this process's active one (a worker, at start-up)."""
    global _active
    chosen = select(requested)
    _active = chosen.backend
    return chosen


def active() -> ErasureBackend:
    return _active


@contextlib.contextmanager
def using(backend: ErasureBackend) -> Iterator[ErasureBackend]:
    """Make ``backend`` the active one for the block (tests and benchmarks of in-process paths)."""
    global _active
    before, _active = _active, backend
    try:
        yield backend
    finally:
        _active = before


def encode(pieces: Sequence[BytesLike], k: int, n: int) -> list[BytesLike]:
    """N blocks from k pieces of equal length; the first k returned are the inputs (not copies)."""
    return _active.encode(pieces, k, n)


def encode_into(buf: memoryview, block_size: int, k: int, n: int) -> None:
    """Write blocks k..N-1 into ``buf[j*block_size:(j+1)*block_size]`` from the k pieces before them."""
    _active.encode_into(buf, block_size, k, n)


def decode(blocks: Sequence[BytesLike], nums: Sequence[int], k: int, n: int) -> list[BytesLike]:
    """The k primary pieces from any k distinct blocks ``blocks`` numbered ``nums``.

    Pieces that were among the blocks may come back as those very buffers (not copies)."""
    if len(blocks) != k or len(set(nums)) != k:
        raise ValueError(f"decode needs exactly {k} distinct blocks, got numbers {list(nums)}")
    if all(num == i for i, num in enumerate(nums)):
        return [bytes(b) for b in blocks]
    return _active.decode(blocks, nums, k, n)


__all__ = [
    "BACKENDS",
    "ZFEC",
    "ErasureBackend",
    "ErasureBackendError",
    "Selection",
    "ZfecBackend",
    "active",
    "configure",
    "decode",
    "encode",
    "encode_into",
    "load_isal",
    "select",
    "self_check",
    "using",
]
