"""argon2id password hashes and the role hierarchy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from wattline.security.passwords import hash_password, needs_rehash, verify_password
from wattline.security.roles import RoleError, role_at_least, validate_role


def test_hash_and_verify():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$") and "correct horse" not in h
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "correct horsE")
    assert hash_password("correct horse") != h  # salted
    assert not verify_password("not-a-hash", "correct horse")
    assert not needs_rehash(h)


def test_weak_parameters_need_rehash():
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse")
    assert verify_password(weak, "correct horse")
    assert needs_rehash(weak)


@pytest.mark.parametrize("actual,required,expected", [
    ("superadmin", "admin", True), ("admin", "admin", True), ("user", "admin", False),
    ("viewer", "viewer", True), ("viewer", "user", False), ("admin", "superadmin", False),
    ("cron", "viewer", False), ("root", "viewer", False),
])
def test_role_at_least(actual, required, expected):
    assert role_at_least(actual, required) is expected


def test_validate_role():
    assert validate_role("admin") == "admin"
    with pytest.raises(RoleError, match="superadmin, admin, user, viewer"):
        validate_role("Admin")
    with pytest.raises(RoleError):
        role_at_least("admin", "owner")
