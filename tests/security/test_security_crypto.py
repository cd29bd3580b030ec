"""AES-256-GCM credential encryption."""

from __future__ import annotations

import os

import pytest

from wattline.security.crypto import CredentialError, decrypt_credentials, encrypt_credentials

KEY = os.urandom(32)
CREDS = {"username": "plant-operator", "password": "s3cret-Pässword", "app_id": 12345}


def test_round_trip_and_fresh_nonce():
    a, b = encrypt_credentials(KEY, CREDS), encrypt_credentials(KEY, CREDS)
    assert decrypt_credentials(KEY, a) == CREDS
    assert a != b and a[:12] != b[:12]  # random nonce per call
    assert b"s3cret" not in a and b"plant-operator" not in a


@pytest.mark.parametrize("index", [0, 12, -1])  # nonce, ciphertext, tag
def test_tampering_is_detected(index):
    blob = bytearray(encrypt_credentials(KEY, CREDS))
    blob[index] ^= 0x01
    with pytest.raises(CredentialError, match="tampered"):
        decrypt_credentials(KEY, bytes(blob))


def test_wrong_key_and_wrong_purpose_fail_without_leaking():
    blob = encrypt_credentials(KEY, CREDS)
    other = os.urandom(32)
    with pytest.raises(CredentialError) as info:
        decrypt_credentials(other, blob)
    text = str(info.value) + repr(info.value)
    assert "s3cret" not in text and KEY.hex() not in text and other.hex() not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(CredentialError):
        decrypt_credentials(KEY, blob, associated_data=b"something-else")


def test_bad_inputs():
    with pytest.raises(CredentialError, match="32 bytes"):
        encrypt_credentials(b"short", CREDS)
    with pytest.raises(CredentialError, match="truncated"):
        decrypt_credentials(KEY, b"\x00" * 27)
    with pytest.raises(CredentialError, match="JSON"):
        encrypt_credentials(KEY, {"x": object()})
