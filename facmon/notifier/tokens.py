"""Signed, expiring acknowledge tokens: one tap on a link in an alert acknowledges a work order as its recipient.

A token is `<payload>.<signature>`, both base64url without padding: the payload is
`<work order id>.<expiry, unix seconds>.<recipient id>` and the signature HMAC-SHA256 over the encoded payload with
the API's secret key. Nothing is stored server-side: the link carries who and what, the key proves we wrote it, and
the expiry bounds how long a forwarded message stays useful. The recipient id goes last so it may contain dots.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import math
import secrets
import string
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_TTL",
    "HOW_TO_MAKE_ONE",
    "AckClaim",
    "InsecureSecret",
    "TokenInvalid",
    "check_secret",
    "estimate_secret_bits",
    "issue",
    "load_or_create_secret",
    "verify",
]

# Long enough to cover an escalation ladder and a shift; short enough that an old message is not a standing key.
DEFAULT_TTL = timedelta(hours=12)
MIN_SECRET_BYTES = 32
# What a key must be estimated to hold: as much as HMAC-SHA256 can use against a guesser with every computer there is.
MIN_SECRET_BITS = 128
HOW_TO_MAKE_ONE = "make one with `openssl rand -hex 32` (or `head -c 48 /dev/urandom | base64`)"
_CHARACTER_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, string.punctuation)

Reason = Literal["malformed", "bad_signature", "expired", "wrong_work_order"]


class TokenInvalid(ValueError):
    """The token cannot be honoured; `reason` says why (for the 403 answer and the logs)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason


class InsecureSecret(ValueError):
    """A secret key that is empty, a known default or too short to sign with."""


@dataclass(frozen=True)
class AckClaim:
    work_order_id: int
    recipient_id: str
    expires_at: datetime


def _shortest_period(text: str) -> str:
    """The shortest unit the text repeats ("changemechangeme" -> "changeme"; "abcab" -> "abc"): the rest is no news."""
    for size in range(1, len(text) // 2 + 1):
        if all(text[i] == text[i - size] for i in range(size, len(text))):
            return text[:size]
    return text


def _alphabet_bits(unit: str) -> float:
    """Bits per character if each were drawn at random from the classes the unit uses (hex: 16; base64: 64)."""
    hex_digits = (string.hexdigits.lower(), string.hexdigits.upper())
    if any(all(c in digits for c in unit) for digits in hex_digits):
        size = 16
    else:
        size = sum(len(chars) for chars in _CHARACTER_CLASSES if any(c in chars for c in unit))
        size += len({c for c in unit if not any(c in chars for chars in _CHARACTER_CLASSES)})
    return math.log2(size) if size > 1 else 0.0


def estimate_secret_bits(secret: bytes) -> float:
    """A cautious estimate of the bits of chance in a key: the shortest unit it repeats, each character worth the
    lesser of its alphabet's bits and the unit's measured (Shannon) entropy per character, and characters that
    continue a run or a constant step ("aaaa", "abcd", "1234") worth nothing.

    Made by hand rather than with a password meter (zxcvbn): a key is made by a machine, so what matters is whether
    it looks random, which this decides, and a meter tuned to words people choose would add a dependency for that."""
    unit = _shortest_period(secret.decode("latin-1"))
    if not unit:
        return 0.0
    counts = Counter(unit)
    shannon = -sum(n / len(unit) * math.log2(n / len(unit)) for n in counts.values())
    per_char = min(shannon, _alphabet_bits(unit))
    steps = [ord(b) - ord(a) for a, b in itertools.pairwise(unit)]
    news = 1 + sum(1 for i, step in enumerate(steps) if i == 0 or step != steps[i - 1])
    return max(0.0, news * per_char)


def check_secret(secret: bytes) -> bytes:
    """The key, if it is long and random enough to sign with; else InsecureSecret saying why and how to make one."""
    if len(secret) < MIN_SECRET_BYTES:
        raise InsecureSecret(
            f"the secret key must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}; {HOW_TO_MAKE_ONE}"
        )
    bits = estimate_secret_bits(secret)
    if bits < MIN_SECRET_BITS:
        raise InsecureSecret(
            f"the secret key is too predictable: about {bits:.0f} bits of chance, at least {MIN_SECRET_BITS} needed "
            f"(repeated patterns, runs or few different characters); {HOW_TO_MAKE_ONE}"
        )
    return secret


def load_or_create_secret(configured: str | None, state_dir: Path) -> bytes:
    """The configured key (checked), or else one generated once into the state folder (for the demo and single
    machines: it survives restarts, so links sent before a restart still work)."""
    if configured is not None:
        return check_secret(configured.encode())
    path = state_dir / "secret_key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return check_secret(path.read_text().strip().encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def issue(secret: bytes, work_order_id: int, recipient_id: str, *, now: datetime, ttl: timedelta = DEFAULT_TTL) -> str:
    if work_order_id < 1 or not recipient_id:
        raise ValueError("a token needs a work order id >= 1 and a recipient id")
    expiry = int((now + ttl).timestamp())
    payload = _b64(f"{work_order_id}.{expiry}.{recipient_id}".encode())
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str, *, now: datetime, work_order_id: int | None = None) -> AckClaim:
    """The claim in `token`; raises TokenInvalid. `work_order_id`: the work order the caller expects it for."""
    payload, sep, signature = token.partition(".")
    if not sep or not payload or not signature:
        raise TokenInvalid("malformed", "not a facmon acknowledge token")
    # Signature first, in constant time: nothing of an unsigned payload is parsed or echoed back.
    if not hmac.compare_digest(_sign(secret, payload), signature):
        raise TokenInvalid("bad_signature", "the token's signature does not match (altered, or from another key)")
    try:
        wo_text, expiry_text, recipient_id = _unb64(payload).decode("utf-8").split(".", 2)
        claim = AckClaim(
            work_order_id=int(wo_text),
            recipient_id=recipient_id,
            expires_at=datetime.fromtimestamp(int(expiry_text), UTC),
        )
    except (ValueError, binascii.Error) as exc:  # a signed token we cannot read: a key shared with another format
        raise TokenInvalid("malformed", "the token's content cannot be read") from exc
    if now >= claim.expires_at:
        raise TokenInvalid("expired", f"the link expired at {claim.expires_at.isoformat()}")
    if work_order_id is not None and claim.work_order_id != work_order_id:
        detail = f"the token is for work order {claim.work_order_id}, not {work_order_id}"
        raise TokenInvalid("wrong_work_order", detail)
    return claim
