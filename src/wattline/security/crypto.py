"""Vendor credentials encrypted at rest with AES-256-GCM.

Blob layout: 12-byte random nonce || ciphertext+16-byte tag. The associated data
binds a blob to its purpose, so a blob cannot be replayed as another kind of secret.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
DEFAULT_AAD = b"wattline-vendor-credentials"


class CredentialError(Exception):
    """Credentials could not be encrypted or decrypted. Never carries secrets."""


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise CredentialError("encryption key must be exactly 32 bytes (AES-256)")
    return AESGCM(bytes(key))


def encrypt_credentials(key: bytes, creds: dict, *, associated_data: bytes = DEFAULT_AAD) -> bytes:
    """Encrypt a JSON-serializable dict; a fresh random nonce every call."""
    if not isinstance(creds, dict):
        raise CredentialError("credentials must be a dict")
    try:
        plaintext = json.dumps(creds, sort_keys=True, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        # the exception text could quote a value: do not chain it
        raise CredentialError("credentials must be JSON-serializable") from None
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _cipher(key).encrypt(nonce, plaintext, associated_data)


def decrypt_credentials(key: bytes, blob: bytes, *, associated_data: bytes = DEFAULT_AAD) -> dict:
    """Decrypt a blob from encrypt_credentials; CredentialError if tampered or wrong key."""
    cipher = _cipher(key)
    blob = bytes(blob)
    if len(blob) < NONCE_BYTES + 16:
        raise CredentialError("encrypted credentials are truncated")
    try:
        plaintext = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise CredentialError("encrypted credentials failed authentication (tampered, or wrong key)") from None
    try:
        creds = json.loads(plaintext)
    except ValueError:
        raise CredentialError("decrypted credentials are not valid JSON") from None
    if not isinstance(creds, dict):
        raise CredentialError("decrypted credentials are not an object")
    return creds
