"""Cameras' and barriers' history: their faults (video loss, tamper, storage; an arm that did not reach its limit,
the loop detector, the card reader) and cameras gone silent for long enough to owe a visit, with the security
technicians' work on them.

The events are made as the MQTT collector makes them: a fault is the vendor's alarm message read through the
device's driver (collectors.mqtt.codec.interpret), silence is the collector's heartbeat watchdog.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

from collectors.mqtt.codec import interpret
from collectors.mqtt.watchdog import HeartbeatWatchdog
from collectors.registry import mqtt_driver
from facmon.demo_history.model import HistoryPlan, Incident, TimedEvent
from facmon.demo_history.profile import FLAT, between, duration, happens, moment, overlaps, stream
from facmon.demo_history.staff import Planning, office, pick
from facmon.estate.entries import Building, Device
from facmon.kernel.clock import FakeClock
from facmon.kernel.model import DeviceKind, Event, EventType
from gateway.mqtt_devices import grace_s

CAMERA_FAULTS = {"video_loss": 50, "tamper": 12, "recording_stopped": 15, "storage_failed": 10, "storage_full": 13}
GATE_FAULTS = {"limit_timeout": 45, "loop_fault": 20, "motor_overload": 20, "reader_offline": 15}
REPAIRS = {
    "video_loss": "video cable connector re-made at the camera",
    "tamper": "lens cleaned and camera re-aimed",
    "recording_stopped": "recorder restarted, recording checked",
    "storage_failed": "storage card replaced",
    "storage_full": "retention corrected, old recordings cleared",
    "limit_timeout": "arm limit switch adjusted",
    "loop_fault": "loop detector re-tuned, loop joint sealed",
    "motor_overload": "arm spring re-tensioned, motor checked",
    "reader_offline": "card reader cable re-terminated",
    "comm_lost": "network switch port reset, camera back online",
}
# Deadlines to be on site (facmon/workorders/library/sla.yaml): cameras 4 h, barriers 2 h.
ON_SITE_HOURS = {DeviceKind.CAMERA: 4.0, DeviceKind.GATE: 2.0}


def _devices(ctx: Planning, kind: DeviceKind) -> list[tuple[Building, Device]]:
    return [(b, d) for b, d in ctx.site.devices() if d.kind == kind]


async def security_history(ctx: Planning) -> HistoryPlan:
    plan = HistoryPlan()
    cameras, gates = _devices(ctx, DeviceKind.CAMERA), _devices(ctx, DeviceKind.GATE)
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    rng = stream(ctx.seed, "security")
    # Cameras first, then barriers: the order the seeded stream is drawn in.
    faulty = ((cameras, ctx.profile.camera_faults, CAMERA_FAULTS), (gates, ctx.profile.gate_faults, GATE_FAULTS))
    for number, day in enumerate(ctx.period.days()):
        for devices, rate, faults in faulty:
            if devices and happens(rng, rate):
                building, device = rng.choice(devices)
                fault, at = pick(rng, faults), moment(rng, ctx.period, day, FLAT)
                _fault(ctx, rng, plan, busy, building, device, fault, at, number)
        if cameras and happens(rng, ctx.profile.camera_outages):
            building, device = rng.choice(cameras)
            await _outage(ctx, rng, plan, busy, building, device, moment(rng, ctx.period, day, FLAT), number)
    return plan


def _condition(ctx: Planning, device: Device, code: str, active: bool, at: datetime, ids_event: str) -> Event:
    """The event the collector makes of the device's alarm message raising or clearing `code`."""
    driver = mqtt_driver(device.model)
    message, fields = driver.condition_payload(code, active)
    change = interpret(driver, message, fields).condition
    assert change is not None
    type_ = EventType.FAULT_RAISED if change.active else EventType.FAULT_CLEARED
    return Event(
        ref=ctx.site.ref(device.id), ts=at, type=type_, code=change.code, message=change.meaning.message, id=ids_event
    )


