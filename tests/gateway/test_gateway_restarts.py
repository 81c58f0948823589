"""A gateway that is stopped or killed, and a second gateway of the same site: no vendor message is lost, and the
two gateways take turns with the site's vendor session, so each message is stored once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt

from facmon.estate.site import Site
from facmon.kernel.clock import SystemClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from facmon.kernel.topics import ROOT
from gateway.site_gateway import SiteGateway
from tests.gateway.conftest import Subscriber, eventually, reading, running
from tests.gateway.test_site_gateway_mqtt import _mqtt_collectors, _site


def _gateway(site: Site, broker: Mosquitto, state_dir: Path, instance: str, metrics: Counters) -> SiteGateway:
    return SiteGateway(
        site,
        mqtt=MqttSettings("127.0.0.1", broker.port),
        state_dir=state_dir,
        clock=SystemClock(),
        metrics=metrics,
        instance=instance,
    )


def _card(n: int) -> bytes:
    return json.dumps({"card": f"{n:08X}", "granted": True, "direction": "in"}).encode()


def _cards(subscriber: Subscriber, topic: str) -> list[int]:
    events: list[dict[str, Any]] = [json.loads(p) for t, p in subscriber.received if t == topic]
    return [int(e["data"]["card"], 16) for e in events if e["type"] == "card_read"]


async def test_vendor_messages_sent_while_the_gateway_is_stopped_or_killed_all_arrive(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    site = _site(topic_prefix, None)
    vendor_topic = f"vendor/barrier/{topic_prefix}-G1/card"
    events = f"{ROOT}/{topic_prefix}/gate/gate-1/event"
    tree = Subscriber(mosquitto.port, events, f"tree-{topic_prefix}")
    async with running(tree.run(), "tree"), aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
        await tree.subscribed.wait()
        first = _gateway(site, mosquitto, tmp_path, "edge-a", Counters())
        async with running(first.run(), "gateway"):
            await eventually(_mqtt_collectors(first)[0].connected.is_set, what="the vendor session")
            for n in range(0, 100):
                await device.publish(vendor_topic, _card(n), qos=1)
            # Stopped while the cards arrive: some handled, the rest waiting in the broker or half way.
            await eventually(lambda: _cards(tree, events), what="the first cards on the backbone")
        for n in range(100, 200):  # while no gateway runs
            await device.publish(vendor_topic, _card(n), qos=1)
        again = _gateway(site, mosquitto, tmp_path, "edge-a", Counters())
        async with running(again.run(), "gateway-again"):
            await eventually(lambda: set(_cards(tree, events)) >= set(range(200)), what="all 200 cards")
    cards = _cards(tree, events)
    assert sorted(set(cards)) == list(range(200))


async def test_two_gateways_of_one_site_take_turns_with_the_vendor_session_and_store_each_message_once(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    site = _site(topic_prefix, None)
    metrics_a, metrics_b = Counters(), Counters()
    a = _gateway(site, mosquitto, tmp_path / "a", "edge-a", metrics_a)
    b = _gateway(site, mosquitto, tmp_path / "b", "edge-b", metrics_b)
    assert a.publisher.client_id != b.publisher.client_id, "their own backbone sessions"
    vendor_a, vendor_b = _mqtt_collectors(a)[0], _mqtt_collectors(b)[0]
    assert vendor_a.client_id == vendor_b.client_id == f"facmon-vendor-{topic_prefix}", "the site's vendor session"
    for collector in (vendor_a, vendor_b):
        collector.broker = replace(collector.broker, standby_s=0.5)  # turns of half a second, not a minute
    events = f"{ROOT}/{topic_prefix}/gate/gate-1/event"
    tree = Subscriber(mosquitto.port, events, f"tree-{topic_prefix}")
    sent = 300
    async with running(tree.run(), "tree"), aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
        await tree.subscribed.wait()
        async with running(a.run(), "gateway-a"):
            await eventually(vendor_a.connected.is_set, what="a's vendor session")
            async with running(b.run(), "gateway-b"):
                # Cards for three seconds while the two take turns with the session.
                for n in range(sent):
                    await device.publish(f"vendor/barrier/{topic_prefix}-G1/card", _card(n), qos=1)
                    await asyncio.sleep(0.01)
                await eventually(lambda: set(_cards(tree, events)) >= set(range(sent)), what="every card")
                await eventually(
                    lambda: (
                        metrics_a.get("mqtt_session_taken_over", site=topic_prefix) >= 1
                        and metrics_b.get("mqtt_session_taken_over", site=topic_prefix) >= 1
                    ),
                    what="each gateway's turn taken by the other",
                )
    cards = _cards(tree, events)
    turns = sum(m.get("mqtt_session_taken_over", site=topic_prefix) for m in (metrics_a, metrics_b))
    # Each message is heard by the gateway holding the session; only what was in flight when the session changed
    # hands (handled, its acknowledgement not yet sent) comes again to the other. Two gateways each hearing every
    # card would store 600.
    assert sorted(set(cards)) == list(range(sent))
    assert len(cards) - sent <= 20 * turns, (len(cards), turns)
    assert len(cards) < 1.5 * sent
    # Turns, not a fight: about one per half second of standing by, where evicting each other at once would be
    # hundreds.
    assert turns <= 20, turns
    # No gateway took its standing by for the devices' silence.
    assert not [p for t, p in tree.received if t == events and json.loads(p)["type"] == "comm_lost"]


async def test_a_full_disk_keeps_the_gateway_running_and_loses_nothing_within_the_memory_bound(
    mosquitto_factory: Callable[[], Mosquitto], topic_prefix: str, tmp_path: Path
) -> None:
    vendor, backbone = mosquitto_factory(), mosquitto_factory()
    site = _site(topic_prefix, {"host": "127.0.0.1", "port": vendor.port})
    events = f"{ROOT}/{topic_prefix}/gate/gate-1/event"
    tree = Subscriber(backbone.port, events, f"tree-{topic_prefix}")
    metrics = Counters()
    gateway = _gateway(site, backbone, tmp_path, "edge-a", metrics)
    # The outbox's file may not grow: SQLite answers "database or disk is full", as on a full disk.
    gateway.outbox.limit_size(gateway.outbox.path.stat().st_size)
    async with running(tree.run(), "tree"):
        await tree.subscribed.wait()
        await asyncio.to_thread(backbone.stop)  # nothing drains the outbox: it fills
        async with running(gateway.run(), "gateway"), aiomqtt.Client("127.0.0.1", vendor.port) as device:
            await eventually(_mqtt_collectors(gateway)[0].connected.is_set, what="the vendor session")
            for n in range(300):
                await device.publish(f"vendor/barrier/{topic_prefix}-G1/card", _card(n), qos=1)
            await eventually(
                lambda: metrics.get("mqtt_messages", device="gate-1", message="card") == 300, what="all cards heard"
            )
            assert gateway.outbox.memory_size() > 0
            check = next(c for c in gateway.health().checks if c.name == "outbox")
            assert not check.ok
            assert "disk full" in check.detail
            assert "held in memory" in check.detail
            assert metrics.get("outbox_memory_dropped") == 0
            await asyncio.to_thread(backbone.start)
            await eventually(lambda: len(set(_cards(tree, events))) == 300, what="all 300 cards", timeout_s=20)
            assert gateway.outbox.memory_size() == 0
            assert next(c for c in gateway.health().checks if c.name == "outbox").ok
    cards = list(dict.fromkeys(_cards(tree, events)))
    assert cards == list(range(300)), "in the order the device sent them"


async def test_a_gateway_whose_outbox_file_is_truncated_sets_it_aside_and_runs(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    site = _site(topic_prefix, None)
    outbox_file = tmp_path / f"outbox-{topic_prefix}.sqlite"
    first = _gateway(site, mosquitto, tmp_path, "edge-a", Counters())
    first.outbox.put_many([reading(topic_prefix, f"e{n}", seq=n) for n in range(2000)])
    first.outbox.close()
    outbox_file.write_bytes(outbox_file.read_bytes()[: outbox_file.stat().st_size // 2])  # cut in the middle
    events = f"{ROOT}/{topic_prefix}/gate/gate-1/event"
    tree = Subscriber(mosquitto.port, events, f"tree-{topic_prefix}")
    gateway = _gateway(site, mosquitto, tmp_path, "edge-a", Counters())
    assert gateway.outbox.size() == 0  # a fresh outbox; the damaged one is kept beside it
    files = await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()])
    assert [name.split(".damaged-")[0] for name in files if ".damaged-" in name] == [outbox_file.name]
    async with running(tree.run(), "tree"), running(gateway.run(), "gateway"):
        await tree.subscribed.wait()
        await eventually(_mqtt_collectors(gateway)[0].connected.is_set, what="the vendor session")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
            await device.publish(f"vendor/barrier/{topic_prefix}-G1/card", _card(7), qos=1)
        await eventually(lambda: _cards(tree, events) == [7], what="a new card on the backbone")
