"""A tiny TLS server (threads, blocking sockets) that records what clients send and answers with
canned HTTP responses: for client tests that a real storage server cannot stage (bad bodies,
silence, resets) and for proving that a refused server never saw a request."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from uploader.wire.nurl import spki_hash_of_pem_cert

SWISSNUM = "fakeswissnumthatmustnotleak2345"


def make_cert_pem(*, expired: bool = True, kind: str = "rsa") -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM): self-signed and, by default, expired a year ago."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some other name")])
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=730 if expired else 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365 if expired else 3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Request:
    head: bytes  # request line and headers, without the final blank line
    body: bytes

    @property
    def line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode()

    def header_values(self, name: str) -> list[str]:
        out = []
        for raw in self.head.split(b"\r\n")[1:]:
            key, _, value = raw.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                out.append(value.strip())
        return out


# A handler gets the request and returns the raw response bytes; None: never answer (hang);
# b"": close the connection without answering.
Handler = Callable[[Request], bytes | None]


def http_response(status: int, body: bytes = b"", content_type: str | None = None, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return (head + extra + "\r\n").encode() + body


@dataclass
class FakeServer:
    handler: Handler
    directory: Path
    expired: bool = True
    stall: Callable[[Request], bool] | None = None  # True: stop reading before this request's body
    port: int = 0
    handshakes: int = 0  # TLS handshakes that completed
    received: bytearray = field(default_factory=bytearray)  # every application byte, all connections
    requests: list[Request] = field(default_factory=list)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _conns: list[socket.socket] = field(default_factory=list)

    def start(self) -> FakeServer:
        key_pem, cert_pem = make_cert_pem(expired=self.expired)
        pem = self.directory / "fake.pem"
        pem.write_bytes(key_pem + cert_pem)
        self.spki_hash = spki_hash_of_pem_cert(cert_pem)
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(str(pem))
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def nurl(self, spki_hash: str | None = None) -> str:
        return f"pb://{spki_hash or self.spki_hash}@127.0.0.1:{self.port}/{SWISSNUM}#v=1"

    def stop(self) -> None:
        self._stop.set()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for t in self._threads:
            t.join(5)
        if self._sock is not None:
            self._sock.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                raw, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(raw)
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            conn = self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return
        self.handshakes += 1
        self._conns.append(conn)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    self.received += data
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                request = Request(head, b"")
                if self.stall is not None and self.stall(request):
                    self.requests.append(request)
                    self._stop.wait(30)
                    return
                length = int((request.header_values("Content-Length") or ["0"])[0])
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    self.received += data
                    buf += data
                request.body, buf = buf[:length], buf[length:]
                self.requests.append(request)
                answer = self.handler(request)
                if answer is None:
                    self._stop.wait(30)
                    return
                if answer == b"":
                    return
                conn.sendall(answer)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()
