"""Every centre service side by side (issue 15, point 6): three rules workers on one MQTT 5 share group, historians
and two notifiers, each its own process through the CLI, on one Mosquitto 2, one PostgreSQL and one influxd
(tests/faults/centre.py). A storm of 1,000 camera faults over 200 cameras goes in as vendor alarms through the
estate's gateway; in the middle of it one rules worker, one historian and one notifier are SIGKILLed, and each is
started again under its own instance name when the storm has gone on (it must: Mosquitto keeps queueing a share of
the events to a member of the group that is away, README "Operating it"). Then: exactly one work order per fault,
every fault event stored in InfluxDB, and every alert the notifiers queued delivered once (storm control sends the
on-call technician five messages in ten minutes and a digest, and holds the rest for the next period).

Waits are polls of the real stores with deadlines; the figures are printed (run with -s).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest

from facmon.kernel.daemons import Postgres
from tests.faults.centre import ALARMS, CAMERAS, HISTORIANS, NOTIFIERS, RULES, Centre
from tests.support import wait_for

# Several minutes on a loaded 2-core machine: ten services, a storm and the waits of storm control.
pytestmark = pytest.mark.timeout(540)

RATE = 100.0  # vendor messages per second
KILL_AT, BACK_AT = 400, 800


async def _storm(centre: Centre, sent: list[int]) -> None:
    """Every alarm of every camera, once, as the cameras' own MQTT clients publish them (QoS 1), at `RATE`."""
    alarms = [(n, event) for event in ALARMS for n in range(CAMERAS)]
    async with aiomqtt.Client("127.0.0.1", centre.mosquitto.port, timeout=30) as client, asyncio.TaskGroup() as tg:
        start = time.monotonic()

        async def publish(n: int, event: str) -> None:
            await client.publish(f"vendor/ipc/c{n}/alarm", json.dumps({"event": event, "state": "active"}), qos=1)
            sent[0] += 1

        # Each publish waits for its PUBACK on its own task, so a loaded machine slows the acks, not the offered rate.
        for i, (n, event) in enumerate(alarms):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            tg.create_task(publish(n, event))


async def _faults(centre: Centre, sent: list[int]) -> None:
    """One rules worker, one historian and one notifier killed mid-storm; each back once the storm has gone on."""
    victims = (RULES[1], HISTORIANS[0], NOTIFIERS[0])
    await wait_for(lambda: asyncio.sleep(0, sent[0] >= KILL_AT), 60, "the storm to reach its middle")
    for name in victims:
        await centre.kill(name)
    await wait_for(lambda: asyncio.sleep(0, sent[0] >= BACK_AT), 60, "the storm to go on")
    await asyncio.gather(*(centre.start(name) for name in victims))


async def test_a_storm_with_one_of_each_service_killed_gives_one_work_order_per_fault(
    tmp_path: Path, postgres: Postgres
) -> None:
    faults = {(f"c{n}", code) for code in ALARMS.values() for n in range(CAMERAS)}
    async with Centre(tmp_path, postgres) as centre:
        started = time.monotonic()
        sent = [0]
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_storm(centre, sent))
            tg.create_task(_faults(centre, sent))
        stormed = time.monotonic()

        async def all_orders() -> bool:
            return len(await asyncio.to_thread(centre.fault_orders)) >= len(faults)

        await wait_for(all_orders, 120, f"{len(faults)} work orders\n{centre.outputs()}", every_s=0.5)
        ordered = time.monotonic()
        await wait_for(
            lambda: asyncio.to_thread(lambda: centre.stored_faults() >= faults),
            60,
            "every fault event stored",
            every_s=0.5,
        )

        def all_alerted() -> bool:
            queued = set(centre.queued_webhooks())
            return centre.digests() > 0 and queued <= set(centre.webhook.keys())

        # Camera alerts are routine: due a minute after detection, grouped by building, at most five messages per
        # recipient in ten minutes and the rest in one digest; what is due after that digest waits for the next
        # period, so the test waits for the digest and for every alert queued until then.
        await wait_for(lambda: asyncio.to_thread(all_alerted), 150, "every alert delivered", every_s=0.5)
        alerted = len(await asyncio.to_thread(centre.alerted_orders))
        orders = await asyncio.to_thread(centre.fault_orders)
        keys = centre.webhook.keys()
        queued = await asyncio.to_thread(centre.queued_webhooks)
        print(
            f"\n[side by side] {sent[0]} alarms sent in {stormed - started:.1f} s; {len(orders)} work orders "
            f"{ordered - stormed:.1f} s after the storm; {len(queued)} webhook alerts queued, {len(keys)} requests "
            f"received, {len(set(keys))} keys, {alerted} work orders in them; restarted {dict(centre.restarts)}"
        )
        assert sent[0] == len(faults)
        assert sorted((device, fault) for device, fault, _ in orders) == sorted(faults)  # one per fault, none twice
        assert all(occurrences == 1 for *_, occurrences in orders), "an alarm counted twice"
        assert set(keys) == set(queued)
        duplicates = {key: n for key, n in Counter(keys).items() if n > 1}
        assert duplicates == {}, duplicates
