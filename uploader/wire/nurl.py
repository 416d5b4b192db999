"""NURLs and SPKI hashes (gbs-http-protocol §2).

``pb://<spki-hash>@<host>:<port>/<swissnum>#v=1`` where spki-hash is
``base64url_nopad(SHA256(DER(SubjectPublicKeyInfo)))`` — 43 characters. The client trusts a
server only when the certificate it shows has that SPKI hash. An IPv6 host is written in brackets
(``@[::1]:3456``, as in a URL, RFC 3986 §3.2.2); ``Nurl.host`` holds it without them, the form
sockets take.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from workers.errors import FormatError

# cryptography (~40 ms to import) is loaded by the functions that read certificates, so that
# parsing a NURL (every configuration load does) stays cheap.

_NURL = re.compile(
    r"pb://(?P<spki>[A-Za-z0-9_-]{43})@(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:/@\s\[\]]+))"
    r":(?P<port>[0-9]{1,5})/(?P<swissnum>[^/#?\s]+)#v=1"
)


class NurlError(FormatError):
    """Text that is not a usable GBS NURL."""


@dataclass(frozen=True, slots=True)
class Nurl:
    spki_hash: str  # base64url, no padding, 43 characters
    host: str  # an IPv6 address without brackets (``::1``): what sockets take
    port: int
    swissnum: str

    def __str__(self) -> str:
        return f"pb://{self.spki_hash}@{self.address}/{self.swissnum}#v=1"

    def __repr__(self) -> str:  # the swissnum is a secret
        return f"Nurl({self.address}, spki={self.spki_hash[:8]}…)"

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 host in brackets (``[::1]:3456``): unbracketed, its colons
        would run into the port's, and parse_nurl would reject the NURL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.address}"

    @property
    def spki_digest(self) -> bytes:
        return base64.urlsafe_b64decode(self.spki_hash + "=")


def parse_nurl(text: str) -> Nurl:
    """Parse a ``pb://…#v=1`` NURL; raise NurlError saying what was expected."""
    m = _NURL.fullmatch(text.strip())
    if not m:
        raise NurlError(
            "expected a NURL like pb://<43-char SPKI hash>@<host>:<port>/<swissnum>#v=1, "
            f"got text starting {text[:12]!r} ({len(text)} characters)"
        )
    port = int(m["port"])
    if not 0 < port < 65536:
        raise NurlError(f"NURL port must be 1..65535, got {port}")
    return Nurl(m["spki"], m["ipv6"] or m["host"], port, m["swissnum"])


def spki_hash_of_der_spki(spki_der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(spki_der).digest()).decode("ascii").rstrip("=")


def spki_hash_of_cert(cert_der: bytes) -> str:
    """The NURL hash of a DER certificate's public key."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        cert = x509.load_der_x509_certificate(cert_der)
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm) as exc:  # a key type cryptography cannot load, too
        raise NurlError(f"server certificate is not valid DER X.509: {exc}") from None
    return spki_hash_of_der_spki(spki)


def spki_hash_of_pem_cert(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise NurlError(f"certificate is not valid PEM X.509: {exc}") from None
    return spki_hash_of_cert(cert.public_bytes(Encoding.DER))


def lease_seed_of_cert(cert_der: bytes) -> bytes:
    """The server's lease seed ("tub id"): SHA-1 of its certificate's DER (CONVENTIONS.md)."""
    return hashlib.sha1(cert_der).digest()
