"""Intel ISA-L's Reed-Solomon through ctypes, fed zfec's own coefficient matrix (chk-format §7).

Both codes work in GF(2^8) with the polynomial 0x11d, so ISA-L's ``ec_encode_data`` with the parity
rows of zfec's systematic matrix writes byte-identical check blocks, 15-20x faster (SIMD, no GIL).
No compiled code of ours: the library is found at run time, first the system's ``libisal.so.2``
(Debian ``libisal2``), then the copy pyeclib's manylinux wheel ships in ``pyeclib.libs/`` (a plain
``pip install`` dependency of this project; pyeclib's own C module is never imported).

- encode: the (N-k) x k parity rows come from zfec (it encodes k unit vectors once per (k, N));
  ``ec_init_tables`` once per (k, N), then one ``ec_encode_data`` per segment, pointer arrays built
  straight from the caller's buffers.
- decode: the k x k rows of the systematic matrix for the received block numbers, inverted with
  ``gf_invert_matrix``; the rows of the missing primary pieces go through ``ec_init_tables``
  (cached per set of block numbers) and ``ec_encode_data`` rebuilds them.
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import zfec

from workers.errors import UploaderError
from workers.hashes import BytesLike

SYSTEM_LIBRARY = "libisal.so.2"
_SYMBOLS = ("ec_init_tables", "ec_encode_data", "gf_invert_matrix")
_CACHE_ENTRIES = 128
_K = TypeVar("_K")
_V = TypeVar("_V")


class ErasureBackendError(UploaderError):
    """An erasure backend that was asked for cannot be used (not loadable, or not identical to zfec)."""

    exit_code = 3


# ---- finding and loading the library ------------------------------------------------------------


def wheel_library_paths() -> list[Path]:
    """ISA-L copies that installed wheels ship (pyeclib's ``pyeclib.libs/libisal*.so*``).

    Found beside the ``pyeclib`` package (``find_spec`` locates it without importing it, in about a
    millisecond); the distribution's file list (``importlib.metadata``, ~60 ms a process: every worker
    pays it at start-up) is read only when the folder is not there."""
    spec = importlib.util.find_spec("pyeclib")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        found = sorted((Path(location).parent / "pyeclib.libs").glob("libisal*.so*"))
        if found:
            return found
    from importlib import metadata

    try:
        dist = metadata.distribution("pyeclib")
    except metadata.PackageNotFoundError:
        return []
    return [
        Path(str(dist.locate_file(f)))
        for f in dist.files or ()
        if f.name.startswith("libisal") and ".so" in f.name
    ]


def candidate_libraries() -> list[str]:
    """Where ISA-L is looked for, in order: the system library, then wheel copies."""
    return [SYSTEM_LIBRARY, *(str(p) for p in wheel_library_paths())]


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _loaded_path(lib: ctypes.CDLL, name: str) -> str:
    """The file a loaded library came from (dladdr on one of its symbols); ``name`` if unknown."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return name
    info = _DlInfo()
    addr = ctypes.cast(lib.ec_encode_data, ctypes.c_void_p)
    if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
        return str(Path(info.dli_fname.decode()).resolve())
    return name


def load_library(candidates: Sequence[str] | None = None) -> tuple[ctypes.CDLL, str]:
    """The first candidate that loads and has every symbol we use, with its file path."""
    reasons = []
    for name in candidate_libraries() if candidates is None else candidates:
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        missing = [s for s in _SYMBOLS if not hasattr(lib, s)]
        if missing:
            reasons.append(f"{name}: lacks {', '.join(missing)}")
            continue
        return lib, _loaded_path(lib, name)
    raise ErasureBackendError(
        "ISA-L could not be loaded ("
        + ("; ".join(reasons) or "no candidate library")
        + "); expected the system's libisal.so.2 (Debian package libisal2) or pyeclib>=1.6.4's wheel "
        "(`pip install pyeclib`), which ships one"
    )


# ---- addresses of Python buffers ------------------------------------------------------------------


class _PyBuffer(ctypes.Structure):  # CPython's Py_buffer
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_PYBUF_SIMPLE = 0


