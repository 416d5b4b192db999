"""Lease secret derivation (chk-format §12), with Tahoe's renew-secret vectors."""

from __future__ import annotations

import pytest

from uploader.chk.lease import (
    bucket_cancel_secret,
    bucket_renewal_secret,
    client_cancel_secret,
    client_renewal_secret,
    lease_secrets,
)
from workers.base32 import b32decode, b32encode
from workers.hashes import sha256d, tagged_hash

SECRET_A = "boity2cdh7jvl3ltaeebuiobbspjmbuopnwbde2yeh4k6x7jioga"
SECRET_B = "vacviff4xfqxsbp64tdr3frg3xnkcsuwt5jpyat2qxcm44bwu75a"
SI_1 = "vrttmwlicrzbt7gh5qsooogr7u"
SI_2 = "75gmmfts772ww4beiewc234o5e"
TUB_1 = "v67jiisoty6ooyxlql5fuucitqiok2ic"
TUB_2 = "lh5fhobkjrmkqjmkxhy3yaonoociggpz"

VECTORS = [
    (SECRET_A, SI_1, TUB_1, "osd6wmc5vz4g3ukg64sitmzlfiaaordutrez7oxdp5kkze7zp5zq"),
    (SECRET_A, SI_2, TUB_1, "35itmusj7qm2pfimh62snbyxp3imreofhx4djr7i2fweta75szda"),
    (SECRET_A, SI_2, TUB_2, "srrlruge47ws3lm53vgdxprgqb6bz7cdblnuovdgtfkqrygrjm4q"),
    (SECRET_B, SI_2, TUB_2, "b4jledjiqjqekbm2erekzqumqzblegxi23i5ojva7g7xmqqnl5pq"),
]


@pytest.mark.parametrize(("secret", "si", "tubid", "expected"), VECTORS)
def test_renewal_secret_vectors(secret: str, si: str, tubid: str, expected: str) -> None:
    lease_secret, storage_index, seed = b32decode(secret, 32), b32decode(si, 16), b32decode(tubid, 20)
    renew = bucket_renewal_secret(lease_secret, storage_index, seed)
    assert b32encode(renew) == expected
    assert lease_secrets(lease_secret, storage_index, seed)[0] == renew


def test_client_secrets_swap_the_tag_and_value_roles() -> None:
    secret = b32decode(SECRET_A, 32)
    renew = client_renewal_secret(secret)
    assert renew == sha256d(b"32:" + secret + b"," + b"allmydata_client_renewal_secret_v1")
    assert renew != tagged_hash(b"allmydata_client_renewal_secret_v1", secret)
    assert client_cancel_secret(secret) == sha256d(b"32:" + secret + b",allmydata_client_cancel_secret_v1")


def test_cancel_secrets_differ_from_renew_secrets_and_from_each_other() -> None:
    secret, si, seed = b32decode(SECRET_A, 32), b32decode(SI_1, 16), b32decode(TUB_1, 20)
    renew, cancel = lease_secrets(secret, si, seed)
    assert len(renew) == len(cancel) == 32
    assert cancel == bucket_cancel_secret(secret, si, seed)
    assert cancel != renew
    assert bucket_cancel_secret(secret, b32decode(SI_2, 16), seed) != cancel
    assert bucket_cancel_secret(secret, si, b32decode(TUB_2, 20)) != cancel
    assert bucket_cancel_secret(b32decode(SECRET_B, 32), si, seed) != cancel
