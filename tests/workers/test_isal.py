"""ISA-L erasure backend: loaded from the project's own install, byte-identical to zfec.

These tests force ``isal``: if the library does not load they fail (ErasureBackendError), never skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers import erasure, isal
from workers.erasure import ZFEC, ErasureBackendError, select, self_check
from workers.hashes import BytesLike
from workers.isal import IsalBackend

PAGE = mmap.PAGESIZE


@pytest.fixture(scope="module")
def backend() -> IsalBackend:
    chosen = select("isal")  # raises, failing every test here, when ISA-L cannot be used
    assert isinstance(chosen.backend, IsalBackend)
    return chosen.backend


@pytest.fixture
def fresh_isal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget this process's cached ISA-L so a test can make loading it fail."""
    monkeypatch.setattr(erasure, "_isal", None)
    yield


def test_library_comes_from_the_install(backend: IsalBackend) -> None:
    path = Path(backend.path)
    assert path.is_file(), backend.path
    assert "libisal" in path.name
    wheel = [p.resolve() for p in isal.wheel_library_paths()]
    assert wheel, "pyeclib's wheel (a setup.cfg dependency) ships libisal in pyeclib.libs/"
    try:
        ctypes.CDLL(isal.SYSTEM_LIBRARY)
        system = True
    except OSError:
        system = False
    assert system or path in wheel  # the system library when there is one, else the wheel's copy


def test_select_isal_and_auto_both_give_isal(backend: IsalBackend) -> None:
    assert select("isal").backend is backend
    auto = select("auto")
    assert auto.backend is backend and auto.note == "" and auto.library == backend.path
    assert select("zfec").backend is ZFEC


def test_parity_rows_are_zfecs_matrix() -> None:
    rows = isal.zfec_parity_rows(3, 5)
    assert len(rows) == 2 * 3
    pieces = [b"\x01\x00", b"\x00\x00", b"\x00\x01"]  # 1 in byte 0 of piece 0 and byte 1 of piece 2
    blocks = ZFEC.encode(pieces, 3, 5)
    for r in range(2):
        assert bytes(blocks[3 + r]) == bytes([rows[r * 3 + 0], rows[r * 3 + 2]])


