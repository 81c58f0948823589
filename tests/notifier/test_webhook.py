"""The webhook channel against a real HTTP receiver on a free port: body per template, signature, status mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.notifier.base import DeliveryError
from facmon.notifier.channels import WebhookChannel, WebhookConfig, verify_signature
from facmon.notifier.message import render_text
from tests.notifier.support import LI, NOW, http_receiver, notification

SECRET = "webhook-secret-of-this-receiver"
TEXT = render_text(notification())


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("wecom", {"msgtype": "text", "text": {"content": TEXT, "mentioned_mobile_list": ["+8613800001111"]}}),
        (
            "dingtalk",
            {"msgtype": "text", "text": {"content": TEXT}, "at": {"atMobiles": ["+8613800001111"], "isAtAll": False}},
        ),
        ("feishu", {"msg_type": "text", "content": {"text": TEXT}}),
        ("slack", {"text": TEXT}),
    ],
)
async def test_chat_bot_bodies(template: Any, expected: dict[str, Any]) -> None:
    async with http_receiver() as receiver:
        config = WebhookConfig(url=receiver.url, template=template)
        async with WebhookChannel(config, FakeClock(NOW)) as channel:
            await channel.send(notification(), LI)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert json.loads(request.body) == expected
    assert "x-facmon-signature" not in request.headers


async def test_generic_body_is_signed_with_timestamp() -> None:
    async with http_receiver() as receiver:
        config = WebhookConfig(url=receiver.url, secret=SECRET)
        async with WebhookChannel(config, FakeClock(NOW)) as channel:
            await channel.send(notification(), LI)
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["work_order_id"] == 7
    assert body["recipient"] == {"id": "li-ming", "name": "Li Ming"}  # no phone number or address to a third party
    assert (body["site"], body["building"], body["device"], body["fault"]) == (
        "sunrise-garden",
        "b1",
        "b1-e1",
        "entrapment",
    )
    assert (body["sla_clock"], body["sla_left_s"], body["created_at"]) == ("on_site", 725, "2026-03-02T08:15:00+00:00")
    assert body["text"] == TEXT
    headers = request.headers
    assert headers["content-type"].startswith("application/json")
    assert headers["x-facmon-timestamp"] == str(int(NOW.timestamp()))
    assert headers["x-facmon-key"] == "wo7/s0/r0/li-ming/webhook"
    assert headers["x-facmon-signature"].startswith("sha256=")
    assert verify_signature(SECRET.encode(), headers["x-facmon-timestamp"], request.body, headers["x-facmon-signature"])
    # The same signature does not verify another body, another timestamp or under another key.
    assert not verify_signature(
        SECRET.encode(), headers["x-facmon-timestamp"], request.body + b" ", headers["x-facmon-signature"]
    )
    assert not verify_signature(SECRET.encode(), "1", request.body, headers["x-facmon-signature"])
    assert not verify_signature(b"other", headers["x-facmon-timestamp"], request.body, headers["x-facmon-signature"])


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (401, False),
        (404, False),
        (302, False),
    ],
)
async def test_status_mapping(status: int, retryable: bool) -> None:
    async with http_receiver(status=status) as receiver:
        channel = WebhookChannel(WebhookConfig(url=receiver.url), FakeClock(NOW))
        with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
            await channel.send(notification(), LI)
        await channel.aclose()
    assert caught.value.retryable is retryable
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_delivered(status: int) -> None:
    async with (
        http_receiver(status=status) as receiver,
        WebhookChannel(WebhookConfig(url=receiver.url), FakeClock(NOW)) as channel,
    ):
        await channel.send(notification(), LI)
    assert len(receiver.requests) == 1


async def test_connection_refused_is_retryable() -> None:
    config = WebhookConfig(url=f"http://127.0.0.1:{free_port()}/hook")
    async with WebhookChannel(config, FakeClock(NOW)) as channel:
        with pytest.raises(DeliveryError, match="ConnectError") as caught:
            await channel.send(notification(), LI)
    assert caught.value.retryable


async def test_timeout_is_retryable() -> None:
    async with http_receiver() as receiver:
        receiver.delay_s = 2.0
        config = WebhookConfig(url=receiver.url, timeout_s=0.2)
        async with WebhookChannel(config, FakeClock(NOW)) as channel:
            with pytest.raises(DeliveryError, match="timed out") as caught:
                await channel.send(notification(), LI)
    assert caught.value.retryable
