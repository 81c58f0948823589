"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended option)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
MIN_PASSWORD_LENGTH = 10

# Verifying against this when the user does not exist takes as long as a real check, so the answer's timing does
# not tell which usernames exist.
_DUMMY_HASH = _HASHER.hash("facmon-no-such-user")


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("a password needs more than three different characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)