class _Guarded:
    """``size`` bytes that end exactly where an inaccessible page starts: a read or write past the
    end faults instead of passing unnoticed."""

    def __init__(self, size: int) -> None:
        span = -(-max(size, 1) // PAGE) * PAGE
        self.map = mmap.mmap(-1, span + PAGE)
        anchor = ctypes.c_char.from_buffer(self.map)
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.mprotect(ctypes.c_void_p(ctypes.addressof(anchor) + span), PAGE, 0)  # PROT_NONE
        del anchor
        assert rc == 0, ctypes.get_errno()
        self.view = memoryview(self.map)[span - size : span]

    def close(self) -> None:
        self.view.release()
        with contextlib.suppress(BufferError):  # a failing assertion's traceback holds a view
            self.map.close()


@st.composite
def geometries(draw: st.DrawFn) -> tuple[int, int, int, int]:
    n = draw(st.one_of(st.integers(1, 12), st.integers(13, 256), st.sampled_from([255, 256])), label="N")
    k = draw(st.integers(1, n), label="k")
    size = draw(
        st.one_of(st.integers(1, 48), st.integers(49, 4000), st.sampled_from([PAGE - 1, PAGE + 15])),
        label="block length",
    )
    return k, n, size, draw(st.integers(0, 2**32), label="seed")


@settings(max_examples=200)
@given(geometries(), st.data())
def test_isal_equals_zfec_and_each_decodes_the_other(
    backend: IsalBackend, geometry: tuple[int, int, int, int], data: st.DataObject
) -> None:
    k, n, size, seed = geometry
    rnd = random.Random(seed)
    src = _Guarded(k * size)  # the pieces, back to back, the last one ending at the guard page
    slot = _Guarded(n * size)  # encode_into's buffer: the N blocks, the last ending at the guard page
    try:
        src.view[:] = rnd.randbytes(k * size)
        pieces = [src.view[i * size : (i + 1) * size] for i in range(k)]
        theirs = [bytes(b) for b in ZFEC.encode(pieces, k, n)]
        ours = [bytes(b) for b in backend.encode(pieces, k, n)]
        assert ours == theirs
        slot.view[: k * size] = src.view
        backend.encode_into(slot.view, size, k, n)
        assert bytes(slot.view) == b"".join(theirs)

        nums = sorted(data.draw(st.permutations(range(n)), label="received")[:k])
        held = _Guarded(k * size)  # the received blocks, also ending at a guard page
        try:
            for p, num in enumerate(nums):
                held.view[p * size : (p + 1) * size] = ours[num]
            blocks = [held.view[p * size : (p + 1) * size] for p in range(k)]
            want = [bytes(p) for p in pieces]
            assert [bytes(p) for p in backend.decode([theirs[i] for i in nums], nums, k, n)] == want
            assert [bytes(p) for p in ZFEC.decode(blocks, nums, k, n)] == want  # zfec reads ISA-L's
            assert [bytes(p) for p in backend.decode(blocks, nums, k, n)] == want
            del blocks, pieces
        finally:
            held.close()
    finally:
        src.close()
        slot.close()


def test_decode_in_any_order_and_from_check_blocks_only(backend: IsalBackend) -> None:
    rnd = random.Random(7)
    k, n, size = 5, 9, 37
    pieces = [rnd.randbytes(size) for _ in range(k)]
    blocks = backend.encode(pieces, k, n)
    for nums in ([8, 1, 6, 0, 4], [4, 5, 6, 7, 8], [0, 1, 2, 3, 8]):
        assert [bytes(p) for p in backend.decode([blocks[i] for i in nums], nums, k, n)] == pieces


def test_read_only_and_writable_inputs(backend: IsalBackend) -> None:
    k, n = 3, 7
    data = bytes(range(48))
    readonly = [memoryview(data)[i * 16 : (i + 1) * 16] for i in range(k)]
    writable = [bytearray(data[i * 16 : (i + 1) * 16]) for i in range(k)]
    a = [bytes(b) for b in backend.encode(readonly, k, n)]
    b = [bytes(b) for b in backend.encode(writable, k, n)]
    assert a == b == [bytes(x) for x in ZFEC.encode(readonly, k, n)]


def test_bad_arguments_are_value_errors(backend: IsalBackend) -> None:
    with pytest.raises(ValueError, match="equal-length"):
        backend.encode([b"ab", b"cd"], 3, 5)
    with pytest.raises(ValueError, match="differ in length"):
        backend.encode([b"ab", b"c"], 2, 4)
    with pytest.raises(ValueError, match="1 <= k <= N <= 256"):
        backend.encode([b"ab"] * 3, 3, 257)
    with pytest.raises(ValueError, match="distinct block numbers"):
        backend.decode([b"ab", b"cd"], [1, 1], 2, 4)
    with pytest.raises(ValueError, match="distinct block numbers"):
        backend.decode([b"ab", b"cd"], [1, 4], 2, 4)
    with pytest.raises(ValueError, match="do not fit"):
        backend.encode_into(memoryview(bytearray(10)), 4, 2, 3)


def test_zero_length_and_k_equals_n(backend: IsalBackend) -> None:
    assert [bytes(b) for b in backend.encode([b"", b""], 2, 4)] == [b""] * 4
    assert [bytes(b) for b in backend.encode([b"xy", b"zw"], 2, 2)] == [b"xy", b"zw"]


class _WrongMatrix(IsalBackend):
    """A fault: ISA-L fed a matrix that is not zfec's (one coefficient changed)."""

    def parity_rows(self, k: int, n: int) -> bytes:
        rows = bytearray(super().parity_rows(k, n))
        if rows:
            rows[-1] = 3 if rows[-1] == 1 else 1  # still non-zero: the matrix stays invertible
        return bytes(rows)


def test_self_check_rejects_a_backend_that_differs_from_zfec(backend: IsalBackend) -> None:
    lib, path = isal.load_library([backend.path])
    with pytest.raises(ErasureBackendError, match=r"isal self-check at k=\d+ N=\d+.*differ from zfec"):
        self_check(_WrongMatrix(lib, path))


def test_missing_library_fails_forced_isal_and_auto_falls_back(
    fresh_isal: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(isal, "candidate_libraries", lambda: ["/nonexistent/libisal.so.2"])
    with pytest.raises(ErasureBackendError, match=r"ISA-L could not be loaded \(/nonexistent/libisal.so.2: "):
        select("isal")
    with caplog.at_level("WARNING", logger="workers.erasure"):
        auto = select("auto")
    assert auto.backend is ZFEC and "/nonexistent/libisal.so.2" in auto.note
    assert "using zfec, because ISA-L could not be loaded" in caplog.text


def test_a_library_without_the_symbols_is_refused() -> None:
    with pytest.raises(ErasureBackendError, match=r"libc.so.6: lacks ec_init_tables, ec_encode_data"):
        isal.load_library(["libc.so.6"])


def test_unknown_backend_name() -> None:
    with pytest.raises(ErasureBackendError, match="one of auto, isal, zfec, got 'fast'"):
        select("fast")


def test_module_functions_follow_the_active_backend(backend: IsalBackend) -> None:
    pieces: list[BytesLike] = [b"abcd", b"efgh", b"ijkl"]
    assert erasure.active() is ZFEC
    with erasure.using(backend):
        assert erasure.active() is backend
        blocks = erasure.encode(pieces, 3, 6)
        assert [bytes(p) for p in erasure.decode(blocks[3:], [3, 4, 5], 3, 6)] == pieces
    assert erasure.active() is ZFEC
    assert [bytes(b) for b in blocks] == [bytes(b) for b in ZFEC.encode(pieces, 3, 6)]
