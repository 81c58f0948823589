"""Acknowledge tokens: issued, verified, and refused when altered, expired, for another work order or key."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from facmon.kernel.clock import FakeClock
from facmon.notifier.tokens import (
    InsecureSecret,
    TokenInvalid,
    check_secret,
    estimate_secret_bits,
    issue,
    load_or_create_secret,
    verify,
)
from tests.notifier.support import NOW

KEY = b"k" * 32


def test_round_trip_and_url_safe() -> None:
    token = issue(KEY, 42, "li.ming/2", now=NOW, ttl=timedelta(minutes=30))
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    claim = verify(KEY, token, now=NOW + timedelta(minutes=29, seconds=59), work_order_id=42)
    assert (claim.work_order_id, claim.recipient_id, claim.expires_at) == (42, "li.ming/2", NOW + timedelta(minutes=30))


def _swap_payload(token: str, text: str) -> str:
    _, _, signature = token.partition(".")
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode() + "." + signature


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: _swap_payload(t, "43.9999999999.li"), "bad_signature"),  # another work order, longer life
        (lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), "bad_signature"),
        (lambda t: t.replace(".", ""), "malformed"),
        (lambda t: "." + t.partition(".")[2], "malformed"),
        (lambda t: "", "malformed"),
    ],
)
def test_tampering_is_refused(mangle: object, reason: str) -> None:
    token = issue(KEY, 42, "li", now=NOW)
    assert callable(mangle)
    with pytest.raises(TokenInvalid) as caught:
        verify(KEY, mangle(token), now=NOW)
    assert caught.value.reason == reason


def test_another_key_is_refused() -> None:
    token = issue(KEY, 42, "li", now=NOW)
    with pytest.raises(TokenInvalid, match="signature") as caught:
        verify(b"x" * 32, token, now=NOW)
    assert caught.value.reason == "bad_signature"


def test_expiry_follows_the_injected_clock() -> None:
    clock = FakeClock(NOW)
    token = issue(KEY, 42, "li", now=clock.now(), ttl=timedelta(hours=1))
    clock.advance(timedelta(minutes=59))
    verify(KEY, token, now=clock.now())
    clock.advance(timedelta(minutes=1))
    with pytest.raises(TokenInvalid) as caught:
        verify(KEY, token, now=clock.now())
    assert caught.value.reason == "expired"


def test_wrong_work_order_is_refused() -> None:
    token = issue(KEY, 42, "li", now=NOW)
    with pytest.raises(TokenInvalid) as caught:
        verify(KEY, token, now=NOW, work_order_id=41)
    assert caught.value.reason == "wrong_work_order"


@pytest.mark.parametrize(
    "secret",
    [
        b"",
        b"changeme",
        b"short-but-not-default",
        b"changeme" * 4,
        b"changemechangeme" * 4,
        b"a" * 32,
        b"a" * 200,
        b"abcdefghijklmnopqrstuvwxyz0123456789",  # a run
        b"k" * 10 + b"0123456789abcdefghijklmnopqrstuvwxyz",
        b"0123456789" * 8,
        b"ab" * 40,
        b"a-test-key-of-at-least-32-bytes!!",  # few different characters for its length
        bytes.fromhex("00" * 40),
        b"0f" * 16,  # 32 hex digits that repeat
    ],
)
def test_weak_secrets_are_refused_saying_how_to_make_a_good_one(secret: bytes) -> None:
    with pytest.raises(InsecureSecret) as caught:
        check_secret(secret)
    assert "openssl rand -hex 32" in str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_hex(32).encode(),  # openssl rand -hex 32
        lambda: secrets.token_hex(32).upper().encode(),
        lambda: base64.b64encode(os.urandom(48)),  # head -c 48 /dev/urandom | base64
        lambda: base64.b64encode(os.urandom(32)),
        lambda: secrets.token_urlsafe(48).encode(),  # the key the demo generates
        lambda: secrets.token_urlsafe(32).encode(),
    ],
)
def test_random_keys_made_as_documented_pass(make: Callable[[], bytes]) -> None:
    for _ in range(200):  # random each time: every one of many must pass, not just a lucky draw
        key = make()
        assert check_secret(key) == key, estimate_secret_bits(key)


def test_the_estimate_counts_what_is_new() -> None:
    assert estimate_secret_bits(b"a" * 64) == 0
    assert estimate_secret_bits(b"changeme" * 4) == estimate_secret_bits(b"changeme")
    assert estimate_secret_bits(b"abcdefgh") < estimate_secret_bits(b"ahcfbgde")
    assert estimate_secret_bits(secrets.token_hex(32).encode()) > 180


def test_generated_secret_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    first = load_or_create_secret(None, tmp_path / "state")
    assert load_or_create_secret(None, tmp_path / "state") == first
    assert (tmp_path / "state" / "secret_key").stat().st_mode & 0o077 == 0
    configured = "9f2c4e71b8a05d3e6c17f4a29b80d5e3c6a1f7042be95d8c03a6f1e7b42d9c58"
    assert load_or_create_secret(configured, tmp_path / "state") == configured.encode()
    with pytest.raises(InsecureSecret):
        load_or_create_secret("changeme", tmp_path / "state")
