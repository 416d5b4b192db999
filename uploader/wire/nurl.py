"""NURLs and SPKI hashes (gbs-http-protocol §2).

``pb://<spki-hash>@<host>:<port>/<swissnum>#v=1`` where spki-hash is
``base64url_nopad(SHA256(DER(SubjectPublicKeyInfo)))`` — 43 characters. The client trusts a
server only when the certificate it shows has that SPKI hash. An IPv6 host is written in brackets
(``@[::1]:3456``, as in a URL, RFC 3986 §3.2.2); ``Nurl.host`` holds it without them, the form
sockets take.

What parse_nurl accepts is what a NURL can carry to a socket and an HTTP request:

| part     | accepted                                                                        |
|----------|---------------------------------------------------------------------------------|
| host     | ``[IPv6]`` (checked by ``ipaddress``), dotted-quad IPv4, or a DNS name: ASCII   |
|          | labels of letters, digits, ``-`` (not first or last) and ``_`` (as container    |
|          | names have), 1-63 characters each, 253 in all, one trailing dot allowed         |
| swissnum | ASCII characters a URL path segment holds as they are (RFC 3986 ``pchar`` less  |
|          | ``%``-escapes); Tahoe's are base32 (a-z, 2-7). It travels as ASCII, base64'd,   |
|          | in ``Authorization``, and a ``%xx`` would be decoded by Tahoe's client, not ours |
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from workers.errors import FormatError

# cryptography (~40 ms to import) is loaded by the functions that read certificates, so that
# parsing a NURL (every configuration load does) stays cheap.

_NURL = re.compile(
    r"pb://(?P<spki>[A-Za-z0-9_-]{43})@(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:/@\s\[\]]+))"
    r":(?P<port>[0-9]{1,5})/(?P<swissnum>[^/#?\s]+)#v=1"
)
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_SWISSNUM = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")


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
    host = _check_ipv6(m["ipv6"]) if m["ipv6"] is not None else _check_host(m["host"])
    if not _SWISSNUM.fullmatch(m["swissnum"]):  # not shown: the swissnum is a secret
        raise NurlError(
            f"NURL swissnum ({len(m['swissnum'])} characters) must be ASCII letters, digits or "
            "URL path punctuation (Tahoe's are base32: a-z, 2-7); the swissnum is a secret and is not shown"
        )
    return Nurl(m["spki"], host, port, m["swissnum"])


def check_host(text: str) -> str:
    """A host as a NURL's will be parsed (``[::1]`` or ``::1``, IPv4, DNS name), without brackets;
    NurlError otherwise. For what a server writes into its own NURL."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    return _check_ipv6(bare) if ":" in bare else _check_host(bare)


def _check_ipv6(text: str) -> str:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        raise NurlError(
            f"NURL host {f'[{text[:60]}]'!r} is not an IPv6 address; expected e.g. [::1]"
        ) from None
    if "%" in text:  # a zone (fe80::1%eth0): in a URL it would be written %25eth0, and is local only
        raise NurlError(
            f"NURL host {f'[{text[:60]}]'!r} has a zone index; expected an IPv6 address without one"
        )
    return text


def _check_host(host: str) -> str:
    """A dotted-quad IPv4 address or an ASCII DNS name (see the module docstring)."""
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    # Digits in the last label make an IPv4 address, as URLs read it (and no DNS name is all digits).
    if labels[-1].isascii() and labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise NurlError(f"NURL host {host[:60]!r} is not an IPv4 address (four numbers 0-255)") from None
        return host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise NurlError(
            f"NURL host {host[:60]!r} is not a host name: expected an IPv4 address, [IPv6] in brackets, "
            "or a DNS name of ASCII letters, digits, '-' and '_' in dot-separated labels of 1-63 characters"
        )
    return host


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
