"""Password hashing, tokens and signed sessions."""

from __future__ import annotations

import pytest

from detector.auth import (
    SessionCodec,
    hash_password,
    hash_token,
    new_token,
    role_at_least,
    verify_password,
)
from detector.review.store import _DUMMY_HASH


def test_passwords_are_salted_scrypt_hashes():
    h1, h2 = hash_password("s3cret"), hash_password("s3cret")
    assert h1 != h2 and h1.startswith("scrypt$") and "s3cret" not in h1
    assert verify_password("s3cret", h1) and verify_password("s3cret", h2)
    assert not verify_password("s3cret ", h1)
    assert not verify_password("s3cret", "md5$whatever")
    assert not verify_password("s3cret", "garbage")
    # The dummy hash used against unknown users parses, so their check costs the same.
    assert verify_password("x", _DUMMY_HASH) is False


def test_tokens_are_random_and_stored_hashed():
    a, b = new_token(), new_token()
    assert a != b and len(a) > 40
    assert hash_token(a) == hash_token(a) != hash_token(b)
    assert a not in hash_token(a)


def test_session_cookies_are_signed_and_expire():
    codec = SessionCodec("k1")
    value = codec.dumps({"u": "ann", "c": "csrf"})
    assert codec.loads(value) == {"u": "ann", "c": "csrf"}
    assert SessionCodec("k2").loads(value) is None
    assert codec.loads(value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]) is None
    assert SessionCodec("k1", max_age_s=-1).loads(value) is None


@pytest.mark.parametrize(("role", "needed", "ok"), [
    ("admin", "lead", True), ("lead", "lead", True), ("analyst", "lead", False), ("checkout", "analyst", False),
])
def test_role_order(role, needed, ok):
    assert role_at_least(role, needed) is ok
