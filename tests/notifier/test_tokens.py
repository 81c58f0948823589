"""Acknowledge tokens: issued, verified, and refused when altered, expired, for another work order or key."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from facmon.kernel.clock import FakeClock
from facmon.notifier.tokens import InsecureSecret, TokenInvalid, check_secret, issue, load_or_create_secret, verify
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


@pytest.mark.parametrize("secret", [b"", b"changeme", b"CHANGE-ME", b"secret", b"short-but-not-default"])
def test_insecure_secrets_are_refused(secret: bytes) -> None:
    with pytest.raises(InsecureSecret):
        check_secret(secret)


def test_generated_secret_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    first = load_or_create_secret(None, tmp_path / "state")
    assert load_or_create_secret(None, tmp_path / "state") == first
    assert (tmp_path / "state" / "secret_key").stat().st_mode & 0o077 == 0
    assert load_or_create_secret("y" * 40, tmp_path / "state") == b"y" * 40
    with pytest.raises(InsecureSecret):
        load_or_create_secret("changeme", tmp_path / "state")
