"""A storage server's identity, made at first start and kept in its directory.

| file                  | mode | content                                                          |
|-----------------------|------|------------------------------------------------------------------|
| ``private/node.pem``  | 0600 | RSA-2048 private key (PKCS#8 PEM), then its self-signed X.509   |
|                       |      | certificate (PEM) — the layout of a Tahoe node's ``node.pem``    |
| ``private/swissnum``  | 0600 | the swissnum: 32 characters of Tahoe base32 (20 random bytes)    |
| ``nurl``              | 0600 | ``pb://<spki-hash>@<host>:<port>/<swissnum>#v=1`` and a newline   |

The NURL pins the SPKI hash (gbs-http-protocol §2). Clients that know a server only by NURL use
SHA-1 of the certificate's DER as its lease seed ("tub id", CONVENTIONS.md) and the SPKI digest
as its permutation seed; both follow from this certificate, which is never re-issued.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from uploader.storage.errors import StorageError
from uploader.wire.nurl import Nurl, lease_seed_of_cert, spki_hash_of_cert
from workers.base32 import b32encode

CERT_FILE = Path("private") / "node.pem"
SWISSNUM_FILE = Path("private") / "swissnum"
NURL_FILE = Path("nurl")
_VALID_DAYS = 365 * 50


@dataclass(frozen=True, slots=True)
class Identity:
    pem_path: Path  # key and certificate, for ssl.SSLContext.load_cert_chain
    cert_der: bytes
    swissnum: str

    @property
    def spki_hash(self) -> str:
        return spki_hash_of_cert(self.cert_der)

    @property
    def lease_seed(self) -> bytes:
        """SHA-1 of the certificate DER: the 20-byte "tub id" (CONVENTIONS.md)."""
        return lease_seed_of_cert(self.cert_der)

    def nurl(self, host: str, port: int) -> Nurl:
        return Nurl(self.spki_hash, host, port, self.swissnum)

    def __repr__(self) -> str:  # the swissnum is a secret
        return f"Identity(spki={self.spki_hash[:8]}…)"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def make_certificate() -> bytes:
    """A new RSA-2048 key and a self-signed certificate for it: PEM, key first."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "uploader storage server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def load_or_create_identity(directory: Path) -> Identity:
    """The server's identity in ``directory``: made at first start, reused afterwards."""
    pem_path = directory / CERT_FILE
    swiss_path = directory / SWISSNUM_FILE
    try:
        if not pem_path.exists():
            _write_private(pem_path, make_certificate())
        if not swiss_path.exists():
            _write_private(swiss_path, (b32encode(os.urandom(20)) + "\n").encode("ascii"))
        pem = pem_path.read_bytes()
        swissnum = swiss_path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise StorageError(
            f"cannot read or create the server identity in {directory}: {exc.strerror}"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise StorageError(f"{pem_path} holds no PEM certificate") from None
    if not swissnum or not swissnum.isalnum():
        raise StorageError(f"{swiss_path} must hold one alphanumeric swissnum")
    return Identity(pem_path, cert.public_bytes(serialization.Encoding.DER), swissnum)


def read_identity(directory: Path) -> Identity:
    """An existing server's identity (for ``grid``); StorageError if it was never made."""
    if not (directory / CERT_FILE).exists() or not (directory / SWISSNUM_FILE).exists():
        raise StorageError(f"{directory} has no server identity yet (start the server once)")
    return load_or_create_identity(directory)


def write_nurl(directory: Path, nurl: Nurl) -> Path:
    """Write ``DIR/nurl`` atomically (a reader never sees half a NURL), owner-only: it holds the swissnum."""
    path = directory / NURL_FILE
    tmp = path.with_name("nurl.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{nurl}\n".encode("ascii"))
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


__all__ = ["Identity", "load_or_create_identity", "make_certificate", "read_identity", "write_nurl"]
