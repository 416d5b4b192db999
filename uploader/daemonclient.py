"""``put`` and ``get`` through a running daemon (setting ``daemon = "http://HOST:PORT"``), as ``tahoe put``
uses its node: ``PUT /uri`` streams the file, ``GET /uri/CAP`` streams it back. The daemon checks
every hash; a body shorter than its Content-Length (the daemon cut it after a failed check) is an error.

Plain blocking sockets and the standard library only: a command that hands its work to the daemon
should not spend a third of a second importing an HTTP client stack (aiohttp takes ~0.25 s to import
here). The file goes out with ``sendfile``; a download is spliced from the socket into the output
file (or copied through one reused buffer into a terminal or a pipe).
Requests are HTTP/1.0 (one request per connection, never a chunked answer).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

from uploader.api.request import EXIT_CODE_HEADER, SHARE_BYTES_HEADER, exit_code_for
from uploader.errors import LocalIOError, UploaderError
from uploader.output import Output

CHUNK = 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
MAX_HEAD = 64 * 1024  # an answer's status line and headers


class DaemonError(UploaderError):
    """The daemon refused or failed a request; ``exit_code`` follows its answer."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Answer:
    """A response's status and headers (lower-case names), and the body bytes read with them."""

    def __init__(self, status: int, headers: dict[str, str], rest: bytes) -> None:
        self.status = status
        self.headers = headers
        self.rest = rest

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None


