"""Password hashing with scrypt from the standard library (no I/O; CPU-bound, call in a thread).

The stored form is `scrypt$N$r$p$salt$hash` (salt and hash in base64), so the cost can be raised
later without breaking existing hashes: `needs_rehash` tells when a stored hash is weaker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# N=2**15, r=8, p=1: 32 MiB per hash (docs/portal.md has the measured time). OWASP lists N=2**17 or
# N=2**15 with p=3 as equivalents; the stored parameters let a later release raise the cost.
COST_N = 2**15
BLOCK_R = 8
PARALLEL_P = 1
_KEY_LEN = 32
_MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, *, n: int = COST_N) -> str:
    """The stored form of a password (a fresh random salt each time)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=BLOCK_R, p=PARALLEL_P, maxmem=_MAXMEM, dklen=_KEY_LEN
    )
    return f"scrypt${n}${BLOCK_R}${PARALLEL_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        key = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(base64.b64decode(expected)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, base64.b64decode(expected))


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash uses weaker parameters than the current ones."""
    parts = stored.split("$")
    return len(parts) != 6 or parts[0] != "scrypt" or int(parts[1]) < COST_N or int(parts[2]) < BLOCK_R


def check_strength(password: str) -> str | None:
    """A message saying why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    if len(set(password)) < 4:
        return "use more than a few different characters"
    return None
