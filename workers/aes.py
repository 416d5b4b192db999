"""AES-128-CTR over the whole file, startable at any byte offset (chk-format §6).

One keystream for the whole file: a 128-bit big-endian counter starting at 0, one block per 16
bytes. To start at ``offset`` the counter begins at ``offset // 16`` and the first
``offset % 16`` keystream bytes are skipped, so any worker can encrypt any segment alone.
"""

from __future__ import annotations

from Crypto.Cipher import AES

from workers.hashes import BytesLike

_ZEROS = bytes(16)


def aes_ctr(key: bytes, offset: int, data: BytesLike) -> bytes:
    """Encrypt (or decrypt: CTR is its own inverse) ``data`` found at byte ``offset`` of the file."""
    cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=offset // 16)
    skip = offset % 16
    if skip:
        cipher.encrypt(_ZEROS[:skip])
    out: bytes = cipher.encrypt(data)
    return out