class _Pins:
    """Holds buffer exports for the length of one library call and gives their addresses."""

    __slots__ = ("keep", "views")

    def __init__(self) -> None:
        self.keep: list[object] = []
        self.views: list[_PyBuffer] = []

    def address(self, buf: BytesLike) -> int:
        try:  # writable buffers (slots, bytearrays): one ctypes export, no copy
            anchor = ctypes.c_char.from_buffer(buf)
            self.keep.append(anchor)
            return ctypes.addressof(anchor)
        except TypeError:  # read-only (bytes, their views): borrow the pointer through Py_buffer
            view = _PyBuffer()
            if _get_buffer(buf, ctypes.byref(view), _PYBUF_SIMPLE) != 0:
                raise TypeError(f"{type(buf).__name__} does not expose a contiguous buffer") from None
            self.views.append(view)
            return int(view.buf or 0)

    def release(self) -> None:
        for view in self.views:
            _release_buffer(ctypes.byref(view))
        self.views.clear()
        self.keep.clear()


# ---- the backend ------------------------------------------------------------------------------------


def zfec_parity_rows(k: int, n: int) -> bytes:
    """Rows k..N-1 of zfec's systematic matrix, row-major ((N-k) x k bytes).

    Encoding the k unit vectors e_0..e_{k-1}, each as a k-byte piece whose byte t is 1 when t is its
    index, gives check block r with byte t = M[r][t]: the matrix row itself.
    """
    pieces = [bytes(i) + b"\x01" + bytes(k - i - 1) for i in range(k)]
    blocks = zfec.Encoder(k, n).encode(pieces)
    return b"".join(bytes(b) for b in blocks[k:])


