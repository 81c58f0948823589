from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facmon.kernel.batches import batch_topic
from facmon.kernel.daemons import Mosquitto, free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Reading, decode_message
from facmon.kernel.mqtt import MqttSettings
from facmon.kernel.topics import ROOT, topic_for
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from tests.gateway.conftest import Subscriber, eventually, reading, running

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _publisher(outbox: Outbox, port: int, metrics: Counters, **kwargs: float) -> Publisher:
    # idle_wait_s is long on purpose: delivery within the test's deadlines proves a put wakes the publisher.
    options: dict[str, float] = {"backoff_max_s": 0.5, "idle_wait_s": 30.0, **kwargs}
    return Publisher(
        outbox, mqtt=MqttSettings("127.0.0.1", port), client_id=f"gw-{uuid.uuid4().hex[:8]}", metrics=metrics, **options
    )


def _event(site: str, n: int) -> Event:
    ref = DeviceRef(site=site, building="b1", device=f"e{n % 7}", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    return Event(ref=ref, ts=T0 + timedelta(milliseconds=n), type=EventType.FAULT_RAISED, code=str(n))


async def test_messages_reach_a_real_subscriber_in_order(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    metrics = Counters()
    subscriber = Subscriber(mosquitto.port, f"{ROOT}/{topic_prefix}/#", f"sub-{topic_prefix}")
    sent: list[Reading | Event] = [reading(topic_prefix, ts=T0 + timedelta(seconds=n), seq=n) for n in range(450)]
    sent.insert(100, _event(topic_prefix, 1))
    with Outbox(tmp_path / "outbox.sqlite", metrics=metrics) as outbox:
        publisher = _publisher(outbox, mosquitto.port, metrics)
        async with running(subscriber.run(), "subscriber"), running(publisher.run(), "publisher"):
            await eventually(subscriber.subscribed.is_set, what="the subscription")
            await eventually(publisher.connected.is_set, what="the publisher's connection")
            for message in sent:
                await publisher.emit(message)
            await eventually(lambda: len(subscriber.received) >= len(sent), what="every message at the subscriber")
            await eventually(lambda: outbox.size() == 0, what="an empty outbox")

    assert [decode_message(payload) for _, payload in subscriber.received] == sent
    assert [topic for topic, _ in subscriber.received] == [topic_for(m) for m in sent]
    assert metrics.get("gateway_published") == len(sent)


async def test_broker_outage_loses_nothing(
    restartable_mosquitto: Callable[[], Mosquitto], topic_prefix: str, tmp_path: Path
) -> None:
    broker = restartable_mosquitto()
    metrics = Counters()
    subscriber = Subscriber(broker.port, f"{ROOT}/{topic_prefix}/#", f"sub-{topic_prefix}")
    before = [_event(topic_prefix, n) for n in range(20)]
    during = [_event(topic_prefix, n) for n in range(20, 520)]
    with Outbox(tmp_path / "outbox.sqlite", metrics=metrics) as outbox:
        publisher = _publisher(outbox, broker.port, metrics)
        async with running(subscriber.run(), "subscriber"), running(publisher.run(), "publisher"):
            await eventually(subscriber.subscribed.is_set, what="the subscription")
            for message in before:
                await publisher.emit(message)
            await eventually(lambda: len(subscriber.received) >= len(before), what="messages before the outage")

            await asyncio.to_thread(broker.stop)
            await eventually(lambda: not publisher.connected.is_set(), what="the publisher noticing the outage")
            disconnects = metrics.get("gateway_disconnects")
            for message in during:
                await publisher.emit(message)
            # Give a broken publisher the chance to lose something: a few attempts at the missing broker.
            await eventually(lambda: metrics.get("gateway_disconnects") >= disconnects + 3, what="reconnect attempts")
            assert outbox.size() == len(during)

            await asyncio.to_thread(broker.start)
            expected = {m.id for m in before + during}

            def delivered() -> bool:
                ids = {decode_message(payload).id for _, payload in subscriber.received}  # type: ignore[union-attr]
                return ids >= expected

            await eventually(delivered, what="every message after the broker is back", timeout_s=20)
            await eventually(lambda: outbox.size() == 0, what="an empty outbox")

    received = [decode_message(payload) for _, payload in subscriber.received]
    assert {m.id for m in received if isinstance(m, Event)} == expected
    assert metrics.get("gateway_disconnects") >= 1


async def test_backlog_outlives_the_publisher(mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path) -> None:
    """Messages emitted while no broker answers stay on disk and go out from the next process."""
    path = tmp_path / "outbox.sqlite"
    sent = [reading(topic_prefix, ts=T0 + timedelta(seconds=n), seq=n) for n in range(30)]
    with Outbox(path, metrics=Counters()) as outbox:
        nowhere_metrics = Counters()
        nowhere = _publisher(outbox, free_port(), nowhere_metrics)
        async with running(nowhere.run(), "publisher-without-broker"):
            for message in sent:
                await nowhere.emit(message)
            await eventually(lambda: nowhere_metrics.get("gateway_disconnects") >= 3, what="attempts to connect")
        assert outbox.size() == len(sent)

    subscriber = Subscriber(mosquitto.port, f"{ROOT}/{topic_prefix}/#", f"sub-{topic_prefix}")
    with Outbox(path, metrics=Counters()) as outbox:
        publisher = _publisher(outbox, mosquitto.port, Counters())
        async with running(subscriber.run(), "subscriber"):
            await eventually(subscriber.subscribed.is_set, what="the subscription")
            async with running(publisher.run(), "publisher"):
                await eventually(lambda: len(subscriber.received) >= len(sent), what="the backlog at the subscriber")
                await eventually(lambda: outbox.size() == 0, what="an empty outbox")
    assert [decode_message(payload) for _, payload in subscriber.received] == sent


async def test_cancel_is_not_lost_when_a_put_lands_in_the_same_tick(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    # A put's wake-up and a cancel in the same loop iteration: asyncio.wait_for on Python 3.11 returns the wake-up
    # and drops the cancel, and the publisher never stops. Shutting down must not depend on that timing.
    metrics = Counters()
    with Outbox(tmp_path / "outbox.sqlite", metrics=metrics) as outbox:
        publisher = _publisher(outbox, mosquitto.port, metrics)
        for n in range(10):
            task = asyncio.create_task(publisher.run())
            await asyncio.wait_for(publisher.idle.wait(), 10)  # connected, parked waiting for a put
            assert publisher.connected.is_set()
            await publisher.emit(_event(topic_prefix, n))
            await asyncio.sleep(0)  # the wake-up completes; the publisher has not resumed yet
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, "the publisher did not stop after a cancel that met a put"
            assert not publisher.idle.is_set()
            publisher.connected.clear()


async def test_idle_is_set_only_while_connected_with_nothing_to_send(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    subscriber = Subscriber(mosquitto.port, f"{ROOT}/{topic_prefix}/#", f"sub-{topic_prefix}")
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        nowhere = _publisher(outbox, free_port(), Counters())
        async with running(nowhere.run(), "publisher-without-broker"):
            await nowhere.emit(_event(topic_prefix, 0))
            await eventually(lambda: outbox.size() == 1, what="the message in the outbox")
            assert not nowhere.idle.is_set(), "no broker: not waiting for a put"
        publisher = _publisher(outbox, mosquitto.port, Counters())
        assert not publisher.idle.is_set()
        async with running(subscriber.run(), "subscriber"):
            await eventually(subscriber.subscribed.is_set, what="the subscription")
            async with running(publisher.run(), "publisher"):
                await asyncio.wait_for(publisher.idle.wait(), 10)  # the backlog sent, waiting for a put
                await eventually(lambda: outbox.size() == 0, what="the backlog acknowledged")
                assert publisher.idle.is_set()
                await publisher.emit(_event(topic_prefix, 1))
                await eventually(lambda: len(subscriber.received) == 2, what="both messages at the subscriber")
                await asyncio.wait_for(publisher.idle.wait(), 10)
        assert not publisher.idle.is_set()


async def test_readings_put_one_by_one_gather_into_one_batch(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    """Woken from idle by a reading, the publisher waits `gather_s` before reading the outbox: readings put a few
    milliseconds apart (as pollers put them) leave as one batch, not one publish each."""
    subscriber = Subscriber(mosquitto.port, f"{ROOT}/{topic_prefix}/#", f"sub-{topic_prefix}")
    sent = [reading(topic_prefix, ts=T0 + timedelta(seconds=n), seq=n) for n in range(10)]
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        publisher = _publisher(outbox, mosquitto.port, Counters(), gather_s=1.0)
        async with running(subscriber.run(), "subscriber"), running(publisher.run(), "publisher"):
            await eventually(subscriber.subscribed.is_set, what="the subscription")
            await asyncio.wait_for(publisher.idle.wait(), 10)
            for message in sent:
                await publisher.emit(message)
                await asyncio.sleep(0.01)  # time for a publisher that does not gather to send each alone
            await eventually(lambda: len(subscriber.received) >= len(sent), what="the readings at the subscriber")
    assert [decode_message(payload) for _, payload in subscriber.received] == sent
    assert subscriber.publishes == [batch_topic(topic_prefix, "elevator")]


async def test_an_event_ends_the_gathering_at_once(mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path) -> None:
    """A fault is never held back by gathering: an event put while readings gather sends them and it at once."""
    subscriber = Subscriber(mosquitto.port, f"{ROOT}/{topic_prefix}/#", f"sub-{topic_prefix}")
    sent = [reading(topic_prefix, ts=T0, seq=0), _event(topic_prefix, 1)]
    gather_s = 1.0
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        publisher = _publisher(outbox, mosquitto.port, Counters(), gather_s=gather_s)
        async with running(subscriber.run(), "subscriber"), running(publisher.run(), "publisher"):
            await eventually(subscriber.subscribed.is_set, what="the subscription")
            await asyncio.wait_for(publisher.idle.wait(), 10)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await publisher.emit(sent[0])
            await asyncio.sleep(0.01)  # the publisher is gathering now
            await publisher.emit(sent[1])
            await eventually(lambda: len(subscriber.received) >= 2, what="the reading and the event")
            took = loop.time() - start
    assert [decode_message(payload) for _, payload in subscriber.received] == sent
    assert took < gather_s / 2, f"the event waited for the gathering ({took:.2f} s)"


def test_gather_is_bounded(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox, pytest.raises(ValueError, match="gather_s"):
        _publisher(outbox, 1883, Counters(), gather_s=1.5)
