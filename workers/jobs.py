"""The jobs a worker runs: one message in, one message out. Pure computation plus file reads.

- ``EncodeSegment``: read the plaintext at its offset (or take it from the message), AES-CTR it
  in place inside the output slot, zero-pad, erasure-code (the worker's backend) in place, hash
  every block; the N blocks land in the slot (or travel inline), the reply carries the hashes.
- ``KeyPass``: the convergent key over the whole file (SHA-256d, one sequential pass).
- ``DecodeSegment``: verify each block's hash, zfec-decode (not needed when the blocks are the
  first k: zfec is systematic), verify the ciphertext segment hash, decrypt, and write the
  plaintext to the destination file (or return it, inline or in the slot).
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
from workers.slots import Arena
from workers.source import iter_chunks
from workers.text import printable

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
    erasure.encode_into(out, block_size, k, n)  # the check blocks, written in place after the pieces
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


class DestinationError(UploaderError):
    """The plaintext could not be written to the destination file."""

    exit_code = 7


def _blocks_of(msg: DecodeSegment, arena: Arena | None) -> tuple[list[memoryview], memoryview | None]:
    """The k blocks as views (into the slot, or the inline bytes), and the slot's view if any."""
    k, bs = msg.k, msg.block_size
    if (
        len(msg.block_nums) != k
        or len(msg.block_hashes) != k
        or msg.block_nums != sorted(set(msg.block_nums))
    ):
        raise SourceError(f"a decode job needs {k} distinct ascending block numbers, got {msg.block_nums}")
    if msg.slot < 0:
        if len(msg.blocks) != k or any(len(b) != bs for b in msg.blocks):
            raise SourceError(f"a decode job needs {k} inline blocks of {bs} bytes")
        return [memoryview(b) for b in msg.blocks], None
    if arena is None or msg.slot >= arena.count:
        raise SourceError(f"decode job names slot {msg.slot}, which this worker does not have")
    out_len = max(0, min(msg.out_end, msg.offset + msg.length) - max(msg.out_start, msg.offset))
    need = k * bs + (out_len if not msg.dest else 0)
    if need > arena.slot_size:
        raise SourceError(f"decode job needs {need} bytes of slot, slots hold {arena.slot_size}")
    view = arena.slot(msg.slot)
    return [view[i * bs : (i + 1) * bs] for i in range(k)], view


def decode_segment_job(msg: DecodeSegment, arena: Arena | None = None) -> SegmentDecoded:
    k, bs, length = msg.k, msg.block_size, msg.length
    if not 0 < length <= k * bs:
        raise SourceError(f"segment of {length} bytes does not fit {k} blocks of {bs} bytes")
    blocks, slot = _blocks_of(msg, arena)
    bad = [
        num
        for num, block, h in zip(msg.block_nums, blocks, msg.block_hashes, strict=True)
        if block_hash(block) != h
    ]
    if bad:
        return SegmentDecoded(msg.job, msg.segment, bad, None, None)
    if msg.block_nums == list(range(k)):  # zfec is systematic: the blocks are the ciphertext
        if slot is not None:
            ct: memoryview = slot[:length]
        else:
            ct = memoryview(b"".join(blocks))[:length]
    else:
        pieces = erasure.decode(blocks, msg.block_nums, k, msg.n)
        if slot is not None:  # the pieces replace the blocks: slot[:length] is the ciphertext after
            # the backend may hand back a primary block's own buffer as its piece; piece i sits at or below
            # position i, so writing from the last piece down never clobbers one not yet written.
            for i in range(k - 1, -1, -1):
                slot[i * bs : (i + 1) * bs] = pieces[i]
            ct = slot[:length]
        else:
            ct = memoryview(b"".join(pieces))[:length]
    if crypttext_segment_hash(ct) != msg.crypttext_hash:
        return SegmentDecoded(msg.job, msg.segment, [-1], None, None)
    lo = max(msg.out_start, msg.offset)
    hi = min(msg.out_end, msg.offset + length)
    ciphertext = bytes(ct) if slot is None else None
    if hi <= lo:
        return SegmentDecoded(msg.job, msg.segment, [], b"" if slot is None else None, ciphertext)
    if slot is not None and not msg.dest:
        out = slot[k * bs : k * bs + hi - lo]
    else:
        out = memoryview(bytearray(hi - lo))
    cipher = _cipher(msg.key, lo)
    cipher.encrypt(ct[lo - msg.offset : hi - msg.offset], output=out)  # type: ignore[attr-defined]
    if not msg.dest:
        return SegmentDecoded(msg.job, msg.segment, [], bytes(out) if slot is None else None, ciphertext)
    _pwrite_all(msg.dest, out, lo - msg.dest_base)
    return SegmentDecoded(msg.job, msg.segment, [], None, ciphertext)


def _pwrite_all(path: str, data: memoryview, at: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise DestinationError(f"cannot open the destination {path}: {exc.strerror}") from None
    try:
        while data:
            n = os.pwrite(fd, data, at)
            data, at = data[n:], at + n
    except OSError as exc:
        raise DestinationError(f"cannot write the destination {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def run_job(msg: Message, arena: Arena | None) -> ReplyMessage:
    """Run one job; expected failures come back as JobFailed, bugs propagate (and crash the worker)."""
    if not isinstance(msg, EncodeSegment | KeyPass | DecodeSegment):
        raise TypeError(f"workers do not run {type(msg).__name__} messages")
    try:
        if isinstance(msg, EncodeSegment):
            return encode_segment_job(msg, arena)
        if isinstance(msg, KeyPass):
            return key_pass_job(msg)
        return decode_segment_job(msg, arena)
    except UploaderError as exc:
        seg = msg.segment if isinstance(msg, EncodeSegment | DecodeSegment) else -1
        # printable: a message naming a file whose name is not UTF-8 must still pack (and print)
        return JobFailed(msg.job, seg, type(exc).__name__, printable(str(exc)))
