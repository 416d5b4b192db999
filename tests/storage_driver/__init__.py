"""Test driver for our storage server: run it as a real process, talk GBS to it over real TLS.

``ServerProcess`` starts ``python -m uploader storage`` (port 0 unless told otherwise) and reads
its NURL from stdout. ``GbsClient`` is a deliberately plain, synchronous client built on
``http.client``: it sends exactly the headers a test gives it (repeated headers included), pins
the SPKI hash like a real client, and returns status, headers and body without interpretation,
so tests can send malformed requests as easily as good ones.
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from uploader.wire import protocol as wire
from uploader.wire.nurl import Nurl, parse_nurl, spki_hash_of_cert

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class GbsClient:
    def __init__(self, nurl: Nurl, timeout_s: float = 30.0) -> None:
        self.nurl = nurl
        self.timeout_s = timeout_s
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._ctx.check_hostname = False
        self._ctx.verify_mode = ssl.CERT_NONE  # trust is the SPKI pin, checked in connect()

    def connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(
            self.nurl.host, self.nurl.port, timeout=self.timeout_s, context=self._ctx
        )
        conn.connect()
        assert isinstance(conn.sock, ssl.SSLSocket)
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None and spki_hash_of_cert(der) == self.nurl.spki_hash, "SPKI pin mismatch"
        return conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        secrets: Mapping[wire.Secret, bytes] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        auth: str | None = "",
        accept: str | None = wire.CBOR_MIME_TYPE,
        content_type: str | None = None,
    ) -> Response:
        """One request on a fresh connection. ``auth=""`` sends the right Authorization, None none."""
        conn = self.connect()
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            if auth == "":
                conn.putheader("Authorization", wire.build_authorization(self.nurl.swissnum))
            elif auth is not None:
                conn.putheader("Authorization", auth)
            if accept is not None:
                conn.putheader("Accept", accept)
            if content_type is not None:
                conn.putheader("Content-Type", content_type)
            for name, value in wire.build_secret_headers(secrets or {}):
                conn.putheader(name, value)
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None and not any(
                n.lower() in ("content-length", "transfer-encoding") for n, _ in headers
            ):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    # --- the protocol's calls, used by the happy-path parts of tests ----------------------------

    def version(self) -> wire.VersionInfo:
        resp = self.request("GET", wire.version_path())
        assert resp.status == 200, resp
        return wire.parse_version(resp.body)

    def allocate(
        self,
        si: bytes,
        shnums: Sequence[int],
        size: int,
        upload: bytes,
        renew: bytes = b"r" * 32,
        cancel: bytes = b"c" * 32,
    ) -> wire.AllocateResponse:
        resp = self.request(
            "POST",
            wire.allocate_path(si),
            wire.build_allocate_request(shnums, size),
            secrets={
                wire.Secret.LEASE_RENEW: renew,
                wire.Secret.LEASE_CANCEL: cancel,
                wire.Secret.UPLOAD: upload,
            },
            content_type=wire.CBOR_MIME_TYPE,
        )
        assert resp.status == 200, resp
        return wire.parse_allocate_response(resp.body)

    def write(self, si: bytes, shnum: int, upload: bytes, offset: int, data: bytes) -> Response:
        return self.request(
            "PATCH",
            wire.share_path(si, shnum),
            data,
            secrets={wire.Secret.UPLOAD: upload},
            headers=[("Content-Range", wire.format_content_range(offset, offset + len(data) - 1))],
        )

    def read(self, si: bytes, shnum: int, first: int, last: int) -> Response:
        return self.request(
            "GET", wire.share_path(si, shnum), headers=[("Range", wire.format_range(first, last))]
        )

    def list_shares(self, si: bytes) -> frozenset[int]:
        resp = self.request("GET", wire.list_shares_path(si))
        assert resp.status == 200, resp
        return wire.parse_share_list(resp.body)

    def upload_share(self, si: bytes, shnum: int, upload: bytes, data: bytes, chunk: int = 1 << 20) -> None:
        for off in range(0, len(data), chunk):
            resp = self.write(si, shnum, upload, off, data[off : off + chunk])
            assert resp.status in (200, 201), resp


class ServerProcess:
    """``python -m uploader storage --dir DIR`` as a child process (stopped by ``stop``/``kill``)."""

    def __init__(self, directory: Path, *args: str, listen: str | None = "127.0.0.1:0") -> None:
        self.directory = directory
        argv = [sys.executable, "-m", "uploader", "storage", "--dir", str(directory), *args]
        if listen is not None:
            argv += ["--listen", listen]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log = (directory.parent / f"{directory.name}.log").open("ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=REPO
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode("ascii")
        if not line:
            self.proc.wait()
            self.proc.stdout.close()
            self.log.close()
            raise RuntimeError(f"storage server exited ({self.proc.returncode}); see {self.log.name}")
        self.nurl = parse_nurl(line)
        self.client = GbsClient(self.nurl)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        return code

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)