def _work(
    ctx: Planning, rng: random.Random, building: Building, device: Device, key: str, at: datetime
) -> tuple[Incident, list[TimedEvent]]:
    """The security technician on call: acknowledged within the hour mostly, on site within the deadline mostly."""
    technician = ctx.crew.responder(device.kind, at, rng)
    hours = ON_SITE_HOURS[device.kind]
    if rng.random() < 0.08:
        arrive = at + between(rng, hours * 60 + 10, hours * 90)
    else:
        arrive = at + duration(rng, hours * 25, 0.5, 15, hours * 58)
    events = []
    gate = ctx.crew.gate(building.id, rng) if technician and ctx.crew.by_card(technician, rng) else None
    if technician is not None and gate is not None:
        events.append(TimedEvent(ctx.crew.card_read(gate, technician, arrive, ctx.ids), key))
    ack = at + duration(rng, 15, 0.7, 2, 120)
    incident = Incident(
        key=key,
        device=device.id,
        responder=technician.id if technician else ctx.profile.office_actor,
        ack_at=ack if ack < arrive - timedelta(minutes=1) else None,
        arrive_at=arrive,
        arrive_by_card=bool(events),
    )
    return incident, events


def _fault(
    ctx: Planning,
    rng: random.Random,
    plan: HistoryPlan,
    busy: dict[str, list[tuple[datetime, datetime]]],
    building: Building,
    device: Device,
    code: str,
    at: datetime,
    number: int,
) -> None:
    key = f"{device.kind.value}/{device.id}/{number}"
    incident, events = _work(ctx, rng, building, device, key, at)
    assert incident.arrive_at is not None
    # Video loss is often a loose connector that comes and goes: some clear before anyone arrives.
    if code == "video_loss" and rng.random() < 0.25:
        clear = at + between(rng, 5, 60)
    else:
        clear = incident.arrive_at + duration(rng, 40, 0.9, 5, 600)
    resolve = max(clear, incident.arrive_at) + between(rng, 5, 30)
    if not ctx.period.contains(at) or resolve > ctx.horizon() or overlaps(busy.get(device.id, []), at, resolve):
        return
    busy.setdefault(device.id, []).append((at - timedelta(hours=1), resolve + timedelta(hours=1)))
    events += [
        TimedEvent(_condition(ctx, device, code, True, at, ctx.ids.next()), key),
        TimedEvent(_condition(ctx, device, code, False, clear, ctx.ids.next()), key),
    ]
    close_at, follow_up = office(rng, resolve, ctx.period, ctx.profile)
    done = replace(incident, resolve_at=resolve, resolve_note=REPAIRS[code], close_at=close_at, follow_up=follow_up)
    plan.add(done, events)


async def _outage(
    ctx: Planning,
    rng: random.Random,
    plan: HistoryPlan,
    busy: dict[str, list[tuple[datetime, datetime]]],
    building: Building,
    device: Device,
    at: datetime,
    number: int,
) -> None:
    """A camera silent for 15 min to 3 h: comm_lost after its grace, a work order after the 10-minute hold."""
    key = f"camera/{device.id}/silent/{number}"
    back = at + between(rng, 15, 180)
    incident, events = _work(ctx, rng, building, device, key, at)
    assert incident.arrive_at is not None
    resolve = max(back, incident.arrive_at) + between(rng, 5, 20)
    if not ctx.period.contains(at) or resolve > ctx.horizon() or overlaps(busy.get(device.id, []), at, resolve):
        return
    busy.setdefault(device.id, []).append((at - timedelta(hours=1), resolve + timedelta(hours=1)))
    events += [TimedEvent(e, key) for e in await _silence(ctx, device, at, back)]
    plan.silences.setdefault(device.id, []).append((at, back))
    close_at, _ = office(rng, resolve, ctx.period, ctx.profile)
    plan.add(replace(incident, resolve_at=resolve, resolve_note=REPAIRS["comm_lost"], close_at=close_at), events)


async def _silence(ctx: Planning, device: Device, last_heard: datetime, heard_again: datetime) -> list[Event]:
    """What the collector's watchdog reports of a device last heard at `last_heard` and again at `heard_again`."""
    made: list[Event] = []

    async def emit(message: object) -> None:
        assert isinstance(message, Event)
        made.append(message.model_copy(update={"id": ctx.ids.next()}))

    clock = FakeClock(last_heard)
    grace = grace_s(device, mqtt_driver(device.model))
    watchdog = HeartbeatWatchdog([(ctx.site.ref(device.id), grace)], emit=emit, clock=clock)
    clock.advance(timedelta(seconds=grace))
    await watchdog.check()
    clock.advance(heard_again - clock.now())
    await watchdog.heard(device.id)
    return made
