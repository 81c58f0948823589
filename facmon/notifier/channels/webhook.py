"""Webhook channel: one signed JSON POST per notification, in our own shape or a chat bot's text message.

Signature: `X-Facmon-Signature: sha256=<hex HMAC-SHA256 of "<X-Facmon-Timestamp>." + raw body>`. The timestamp is
signed with the body so a receiver that rejects old timestamps also rejects replays; `verify_signature` is the
receiver's side.

Idempotency: `Idempotency-Key` (and `idempotency_key` in the generic body) is the stored delivery's key, the
notification's key (work order, escalation step, recipient) plus this channel's name. It is written with the queued
row, so it is the same on every retry and after a restart of the notifier: a receiver that keeps the keys it has
seen drops the duplicates at-least-once delivery makes. The chat-bot templates keep their vendor's body shape, so
only the header carries it there. `X-Facmon-Key` is the notification's key, kept for receivers that use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from facmon.kernel.clock import Clock
from facmon.notifier.base import DeliveryError, Notification, Recipient
from facmon.notifier.channels.config import WebhookConfig, WebhookTemplate
from facmon.notifier.channels.payload import notification_json
from facmon.notifier.message import render_text

__all__ = ["TEMPLATES", "WebhookChannel", "idempotency_key", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Facmon-Signature"
TIMESTAMP_HEADER = "X-Facmon-Timestamp"
KEY_HEADER = "X-Facmon-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_FIELD = "idempotency_key"


def idempotency_key(notification: Notification, channel: str) -> str:
    """The key of one message over one channel: the stored delivery's key (facmon.notifier.queue.delivery_row)."""
    return f"{notification.key}/{channel}"


def _generic(n: Notification, r: Recipient) -> dict[str, Any]:
    return notification_json(n, r)


def _wecom(n: Notification, r: Recipient) -> dict[str, Any]:
    # WeCom group bot text message; a mention by mobile number makes the recipient's phone ring in the group.
    text: dict[str, Any] = {"content": render_text(n)}
    if r.phone:
        text["mentioned_mobile_list"] = [r.phone]
    return {"msgtype": "text", "text": text}


def _dingtalk(n: Notification, r: Recipient) -> dict[str, Any]:
    return {
        "msgtype": "text",
        "text": {"content": render_text(n)},
        "at": {"atMobiles": [r.phone] if r.phone else [], "isAtAll": False},
    }


def _feishu(n: Notification, _r: Recipient) -> dict[str, Any]:
    return {"msg_type": "text", "content": {"text": render_text(n)}}


def _slack(n: Notification, _r: Recipient) -> dict[str, Any]:
    return {"text": render_text(n)}


TEMPLATES: dict[WebhookTemplate, Callable[[Notification, Recipient], dict[str, Any]]] = {
    "generic": _generic,
    "wecom": _wecom,
    "dingtalk": _dingtalk,
    "feishu": _feishu,
    "slack": _slack,
}

# 408 and 429 say "not now", not "never": worth retrying like a 5xx.
_RETRYABLE_4XX = frozenset({408, 429})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class WebhookChannel:
    """A Channel. Holds one HTTP client (connections are reused); close it with `aclose` or `async with`."""

    def __init__(self, config: WebhookConfig, clock: Clock, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.clock = clock
        # Redirects are not followed: a webhook URL that moved is a configuration error to fix, not to guess.
        self._client = client or httpx.AsyncClient(timeout=config.timeout_s, follow_redirects=False)

    @property
    def name(self) -> str:
        return self.config.name

    def request_body(self, notification: Notification, recipient: Recipient) -> bytes:
        payload = TEMPLATES[self.config.template](notification, recipient)
        if self.config.template == "generic":
            payload[IDEMPOTENCY_FIELD] = idempotency_key(notification, self.name)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        body = self.request_body(notification, recipient)
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {"content-type": "application/json; charset=utf-8", TIMESTAMP_HEADER: timestamp}
        headers[KEY_HEADER] = notification.key
        headers[IDEMPOTENCY_HEADER] = idempotency_key(notification, self.name)
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value().encode(), timestamp, body)
        url = str(self.config.url)
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{self.name}: timed out after {self.config.timeout_s} s") from exc
        except httpx.TransportError as exc:  # connection refused or reset, DNS, TLS
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status >= 500 or status in _RETRYABLE_4XX
        raise DeliveryError(f"{self.name}: HTTP {status} from the webhook", retryable=retryable)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
