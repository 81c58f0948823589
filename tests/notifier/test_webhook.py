"""The webhook channel against a real HTTP receiver on a free port: body per template, signature, status mapping, and
the idempotency key that stays the same on a retry and after a restart."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.notifier.base import DeliveryError
from facmon.notifier.channels import WebhookChannel, WebhookConfig, verify_signature
from facmon.notifier.dispatcher import Dispatcher
from facmon.notifier.message import render_text
from facmon.notifier.queue import Sender, deliveries_of
from tests.notifier.support import LI, NOW, http_receiver, notification
from tests.notifier.test_dispatch import open_work_order, resolver

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


async def test_idempotency_key_is_the_stored_deliverys_and_survives_a_retry_and_a_restart(
    engine: Engine, clock: FakeClock
) -> None:
    """A receiver that fails the first attempt gets the same key on the retry, from a notifier started again too."""
    wo = open_work_order(engine, clock, "entrapment")
    async with http_receiver(status=503) as receiver:
        first = WebhookChannel(WebhookConfig(url=receiver.url), clock)
        await Dispatcher(engine, clock, resolver=resolver, channels={"webhook": first}).tick()
        assert await Sender(engine, {"webhook": first}, clock).tick() == 0
        await first.aclose()
        receiver.status = 200
        clock.advance(timedelta(seconds=30))
        # A new channel and sender over the same database, as after a restart of the notifier.
        async with WebhookChannel(WebhookConfig(url=receiver.url), clock) as second:
            assert await Sender(engine, {"webhook": second}, clock).tick() == 1
    [row] = deliveries_of(engine, wo)
    assert row.attempts == 2
    assert row.delivered_at is not None
    assert len(receiver.requests) == 2
    keys = {r.headers["idempotency-key"] for r in receiver.requests}
    assert keys == {json.loads(r.body)["idempotency_key"] for r in receiver.requests} == {row.key}
    # Derived from what is stored: the work order, the escalation step, the recipient and the channel.
    assert row.key == f"wo{wo}:on_call#0:li-ming/webhook"


async def test_chat_bot_bodies_keep_their_shape_and_carry_the_key_in_the_header() -> None:
    async with http_receiver() as receiver:
        config = WebhookConfig(url=receiver.url, template="wecom", name="wecom-ops")
        async with WebhookChannel(config, FakeClock(NOW)) as channel:
            await channel.send(notification(), LI)
    [request] = receiver.requests
    assert request.headers["idempotency-key"] == "wo7/s0/r0/li-ming/webhook/wecom-ops"
    assert "idempotency_key" not in json.loads(request.body)
