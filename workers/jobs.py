"""The jobs a worker runs: one message in, one message out. Pure computation plus file reads.

- ``EncodeSegment``: read the plaintext at its offset (or take it from the message), AES-CTR it
  in place inside the output slot, zero-pad, zfec, hash every block; the N blocks land in the
  slot (or travel inline), the reply carries the hashes.
- ``KeyPass``: the convergent key over the whole file (SHA-256d, one sequential pass).
- ``DecodeSegment``: verify each block's hash, zfec-decode, verify the ciphertext segment hash,
  decrypt, and write the plaintext to the destination file (or return it inline).
"""

from __future__ import annotations

import os

from Crypto.Cipher import AES

from workers import erasure
from workers.errors import UploaderError
from workers.geometry import roundup
from workers.hashes import block_hash, crypttext_segment_hash
from workers.keys import ConvergentKeyHasher
from workers.messages import (
    DecodeSegment,
    EncodeSegment,
    JobFailed,
    KeyPass,
    KeyReady,
    Message,
    ReplyMessage,
    SegmentDecoded,
    SegmentEncoded,
)
from workers.segment import decode_ciphertext
from workers.slots import Arena
from workers.source import iter_chunks

_ZEROS = bytes(16)


class SourceError(UploaderError):
    """The source file could not be read as the job expected (gone, shorter, unreadable)."""

    exit_code = 7


def _cipher(key: bytes, offset: int) -> object:
    cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=offset // 16)
    if offset % 16:
        cipher.encrypt(_ZEROS[: offset % 16])
    return cipher


def _read_into(path: str, offset: int, view: memoryview) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(f"cannot open source {path}: {exc.strerror}") from None
    try:
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                raise SourceError(
                    f"source {path} ended at {offset + got} bytes, expected {offset + len(view)}"
                )
            got += n
    finally:
        os.close(fd)


def encode_segment_job(msg: EncodeSegment, arena: Arena | None) -> SegmentEncoded:
    k, n, length = msg.k, msg.n, msg.length
    padded = roundup(length, k)
    block_size = padded // k
    if msg.slot >= 0:
        if arena is None or n * block_size > arena.slot_size:
            raise SourceError(f"segment of {n} x {block_size} bytes does not fit slot size")
        out = arena.slot(msg.slot)
    else:
        out = memoryview(bytearray(n * block_size))
    ct = out[:length]
    if msg.data is not None:
        if len(msg.data) != length:
            raise SourceError(f"inline segment has {len(msg.data)} bytes, expected {length}")
        ct[:] = msg.data
    else:
        _read_into(msg.source, msg.offset, ct)
    cipher = _cipher(msg.key, msg.offset)
    cipher.encrypt(ct, output=ct)  # type: ignore[attr-defined]
    leaf = crypttext_segment_hash(ct)
    out[length:padded] = bytes(padded - length)
    pieces = [out[i * block_size : (i + 1) * block_size] for i in range(k)]
    blocks = erasure.encode(pieces, k, n)
    for j in range(k, n):
        out[j * block_size : (j + 1) * block_size] = blocks[j]
    hashes = [block_hash(out[j * block_size : (j + 1) * block_size]) for j in range(n)]
    inline = None if msg.slot >= 0 else [bytes(out[j * block_size : (j + 1) * block_size]) for j in range(n)]
    return SegmentEncoded(msg.job, msg.segment, leaf, hashes, block_size, msg.slot, inline)


def key_pass_job(msg: KeyPass) -> KeyReady:
    hasher = ConvergentKeyHasher(msg.secret, msg.k, msg.n, msg.segment_size)
    try:
        fd = os.open(msg.source, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(f"cannot open source {msg.source}: {exc.strerror}") from None
    try:
        for chunk in iter_chunks(fd, msg.size):
            hasher.update(chunk)
    except EOFError as exc:
        raise SourceError(f"source {msg.source} is shorter than expected: {exc}") from None
    finally:
        os.close(fd)
    return KeyReady(msg.job, hasher.key())


def decode_segment_job(msg: DecodeSegment) -> SegmentDecoded:
    bad = [
        num
        for num, block, h in zip(msg.block_nums, msg.blocks, msg.block_hashes, strict=True)
        if block_hash(block) != h
    ]
    if bad:
        return SegmentDecoded(msg.job, msg.segment, bad, None)
    blocks = dict(zip(msg.block_nums, msg.blocks, strict=True))
    ct = decode_ciphertext(blocks, msg.k, msg.n, msg.length)
    if crypttext_segment_hash(ct) != msg.crypttext_hash:
        return SegmentDecoded(msg.job, msg.segment, [-1], None)  # -1: the blocks agree but decode wrong
    buf = bytearray(ct)
    cipher = _cipher(msg.key, msg.offset)
    cipher.encrypt(buf, output=buf)  # type: ignore[attr-defined]
    if not msg.dest:
        return SegmentDecoded(msg.job, msg.segment, [], bytes(buf))
    fd = os.open(msg.dest, os.O_WRONLY)
    try:
        view = memoryview(buf)
        at = msg.offset - msg.dest_base
        while view:
            n = os.pwrite(fd, view, at)
            view, at = view[n:], at + n
    finally:
        os.close(fd)
    return SegmentDecoded(msg.job, msg.segment, [], None)


def run_job(msg: Message, arena: Arena | None) -> ReplyMessage:
    """Run one job; expected failures come back as JobFailed, bugs propagate (and crash the worker)."""
    if not isinstance(msg, EncodeSegment | KeyPass | DecodeSegment):
        raise TypeError(f"workers do not run {type(msg).__name__} messages")
    try:
        if isinstance(msg, EncodeSegment):
            return encode_segment_job(msg, arena)
        if isinstance(msg, KeyPass):
            return key_pass_job(msg)
        return decode_segment_job(msg)
    except UploaderError as exc:
        seg = msg.segment if isinstance(msg, EncodeSegment | DecodeSegment) else -1
        return JobFailed(msg.job, seg, type(exc).__name__, str(exc))
