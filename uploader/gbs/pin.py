"""SPKI pinning of a GBS server's TLS certificate (gbs-http-protocol §1–§2, CONVENTIONS "Server identity").

A NURL names the server's public key, not its certificate: the hash is
``base64url(SHA256(DER(SubjectPublicKeyInfo)))``. aiohttp's ``Fingerprint`` pins the SHA-256 of the
whole certificate, so ``SpkiPin`` subclasses it and overrides ``check``. aiohttp calls ``check`` on
every new connection right after the TLS handshake and before it writes the first request on it;
when ``check`` raises, the connection is closed unused. So no byte of HTTP (and no swissnum) ever
reaches a server whose key is not the pinned one. Certificates may be self-signed, expired or not
yet valid and the host name is not checked (the context aiohttp uses for a fingerprint does no
verification of its own); only the key matters.

The first matching certificate's DER is kept: its SHA-1 is the server's lease seed ("tub id").

The pin also remembers the connections it saw, so that ``abort_all`` can end them when the client
closes: a connection aiohttp closed after a timeout or a cancellation is still in TLS's graceful
shutdown, which waits up to 30 s for a silent peer's ``close_notify``.
"""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import Fingerprint, ServerFingerprintMismatch

from uploader.wire.nurl import NurlError, spki_hash_of_cert


class SpkiPinMismatch(ServerFingerprintMismatch):
    """The server's certificate does not carry the pinned public key (``got`` is empty when the
    connection showed no certificate at all)."""


class SpkiPin(Fingerprint):
    """Accept a TLS connection only when the peer certificate's SPKI hash is ``spki_hash``."""

    def __init__(self, spki_hash: str, spki_digest: bytes) -> None:
        super().__init__(spki_digest)  # 32 bytes: aiohttp's own checks pass, then ``check`` is ours
        self.spki_hash = spki_hash
        self.cert_der: bytes | None = None  # the first certificate that matched
        self._transports: list[asyncio.Transport] = []

    def check(self, transport: asyncio.Transport) -> None:
        self._forget_closing()
        self._transports.append(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        got = ""
        if der:
            try:
                got = spki_hash_of_cert(der)
            except NurlError:
                got = ""
        if not der or not hmac.compare_digest(got.encode("ascii"), self.spki_hash.encode("ascii")):
            peer = transport.get_extra_info("peername") or ("?", 0)
            raise SpkiPinMismatch(self.spki_hash.encode(), got.encode(), str(peer[0]), int(peer[1]))
        if self.cert_der is None:
            self.cert_der = der

    def abort_all(self) -> None:
        """Abort every connection this pin accepted or refused that is still open or closing."""
        transports, self._transports = self._transports, []
        for transport in transports:
            transport.abort()

    def _forget_closing(self) -> None:
        # A closing connection is never used again; aborting it ends a graceful TLS shutdown early.
        keep = []
        for transport in self._transports:
            if transport.is_closing():
                transport.abort()
            else:
                keep.append(transport)
        self._transports = keep
