"""The Modbus poller with the fire panel interpreter against a simulated panel on a real pymodbus server: counts,
per-point events from scenario steps, refused registers, comm loss, snapshots, and the requests one poll costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collectors.modbus.fire_interpreter import FirePanelInterpreter
from collectors.modbus.fire_panel import FirePanelDriver
from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.modbus.registers import Table
from collectors.registry import fire_panel_driver
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import (
    FIRST_CONTACT,
    DeadLetter,
    DeviceKind,
    DeviceRef,
    Event,
    EventType,
    ModbusAddress,
    Reading,
    Value,
)
from facmon.kernel.mqtt import MqttSettings
from gateway.put_batch import PutBatch
from gateway.site_gateway import SiteGateway
from simulators.fire_panel import FirePanelSimulator
from simulators.steps import STEP, Step
from tests.simulators.support import assert_no_leaked_tasks, wait_until

INTERVAL_S = 0.05


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


class CountingPanel(FirePanelSimulator):
    """A simulated panel that counts the requests it answers (the endpoint asks for the registers once each)."""

    requests = 0

    def registers(self, table: Table) -> dict[int, int]:
        self.requests += 1
        return super().registers(table)


class Harness:
    def __init__(self, driver: FirePanelDriver) -> None:
        self.driver = driver
        self.clock = FakeClock()
        self.metrics = Counters()
        self.links = ModbusLinks()
        self.received: list[Reading | Event] = []
        self.letters: list[DeadLetter] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def emit(self, message: Reading | Event) -> None:
        self.received.append(message)

    async def reject(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def poller(self, port: int, snapshot_interval_s: float = 60.0, **options: float) -> ModbusPoller:
        settings = {"interval_s": INTERVAL_S, "comm_grace_s": 3.0, "timeout_s": 0.5, "backoff_max_s": 0.2}
        settings.update(options)
        return ModbusPoller(
            DeviceRef(site="s", building="b", device="f1", kind=DeviceKind.FIRE_PANEL, model=self.driver.model),
            FirePanelInterpreter(self.driver, snapshot_interval_s=snapshot_interval_s),
            ModbusAddress(host="127.0.0.1", port=port),
            PollTiming(**settings),
            emit=self.emit,
            reject=self.reject,
            clock=self.clock,
            metrics=self.metrics,
            links=self.links,
        )

    def run(self, port: int, **options: float) -> ModbusPoller:
        poller = self.poller(port, **options)
        self.tasks.append(asyncio.create_task(poller.run(), name="poll-f1"))
        return poller

    def panels(self) -> list[Reading]:
        return [m for m in self.received if isinstance(m, Reading) and m.point is None]

    def points(self, point: str | None = None) -> list[Reading]:
        readings = [m for m in self.received if isinstance(m, Reading) and m.point is not None]
        return [r for r in readings if point is None or r.point == point]

    def events(self, *types: EventType) -> list[Event]:
        return [m for m in self.received if isinstance(m, Event) and (not types or m.type in types)]

    def changes(self) -> list[tuple[str, str | None, str | None, str]]:
        """(type, point, code, message) of every point and panel event so far."""
        kinds = (EventType.FAULT_RAISED, EventType.FAULT_CLEARED, EventType.STATUS)
        return [(e.type.value, e.point, e.code, e.message) for e in self.events(*kinds)]

    async def settle(self) -> None:
        """Wait until two more panel readings arrived: a step taken before is in the later one."""
        seen = len(self.panels())
        await wait_until(lambda: len(self.panels()) >= seen + 2, what="two more polls")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(fire_panel_driver("fire-gb-a"))
    yield h
    await h.close()
    assert len(h.links) == 0, "every link closes with its last poller"


@pytest.fixture
async def panel() -> AsyncIterator[CountingPanel]:
    async with CountingPanel(fire_panel_driver("fire-gb-a"), port=free_port(), seed=7, device_id="f1") as sim:
        yield sim


def step(**fields: object) -> Step:
    return STEP.validate_python(fields)


async def test_one_poll_is_six_requests_and_one_panel_reading_with_counts(
    harness: Harness, panel: CountingPanel
) -> None:
    poller = harness.poller(panel.port)
    link = harness.links.acquire("127.0.0.1", panel.port)
    try:
        await poller.poll(link)
        assert panel.requests == len(harness.driver.blocks) == 6
        await poller.poll(link)
        assert panel.requests == 12
    finally:
        harness.links.release(link)
    _, second = harness.panels()
    total = len(panel.points())
    assert total >= 220
    assert second.values == {
        **dict.fromkeys(("main_power_fault", "battery_fault", "bus_fault", "silenced"), False),
        **dict.fromkeys(("resets", "silences", "fire_count", "fault_count", "disabled_count"), 0),
        "firmware": 120,
        "points_total": total,
        "points_intact": total,
        **dict.fromkeys(("points_fire", "points_supervisory", "points_fault", "points_disabled", "points_active"), 0),
        "points_rejected": 0,
        "intact_pct": 100.0,
    }
    # The first poll is a snapshot of every point; the second has nothing new.
    assert len(harness.points()) == total
    assert {r.point for r in harness.points()} == set(panel.points())
    assert _comm(harness) == [FIRST], "the first answer is announced, and nothing else happened"


def _comm(harness: Harness) -> list[tuple[EventType, str, dict[str, Value]]]:
    return [(e.type, e.message, e.data) for e in harness.events(EventType.COMM_LOST, EventType.COMM_RESTORED)]


FIRST = (EventType.COMM_RESTORED, "answering", {FIRST_CONTACT: True})


async def test_the_first_answer_since_start_is_announced_once(harness: Harness, panel: CountingPanel) -> None:
    harness.run(panel.port)
    await harness.settle()
    await harness.settle()
    assert _comm(harness) == [FIRST]
    first = harness.events(EventType.COMM_RESTORED)[0]
    assert harness.received.index(first) < harness.received.index(harness.panels()[0]), "before its first reading"


async def test_point_events_from_scenario_steps(harness: Harness, panel: CountingPanel) -> None:
    smoke, heat = panel.points("smoke_detector")[5], panel.points("heat_detector")[0]
    flow, call = panel.points("water_flow_indicator")[0], panel.points("manual_call_point")[0]
    pump, gone = panel.points("fire_pump")[0], panel.points("smoke_detector")[9]
    total = len(panel.points())
    harness.run(panel.port)
    await harness.settle()
    for point, state in [(smoke, "fire"), (flow, "fire"), (heat, "fault"), (call, "disabled"), (pump, "active")]:
        await panel.perform(step(action="point", point=point, state=state))
    await panel.perform(step(action="point", point=gone, state="absent"))
    await harness.settle()
    # Events of one poll come in loop-address order; each edge once.
    assert [c[1] for c in harness.changes()] == sorted(c[1] or "" for c in harness.changes())
    assert len(harness.changes()) == 7
    assert set(harness.changes()) == {
        ("fault_raised", smoke, "fire", f"photoelectric smoke detector {smoke}: fire"),
        ("fault_raised", flow, "supervisory", f"water-flow indicator {flow}: supervisory"),
        ("fault_raised", heat, "fault", f"heat detector {heat}: fault"),
        ("fault_raised", call, "disabled", f"manual call point {call}: disabled"),
        ("status", pump, "active", f"fire pump {pump}: started"),
        ("status", pump, "feedback", f"fire pump {pump}: feedback on"),
        ("fault_raised", gone, "absent", f"photoelectric smoke detector {gone}: absent"),
    }
    (supervisory,) = [e for e in harness.events() if e.point == flow]
    assert supervisory.data == {"point_type": "water_flow_indicator"}
    panel_now = harness.panels()[-1].values
    assert panel_now["points_total"] == total - 1
    assert (panel_now["points_fire"], panel_now["points_supervisory"], panel_now["points_active"]) == (1, 1, 1)
    assert (panel_now["points_fault"], panel_now["points_disabled"]) == (1, 1)
    # Intact: present and neither in fault nor disabled; the point in fire works, so it counts.
    assert panel_now["points_intact"] == total - 3
    assert panel_now["intact_pct"] == round(100 * (total - 3) / (total - 1), 2)
    assert (panel_now["fire_count"], panel_now["fault_count"]) == (1, 1), "the panel's own counters"
    assert harness.points(flow)[-1].values["state"] == "supervisory"
    assert harness.points(flow)[-1].values["fire"] is False
    assert harness.points(gone)[-1].values == {"state": "absent", "type": "smoke_detector"}

    harness.received.clear()
    for point in (smoke, flow, heat, call, pump, gone):
        await panel.perform(step(action="point", point=point, state="normal"))
    await harness.settle()
    assert {(t, p, c) for t, p, c, _ in harness.changes()} == {
        ("fault_cleared", smoke, "fire"),
        ("fault_cleared", flow, "supervisory"),
        ("fault_cleared", heat, "fault"),
        ("fault_cleared", call, "disabled"),
        ("status", pump, "active"),
        ("status", pump, "feedback"),
        ("fault_cleared", gone, "absent"),
    }
    assert {r.point for r in harness.points()} == {smoke, flow, heat, call, pump, gone}, "only points that changed"
    assert harness.panels()[-1].values["intact_pct"] == 100.0


async def test_panel_conditions_raise_and_clear_faults(harness: Harness, panel: CountingPanel) -> None:
    harness.run(panel.port)
    await harness.settle()
    for condition in ("main_power_fault", "battery_fault", "bus_fault"):
        await panel.perform(step(action="panel", condition=condition))
    await harness.settle()
    await panel.perform(step(action="panel", condition="main_power_fault", on=False))
    await harness.settle()
    faults = harness.events(EventType.FAULT_RAISED, EventType.FAULT_CLEARED)
    assert [(e.type.value, e.code, e.point, e.message) for e in faults] == [
        ("fault_raised", "main_power_fault", None, "main power fault"),
        ("fault_raised", "battery_fault", None, "battery fault"),
        ("fault_raised", "bus_fault", None, "bus fault"),
        ("fault_cleared", "main_power_fault", None, "main power fault"),
    ]
    values = harness.panels()[-1].values
    assert (values["main_power_fault"], values["battery_fault"], values["bus_fault"]) == (False, True, True)


async def test_garbage_is_refused_and_dead_lettered_while_good_points_arrive(
    harness: Harness, panel: CountingPanel
) -> None:
    harness.run(panel.port)
    await harness.settle()
    await panel.perform(step(action="garbage", count=6))
    before = len(harness.panels())
    garbled = panel.garbage_points()
    good = next(p for p in panel.points("smoke_detector")[1:] if p not in garbled)
    await panel.perform(step(action="point", point=good, state="fire"))
    await harness.settle()
    await harness.settle()
    reasons = sorted(letter.reason for letter in harness.letters)
    assert len(reasons) == 6, "one dead letter per bad point, not one per poll"
    assert all(any(r.startswith(f"point {p}: ") for r in reasons) for p in garbled)
    assert sum("undefined status bits 0x8000" in r for r in reasons) == 3
    assert sum("unknown point type code" in r for r in reasons) == 3
    assert all(letter.source == "modbus" and letter.ref is not None for letter in harness.letters)
    assert ("fault_raised", good, "fire", f"photoelectric smoke detector {good}: fire") in harness.changes()
    assert harness.panels()[-1].values["points_rejected"] == 6
    # The refused points keep their last good state: the counts do not drop them.
    assert harness.panels()[-1].values["points_total"] == len(panel.points())
    # Counted on every poll that read garbage (the one running when it started may have missed it).
    polls = len(harness.panels()) - before
    for point in garbled:
        assert harness.metrics.get("modbus_rejected_values", device="f1", point=point) >= polls - 1
    await panel.perform(step(action="garbage_stop"))
    await harness.settle()
    assert harness.panels()[-1].values["points_rejected"] == 0
    assert len(harness.letters) == 6
    assert {point for _, point, _, _ in harness.changes()} == {good}, "garbage raises no events"


async def test_comm_lost_once_after_the_grace_then_restored(harness: Harness, panel: CountingPanel) -> None:
    harness.run(panel.port, comm_grace_s=3.0)
    await harness.settle()
    await panel.perform(step(action="link_drop"))
    failures = lambda: harness.metrics.get("modbus_poll_failures", device="f1")  # noqa: E731
    await wait_until(lambda: failures() >= 3, what="failed polls")
    assert _comm(harness) == [FIRST]
    harness.clock.advance(3.0)
    await wait_until(lambda: bool(harness.events(EventType.COMM_LOST)), what="comm_lost")
    seen = failures()
    await wait_until(lambda: failures() >= seen + 2, what="more failed polls")
    assert len(harness.events(EventType.COMM_LOST)) == 1
    await panel.perform(step(action="link_restore"))
    await wait_until(lambda: len(harness.events(EventType.COMM_RESTORED)) >= 2, what="comm_restored")
    await harness.settle()
    assert [(t, m.split(" for ")[0], d) for t, m, d in _comm(harness)] == [
        FIRST,
        (EventType.COMM_LOST, "no answer", {"reason": "no_connection"}),
        (EventType.COMM_RESTORED, "answering again", {}),
    ]
    # Nothing changed on the panel meanwhile: no point events from the outage.
    assert harness.changes() == []


async def test_every_point_again_at_the_snapshot_interval(harness: Harness, panel: CountingPanel) -> None:
    harness.run(panel.port, snapshot_interval_s=60.0)
    await harness.settle()
    total = len(panel.points())
    assert len(harness.points()) == total
    await harness.settle()
    assert len(harness.points()) == total, "no point readings while nothing changes"
    harness.clock.advance(60.0)
    await harness.settle()
    assert len(harness.points()) == 2 * total
    assert {r.point for r in harness.points()[total:]} == set(panel.points())


async def test_slow_answers_within_the_timeout_still_read(harness: Harness, panel: CountingPanel) -> None:
    await panel.perform(step(action="response_delay", delay_s=0.01))
    harness.run(panel.port)
    await harness.settle()
    assert harness.metrics.get("modbus_poll_failures") == 0


async def test_a_snapshot_of_every_point_is_one_write_of_the_gateways_batches(
    harness: Harness, panel: CountingPanel
) -> None:
    """A poll's messages go to the gateway's batches in one call: a snapshot of a few hundred points waits for one
    10 ms linger, not one each (which held a fire panel's next poll up for seconds, so a short alarm went unseen)."""
    writes: list[list[Reading | Event]] = []
    batch = PutBatch(lambda messages: writes.append(list(messages)), linger_s=0.01)
    poller = ModbusPoller(
        DeviceRef(site="s", building="b", device="f1", kind=DeviceKind.FIRE_PANEL, model=harness.driver.model),
        FirePanelInterpreter(harness.driver),
        ModbusAddress(host="127.0.0.1", port=panel.port),
        PollTiming(interval_s=INTERVAL_S, comm_grace_s=3.0, timeout_s=0.5),
        emit=batch.emit,
        emit_many=batch.emit_many,
        clock=harness.clock,
        metrics=harness.metrics,
        links=harness.links,
    )
    link = harness.links.acquire("127.0.0.1", panel.port)
    try:
        await poller.poll(link)
    finally:
        harness.links.release(link)
    # The first answer's announcement, then the panel reading and every point in one write.
    assert [len(w) for w in writes] == [1, 1 + len(panel.points())]
    assert isinstance(writes[0][0], Event)
    assert writes[0][0].type is EventType.COMM_RESTORED
    assert [m.point for m in writes[1]] == [None, *panel.points()]


def test_the_gateway_polls_fire_panels_with_the_fire_panel_interpreter(tmp_path: Path) -> None:
    def device(id_: str, kind: str, model: str, unit: int) -> dict[str, object]:
        return {"id": id_, "kind": kind, "model": model, "address": {"host": "127.0.0.1", "port": 1502, "unit": unit}}

    site = Site.model_validate(
        {
            "site": {"id": "s"},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [device("e1", "elevator", "elev-gb-a", 1), device("f1", "fire_panel", "fire-gb-a", 2)],
                }
            ],
        }
    )
    gateway = SiteGateway(
        site, mqtt=MqttSettings("127.0.0.1", 1), state_dir=tmp_path, clock=FakeClock(), metrics=Counters()
    )
    pollers = [c for c in gateway.collectors if isinstance(c, ModbusPoller)]
    assert len(pollers) == len(gateway.collectors) == 2
    kinds = {p.ref.device: type(p.interpreter).__name__ for p in pollers}
    assert kinds == {"e1": "ElevatorInterpreter", "f1": "FirePanelInterpreter"}
    # Each poll's messages go to the gateway's batches at once.
    assert all(p._emit_many == gateway.batch.emit_many for p in pollers)
    gateway.outbox.close()
