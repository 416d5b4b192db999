"""The daemon client's handling of what a daemon can answer. The happy paths run against a real daemon
in tests/integration/test_daemon.py; here a one-shot socket server plays a daemon that fails, to
inject the faults (a cut body, an error answer, garbage, nobody listening)."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from uploader import daemonclient
from uploader.daemonclient import DaemonError
from uploader.errors import LocalIOError

CAP = "URI:CHK:" + "a" * 26 + ":" + "a" * 52 + ":3:10:100000"


class OneShot:
    """Accepts one connection, records the request (head and body), sends ``answer`` and closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.request = b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(65536)
            head, _, body = self.request.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    while len(body) < int(line.split(b":")[1]):
                        body += conn.recv(65536)
            self.request = head + b"\r\n\r\n" + body
            conn.sendall(self.answer)

    def close(self) -> None:
        self.thread.join(10)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[list[OneShot]]:
    made: list[OneShot] = []
    yield made
    for s in made:
        s.close()


def _server(made: list[OneShot], answer: bytes) -> OneShot:
    made.append(OneShot(answer))
    return made[-1]


def test_get_writes_the_body_and_sends_the_range(serve: list[OneShot], tmp_path: Path) -> None:
    body = os.urandom(3_000_000)
    s = _server(serve, b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    out = tmp_path / "out"
    seen: list[int] = []
    assert daemonclient.get(s.url, CAP, out, 10, len(body), progress=seen.append) == len(body)
    assert out.read_bytes() == body and sum(seen) == len(body)
    assert s.request.startswith(b"GET /uri/URI%3ACHK%3A")
    assert f"Range: bytes=10-{10 + len(body) - 1}".encode() in s.request
    assert os.listdir(tmp_path) == ["out"]


def test_a_cut_body_fails_with_exit_5_and_leaves_no_file(serve: list[OneShot], tmp_path: Path) -> None:
    s = _server(serve, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 400_000)
    out = tmp_path / "out"
    out.write_bytes(b"the old contents")
    with pytest.raises(DaemonError, match="broke off after 400000 of 1000000 bytes") as info:
        daemonclient.get(s.url, CAP, out)
    assert info.value.exit_code == 5
    assert out.read_bytes() == b"the old contents" and os.listdir(tmp_path) == ["out"]


def test_a_pipe_gets_the_body_by_copying(serve: list[OneShot]) -> None:
    """stdout is often a pipe or a terminal, which ``splice`` from a socket cannot serve in one step."""
    body = os.urandom(200_000)
    s = _server(serve, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    r, w = os.pipe()
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(_drain(r)))
    reader.start()
    with socket.create_connection(("127.0.0.1", int(s.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = daemonclient._read_head(sock, s.url)
        with daemonclient._mover(sock, w) as move:
            assert move.__name__ == "copy"
        with tempfile.TemporaryFile() as regular, daemonclient._mover(sock, regular.fileno()) as move:
            assert move.__name__ == "splice"  # a file takes the zero-copy path
        assert daemonclient._receive(sock, answer, w, None) == len(body)
    os.close(w)
    reader.join(10)
    os.close(r)
    assert bytes(got) == body


def _drain(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_an_error_answer_carries_the_daemons_text_and_exit_code(serve: list[OneShot], tmp_path: Path) -> None:
    text = b"not enough shares: 2 of 3 found"
    s = _server(
        serve,
        b"HTTP/1.1 410 Gone\r\nX-Uploader-Exit-Code: 5\r\nContent-Length: %d\r\n\r\n" % len(text) + text,
    )
    with pytest.raises(DaemonError, match="answered 410: not enough shares") as info:
        daemonclient.get(s.url, CAP, tmp_path / "out")
    assert info.value.exit_code == 5 and os.listdir(tmp_path) == []


def test_a_range_past_the_end_writes_nothing(serve: list[OneShot], tmp_path: Path) -> None:
    s = _server(serve, b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n")
    assert daemonclient.get(s.url, CAP, tmp_path / "out", 10**9) == 0
    assert os.listdir(tmp_path) == []


def test_garbage_is_not_taken_for_an_answer(serve: list[OneShot], tmp_path: Path) -> None:
    s = _server(serve, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(DaemonError, match="not an HTTP answer"):
        daemonclient.get(s.url, CAP, tmp_path / "out")


def test_put_sends_the_file_and_returns_the_cap(serve: list[OneShot], tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(2_500_000))
    s = _server(serve, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s\n" % (len(CAP) + 1, CAP.encode()))
    cap, size, _, share_bytes = daemonclient.put(s.url, src)
    assert (cap, size, share_bytes) == (CAP, 2_500_000, None)  # this answer does not say
    assert s.request.startswith(b"PUT /uri HTTP/1.0\r\n")
    assert s.request.endswith(b"\r\n\r\n" + src.read_bytes())


def test_nobody_listening_and_bad_urls(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed below: nothing listens there any more
    with pytest.raises(DaemonError, match=f"cannot reach the daemon at http://127.0.0.1:{port}"):
        daemonclient.get(f"http://127.0.0.1:{port}", CAP, tmp_path / "out")
    src = tmp_path / "src"
    src.write_bytes(b"x")
    with pytest.raises(DaemonError, match="expected a URL like http://") as info:
        daemonclient.put("https://example.invalid", src)
    assert info.value.exit_code == 3
    with pytest.raises(LocalIOError, match="cannot read"):
        daemonclient.put("http://127.0.0.1:1", tmp_path / "missing")
