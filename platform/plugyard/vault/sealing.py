"""AES-256-GCM sealing of secret values at rest: pure functions, no I/O.

A sealed value is `nonce (12 bytes) || ciphertext || tag`. The associated data binds it to its
row (tenant, scope, name), so a ciphertext copied into another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class SealingError(Exception):
    """A value cannot be sealed or opened (no key, another key, tampered ciphertext)."""


def parse_key(text: str) -> bytes:
    """Decode a `PLUGYARD_SECRETS_KEY` value (standard base64 of exactly 32 bytes).

    Raises:
        ValueError: not base64 or not 32 bytes.
    """
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ValueError("PLUGYARD_SECRETS_KEY must be base64") from None
    if len(key) != 32:
        raise ValueError(f"PLUGYARD_SECRETS_KEY must decode to 32 bytes, not {len(key)}")
    return key


def generate_key() -> str:
    """A fresh key in the `PLUGYARD_SECRETS_KEY` format."""
    return base64.b64encode(os.urandom(32)).decode()


def associated_data(tenant_id: object, scope_id: object, name: str) -> bytes:
    """The associated data of one secret row: tenant, scope (namespace or plugin id) and name."""
    return f"plugyard-secret:v1:{tenant_id}:{scope_id}:{name}".encode()


class Sealer:
    """Seals and opens secret values with one key; `key_id` names the key without revealing it."""

    def __init__(self, key: bytes) -> None:
        """Hold the AES-256-GCM key."""
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"plugyard-key-id:" + key).hexdigest()[:16]

    @classmethod
    def from_setting(cls, value: str | None) -> Sealer | None:
        """A sealer for the configured key, or None when no key is configured."""
        return None if not value else cls(parse_key(value))

    def seal(self, plaintext: str, aad: bytes) -> bytes:
        """Encrypt a value with a fresh random nonce."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), aad)

    def open(self, sealed: bytes, aad: bytes, *, key_id: str) -> str:
        """Decrypt a sealed value.

        Raises:
            SealingError: sealed under another key, or the ciphertext or its row was tampered with.
        """
        if key_id != self.key_id:
            raise SealingError(f"sealed under key {key_id}, the configured key is {self.key_id}")
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad).decode()
        except InvalidTag:
            raise SealingError("the ciphertext does not authenticate") from None
