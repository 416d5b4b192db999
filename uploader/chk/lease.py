"""Lease secret derivation (chk-format §12).

client_renew  = SHA256d(ns(lease_secret) ‖ "allmydata_client_renewal_secret_v1")   (roles swapped)
file_renew    = TH2("allmydata_file_renewal_secret_v1", client_renew, SI)
bucket_renew  = TH2("allmydata_bucket_renewal_secret_v1", file_renew, lease_seed)
and the same for cancel. The bucket secrets are what a server receives.
"""

from __future__ import annotations

from workers.hashes import netstring, sha256d, tagged_pair_hash

_CLIENT_RENEW = b"allmydata_client_renewal_secret_v1"
_CLIENT_CANCEL = b"allmydata_client_cancel_secret_v1"
_FILE_RENEW = b"allmydata_file_renewal_secret_v1"
_FILE_CANCEL = b"allmydata_file_cancel_secret_v1"
_BUCKET_RENEW = b"allmydata_bucket_renewal_secret_v1"
_BUCKET_CANCEL = b"allmydata_bucket_cancel_secret_v1"


def client_renewal_secret(lease_secret: bytes) -> bytes:
    return sha256d(netstring(lease_secret) + _CLIENT_RENEW)


def client_cancel_secret(lease_secret: bytes) -> bytes:
    return sha256d(netstring(lease_secret) + _CLIENT_CANCEL)


def bucket_renewal_secret(lease_secret: bytes, storage_index: bytes, lease_seed: bytes) -> bytes:
    file_secret = tagged_pair_hash(_FILE_RENEW, client_renewal_secret(lease_secret), storage_index)
    return tagged_pair_hash(_BUCKET_RENEW, file_secret, lease_seed)


def bucket_cancel_secret(lease_secret: bytes, storage_index: bytes, lease_seed: bytes) -> bytes:
    file_secret = tagged_pair_hash(_FILE_CANCEL, client_cancel_secret(lease_secret), storage_index)
    return tagged_pair_hash(_BUCKET_CANCEL, file_secret, lease_seed)


def lease_secrets(lease_secret: bytes, storage_index: bytes, lease_seed: bytes) -> tuple[bytes, bytes]:
    """(renew, cancel) secrets for one file on one server: 32 bytes each."""
    return (
        bucket_renewal_secret(lease_secret, storage_index, lease_seed),
        bucket_cancel_secret(lease_secret, storage_index, lease_seed),
    )