def _address(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise DaemonError(f"daemon: expected a URL like http://127.0.0.1:3456, got {url!r}", exit_code=3)
    try:
        port = parts.port or 80
    except ValueError:
        raise DaemonError(
            f"daemon: the port in {url!r} is not a number from 1 to 65535", exit_code=3
        ) from None
    return parts.hostname, port, parts.path.rstrip("/")


def _connect(url: str) -> tuple[socket.socket, str, str]:
    """A connected socket, the Host header value and the URL's path prefix."""
    host, port, prefix = _address(url)
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise DaemonError(f"cannot reach the daemon at {url}: {exc.strerror or exc}") from None
    sock.settimeout(None)  # a large file can take long; the daemon has its own timeouts toward the grid
    return sock, f"{host}:{port}", prefix


def _read_head(sock: socket.socket, url: str) -> _Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise DaemonError(f"the daemon at {url} sent a response head over {MAX_HEAD} bytes")
        more = sock.recv(CHUNK)
        if not more:
            raise DaemonError(f"the daemon at {url} closed the connection without an answer")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise DaemonError(f"the daemon at {url} sent something that is not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return _Answer(int(fields[1]), headers, rest)


def _read_small(sock: socket.socket, answer: _Answer, limit: int = 1 << 20) -> bytes:
    """The rest of a short body (a cap, an error text): to its Content-Length, or to the end."""
    data = answer.rest
    want = answer.length
    while (want is None or len(data) < want) and len(data) < limit:
        more = sock.recv(CHUNK)
        if not more:
            break
        data += more
    return data if want is None else data[:want]


def _failure(sock: socket.socket, answer: _Answer, what: str) -> DaemonError:
    text = _read_small(sock, answer, 4096).decode("utf-8", "replace").strip()[:500]
    return DaemonError(
        f"{what}: the daemon answered {answer.status}: {text}",
        exit_code_for(answer.status, answer.headers.get(EXIT_CODE_HEADER.lower())),
    )


def put(url: str, path: Path) -> tuple[str, int, float, int | None]:
    """Upload ``path``; the cap, the size, the seconds it took and the share bytes the daemon sent
    (None when it does not say)."""
    start = time.monotonic()
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        sock, host, prefix = _connect(url)
        with sock:
            try:
                sock.sendall(
                    f"PUT {prefix}/uri HTTP/1.0\r\nHost: {host}\r\nContent-Length: {size}\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n".encode("latin-1")
                )
                sent = sock.sendfile(fh) if size else 0
                if sent != size:
                    raise LocalIOError(
                        f"{path} changed size while it was being sent ({sent} of {size} bytes)"
                    )
                answer = _read_head(sock, url)
                if answer.status != 200:
                    raise _failure(sock, answer, "the upload")  # the caller names the file
                cap = _read_small(sock, answer).decode("ascii", "replace").strip()
                sent_text = answer.headers.get(SHARE_BYTES_HEADER.lower(), "")
                share_bytes = int(sent_text) if sent_text.isdigit() else None
            except OSError as exc:
                raise DaemonError(
                    f"the connection to the daemon at {url} failed during the upload: {exc}"
                ) from None
    return cap, size, time.monotonic() - start, share_bytes


def get(
    url: str,
    cap: str,
    output: Path | None,
    offset: int = 0,
    length: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Download ``cap`` (a byte range of it when asked) to ``output`` (atomically) or stdout; bytes written."""
    if length == 0:
        if output is not None:
            Output(output).commit()  # an empty file (a device or FIFO: opened and closed)
        return 0
    sock, host, prefix = _connect(url)
    with sock:
        request = f"GET {prefix}/uri/{quote(cap, safe='')} HTTP/1.0\r\nHost: {host}\r\n"
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            request += f"Range: bytes={offset}-{end}\r\n"
        try:
            sock.sendall((request + "\r\n").encode("latin-1"))
            answer = _read_head(sock, url)
            if answer.status == 416:
                return 0  # a range past the end: nothing to write, as `get --offset` beyond the file
            if answer.status not in (200, 206):
                raise _failure(sock, answer, "downloading")
        except OSError as exc:
            raise DaemonError(f"downloading: the connection to the daemon at {url} failed: {exc}") from None
        if answer.length is None:
            raise DaemonError(f"the daemon at {url} sent a download without a Content-Length")
        if output is None:
            return _receive(sock, answer, 1, progress)
        out = Output(output)  # a temp file moved into place at the end, or a device/FIFO in place
        try:
            written = _receive(sock, answer, out.fd, progress)
        except BaseException:
            out.discard()
            raise
        out.commit()
    return written


def _receive(sock: socket.socket, answer: _Answer, fd: int, progress: Callable[[int], None] | None) -> int:
    """The body (exactly Content-Length bytes) into ``fd``; a shorter one is a failed download."""
    want = answer.length or 0
    first = answer.rest[:want]
    _write_all(fd, first)
    written = len(first)
    if progress is not None and written:
        progress(written)
    with _mover(sock, fd) as move:
        while written < want:
            n = move(min(CHUNK, want - written))
            if n == 0:
                raise DaemonError(
                    f"the download broke off after {written} of {want} bytes: the daemon closed the "
                    "connection (it stops sending when a hash check fails, or it stopped; see its log)",
                    exit_code=5,
                )
            written += n
            if progress is not None:
                progress(n)
    return written


@contextlib.contextmanager
def _mover(sock: socket.socket, fd: int) -> Iterator[Callable[[int], int]]:
    """A function that moves up to n bytes from the socket to ``fd`` and says how many (0: the end).

    Into a regular file (without O_APPEND) the bytes go through a pipe in the kernel (``splice``) and
    never enter this process; anything else (a terminal, a pipe) gets them copied through a buffer."""
    try:
        spliceable = stat.S_ISREG(os.fstat(fd).st_mode) and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
    except OSError as exc:
        raise LocalIOError(f"cannot write the download: {exc.strerror}") from None
    if not spliceable or not hasattr(os, "splice"):
        view = memoryview(bytearray(CHUNK))

        def copy(n: int) -> int:
            got = _from_socket(sock.recv_into, view, n)
            _write_all(fd, view[:got])
            return got

        yield copy
        return
    r, w = os.pipe()
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, CHUNK)

        def splice(n: int) -> int:
            got = _from_socket(os.splice, sock.fileno(), w, n)
            left = got
            try:
                while left:
                    left -= os.splice(r, fd, left)
            except OSError as exc:
                raise LocalIOError(f"cannot write the download: {exc.strerror}") from None
            return got

        yield splice
    finally:
        os.close(r)
        os.close(w)


def _from_socket(read: Callable[..., int], *args: object) -> int:
    try:
        return read(*args)
    except OSError as exc:
        raise DaemonError(f"the download broke off: {exc}", exit_code=5) from None


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise LocalIOError(f"cannot write the download: {exc.strerror}") from None


__all__ = ["DaemonError", "get", "put"]
