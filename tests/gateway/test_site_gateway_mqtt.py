"""A site's barriers and cameras end to end: simulators built from the site file publish vendor payloads, the site
gateway's MQTT collector decodes them, and readings, events and dead letters come out on the facmon topic tree."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from collectors.mqtt.collector import MqttCollector
from facmon.estate.site import Site
from facmon.kernel.clock import SystemClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from facmon.kernel.topics import DEAD_LETTER, ROOT
from gateway.site_gateway import SiteGateway
from simulators.site import SiteSimulator, command_topic
from tests.gateway.conftest import Subscriber, eventually, running


def _mqtt_collectors(gateway: SiteGateway) -> list[MqttCollector]:
    return [c for c in gateway.collectors if isinstance(c, MqttCollector)]


def _site(site_id: str, vendor: dict[str, Any] | None) -> Site:
    raw: dict[str, Any] = {
        "site": {"id": site_id},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    # Vendor ids unique to the test: without a vendor broker prefix, topics are the vendor's own.
                    {"id": "gate-1", "kind": "gate", "model": "barrier-a", "vendor_id": f"{site_id}-G1"},
                    {"id": "cam-1", "kind": "camera", "model": "camera-a", "vendor_id": f"{site_id}-C1"},
                ],
            }
        ],
    }
    if vendor is not None:
        raw["mqtt"] = vendor
    return Site.model_validate(raw)


def _decoded(received: list[tuple[str, bytes]], topic: str) -> list[dict[str, Any]]:
    return [json.loads(payload) for t, payload in received if t == topic]


@pytest.mark.parametrize("vendor_broker", [False, True], ids=["backbone-broker", "own-vendor-broker"])
async def test_barrier_and_camera_reach_the_topic_tree(
    mosquitto: Mosquitto,
    mosquitto_factory: Callable[[], Mosquitto],
    topic_prefix: str,
    tmp_path: Path,
    vendor_broker: bool,
) -> None:
    # With a vendor broker in the site file, the devices publish there (under its prefix) and the gateway listens
    # there, while readings still go to the backbone; without one, everything is on the backbone.
    vendor = None
    if vendor_broker:
        vendor = {"host": "127.0.0.1", "port": mosquitto_factory().port, "topic_prefix": f"{topic_prefix}/in"}
    site = _site(topic_prefix, vendor)
    simulator = SiteSimulator(site, speed=20, seed=0, mqtt=MqttSettings("127.0.0.1", mosquitto.port))
    gateway = SiteGateway(
        site,
        mqtt=MqttSettings("127.0.0.1", mosquitto.port),
        state_dir=tmp_path,
        clock=SystemClock(),
        metrics=Counters(),
    )
    (collector,) = _mqtt_collectors(gateway)
    if vendor is not None:
        assert collector.broker.port == vendor["port"] != mosquitto.port
        assert collector.subscriptions[0].startswith(f"{topic_prefix}/in/vendor/")
    tree = Subscriber(mosquitto.port, f"{ROOT}/{topic_prefix}/#", f"tree-{topic_prefix}")
    dead = Subscriber(mosquitto.port, f"{DEAD_LETTER}/{topic_prefix}/#", f"dead-{topic_prefix}")
    async with (
        running(tree.run(), "tree"),
        running(dead.run(), "dead"),
        running(gateway.run(), "gateway"),
    ):
        await tree.subscribed.wait()
        await dead.subscribed.wait()
        await eventually(collector.connected.is_set, what="the collector subscribed")
        async with running(simulator.run(), "simulator"):
            await eventually(lambda: simulator.control_ready.is_set(), what="simulator control")
            gate_state = f"{ROOT}/{topic_prefix}/gate/gate-1/state"
            cam_state = f"{ROOT}/{topic_prefix}/camera/cam-1/state"
            await eventually(lambda: _decoded(tree.received, gate_state), what="the barrier's state")
            await eventually(lambda: _decoded(tree.received, cam_state), what="the camera's heartbeat")

            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as commander:
                for device, action in [
                    ("gate-1", {"action": "card_read", "card": "0A1B2C3D", "direction": "out"}),
                    ("cam-1", {"action": "camera", "condition": "tamper"}),
                    ("gate-1", {"action": "garbage", "count": 5}),
                ]:
                    await commander.publish(command_topic(topic_prefix, device), json.dumps(action), qos=1)

            gate_events = f"{ROOT}/{topic_prefix}/gate/gate-1/event"
            cam_events = f"{ROOT}/{topic_prefix}/camera/cam-1/event"
            await eventually(
                lambda: any(e["data"].get("card") == "0A1B2C3D" for e in _decoded(tree.received, gate_events)),
                what="the card read on the gate's event topic",
            )
            await eventually(
                lambda: [e["code"] for e in _decoded(tree.received, cam_events) if e["type"] == "fault_raised"],
                what="the tamper fault on the camera's event topic",
            )
            await eventually(
                lambda: len(_decoded(dead.received, f"{DEAD_LETTER}/{topic_prefix}/gate-1")) >= 5,
                what="five dead letters for the gate",
            )
            # The arm goes up for the card and comes down again.
            await eventually(
                lambda: (
                    [s["values"].get("position") for s in _decoded(tree.received, gate_state)][-1:] == ["lowered"]
                    and any(s["values"].get("position") == "raised" for s in _decoded(tree.received, gate_state))
                ),
                what="a full passage",
            )

    card = next(e for e in _decoded(tree.received, gate_events) if e["type"] == "card_read")
    assert card["data"] == {"card": "0A1B2C3D", "granted": True, "direction": "out"}
    (tamper,) = [e for e in _decoded(tree.received, cam_events) if e["type"] == "fault_raised"]
    assert tamper["code"] == "tamper"
    letters = _decoded(dead.received, f"{DEAD_LETTER}/{topic_prefix}/gate-1")
    assert all(letter["source"] == "mqtt" and letter["reason"].startswith("gate-1: ") for letter in letters)


async def test_a_site_without_mqtt_devices_has_no_collector(tmp_path: Path) -> None:
    lift = {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1", "port": 1502}}
    site = Site.model_validate({"site": {"id": "s"}, "buildings": [{"id": "b1", "devices": [lift]}]})
    gateway = SiteGateway(
        site, mqtt=MqttSettings("127.0.0.1", 1), state_dir=tmp_path, clock=SystemClock(), metrics=Counters()
    )
    assert _mqtt_collectors(gateway) == []