class IsalBackend:
    """``ec_encode_data`` with zfec's matrix; tables cached per (k, N) and per decode set."""

    name = "isal"

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.path = path
        self._encode_data = lib.ec_encode_data
        self._encode_data.restype = None
        self._init_tables = lib.ec_init_tables
        self._init_tables.restype = None
        self._invert = lib.gf_invert_matrix
        self._invert.restype = ctypes.c_int
        self._rows: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._enc: OrderedDict[tuple[int, int], ctypes.Array[ctypes.c_char]] = OrderedDict()
        self._dec: OrderedDict[
            tuple[int, int, tuple[int, ...]], tuple[ctypes.Array[ctypes.c_char], list[int]]
        ] = OrderedDict()

    @classmethod
    def load(cls, candidates: Sequence[str] | None = None) -> IsalBackend:
        lib, path = load_library(candidates)
        return cls(lib, path)

    # -- tables --
    def parity_rows(self, k: int, n: int) -> bytes:
        key = (k, n)
        rows = self._rows.get(key)
        if rows is None:
            rows = _remember(self._rows, key, zfec_parity_rows(k, n))
        return rows

    def _tables(self, k: int, rows: int, matrix: bytes) -> ctypes.Array[ctypes.c_char]:
        tables = ctypes.create_string_buffer(k * rows * 32)
        self._init_tables(k, rows, ctypes.c_char_p(matrix), tables)
        return tables

    def _encode_tables(self, k: int, n: int) -> ctypes.Array[ctypes.c_char]:
        key = (k, n)
        tables = self._enc.get(key)
        if tables is None:
            tables = _remember(self._enc, key, self._tables(k, n - k, self.parity_rows(k, n)))
        return tables

    def _decode_tables(
        self, k: int, n: int, nums: tuple[int, ...]
    ) -> tuple[ctypes.Array[ctypes.c_char], list[int]]:
        key = (k, n, nums)
        entry = self._dec.get(key)
        if entry is not None:
            return entry
        parity = self.parity_rows(k, n)
        square = bytearray()
        for num in nums:  # the rows that made the blocks we hold, in the order we hold them
            if num < k:
                square += bytes(num) + b"\x01" + bytes(k - num - 1)
            else:
                square += parity[(num - k) * k : (num - k + 1) * k]
        inverse = ctypes.create_string_buffer(k * k)
        if self._invert(ctypes.create_string_buffer(bytes(square), k * k), inverse, k) != 0:
            raise ValueError(f"the rows of blocks {list(nums)} of ({k}, {n}) are not invertible")
        missing = [i for i in range(k) if i not in nums]
        wanted = b"".join(inverse.raw[i * k : (i + 1) * k] for i in missing)
        return _remember(self._dec, key, (self._tables(k, len(missing), wanted), missing))

    # -- the interface (see workers.erasure.ErasureBackend) --
    def encode(self, pieces: Sequence[BytesLike], k: int, n: int) -> list[BytesLike]:
        size = _check_pieces(pieces, k, n)
        blocks = list(pieces)
        if n == k:
            return blocks
        out = memoryview(bytearray((n - k) * size))
        if size:
            pins = _Pins()
            try:
                src = (ctypes.c_void_p * k)(*[pins.address(p) for p in pieces])
                base = pins.address(out)
                dst = (ctypes.c_void_p * (n - k))(*[base + j * size for j in range(n - k)])
                self._encode_data(size, k, n - k, self._encode_tables(k, n), src, dst)
            finally:
                pins.release()
        return blocks + [out[j * size : (j + 1) * size] for j in range(n - k)]

    def encode_into(self, buf: memoryview, block_size: int, k: int, n: int) -> None:
        if len(buf) < n * block_size:
            raise ValueError(f"{n} blocks of {block_size} bytes do not fit a {len(buf)}-byte buffer")
        if n == k or block_size == 0:
            return
        pins = _Pins()
        try:
            base = pins.address(buf)
            src = (ctypes.c_void_p * k)(*[base + i * block_size for i in range(k)])
            dst = (ctypes.c_void_p * (n - k))(*[base + j * block_size for j in range(k, n)])
            self._encode_data(block_size, k, n - k, self._encode_tables(k, n), src, dst)
        finally:
            pins.release()

    def decode(self, blocks: Sequence[BytesLike], nums: Sequence[int], k: int, n: int) -> list[BytesLike]:
        held = tuple(nums)
        size = _check_pieces(blocks, k, n)
        if len(set(held)) != k or not all(0 <= num < n for num in held):
            raise ValueError(f"decode needs {k} distinct block numbers in 0..{n - 1}, got {list(held)}")
        pieces: list[BytesLike | None] = [None] * k
        for block, num in zip(blocks, held, strict=True):
            if num < k:
                pieces[num] = block
        tables, missing = self._decode_tables(k, n, held)
        if missing:
            out = memoryview(bytearray(len(missing) * size))
            if size:
                pins = _Pins()
                try:
                    src = (ctypes.c_void_p * k)(*[pins.address(b) for b in blocks])
                    base = pins.address(out)
                    dst = (ctypes.c_void_p * len(missing))(*[base + j * size for j in range(len(missing))])
                    self._encode_data(size, k, len(missing), tables, src, dst)
                finally:
                    pins.release()
            for j, i in enumerate(missing):
                pieces[i] = out[j * size : (j + 1) * size]
        return [p for p in pieces if p is not None]


def _check_pieces(pieces: Sequence[BytesLike], k: int, n: int) -> int:
    if not 1 <= k <= n <= 256:
        raise ValueError(f"erasure coding needs 1 <= k <= N <= 256, got k={k} N={n}")
    if len(pieces) != k:
        raise ValueError(f"expected {k} equal-length buffers, got {len(pieces)}")
    sizes = {memoryview(p).nbytes for p in pieces}
    if len(sizes) != 1:
        raise ValueError(f"the {k} buffers differ in length: {sorted(sizes)}")
    return sizes.pop()


def _remember(cache: OrderedDict[_K, _V], key: _K, value: _V) -> _V:
    cache[key] = value
    if len(cache) > _CACHE_ENTRIES:
        cache.popitem(last=False)
    return value


__all__ = [
    "SYSTEM_LIBRARY",
    "ErasureBackendError",
    "IsalBackend",
    "candidate_libraries",
    "load_library",
    "wheel_library_paths",
    "zfec_parity_rows",
]
