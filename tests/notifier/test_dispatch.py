"""The dispatcher and the sender on the fake clock over a real SQLite file: the entrapment chain, stopping on
acknowledge, resolve and cancel, restart safety, retries with backoff, maintenance windows and storm control."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.accounts.models import Role as UserRole
from facmon.kernel.clock import FakeClock
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.notifier.base import DeliveryError, Notification, Recipient
from facmon.notifier.dispatcher import Dispatcher
from facmon.notifier.policy import Role
from facmon.notifier.queue import Sender, deliveries_of, delivery_backoff
from facmon.notifier.recipients import Target
from facmon.notifier.storm import MaintenanceWindow, StormLimits
from facmon.workorders.breaches import SlaMonitor
from facmon.workorders.tables import WorkOrderEvent, WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.api.accounts import bearer

RULES = load_rules()
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
TECH = Recipient("li-ming", "Li Ming", "+86 138 0000 0001")
SUPERVISOR = Recipient("zhao-lei", "Zhao Lei", "+86 138 0000 0002")
MANAGER = Recipient("contact:8613800000009", "Chen Jing", "+86 138 0000 0009")


def resolver(site: str, kind: str, at: datetime) -> Sequence[Target]:
    return (Target(Role.ON_CALL, TECH), Target(Role.SUPERVISOR, SUPERVISOR), Target(Role.MANAGER, MANAGER))


class Phone:
    """A channel that records what it accepted; `down` makes it refuse, as a channel whose server is away."""

    name = "phone"

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        self.down = False
        self.attempts = 0

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        self.attempts += 1
        if self.down:
            raise DeliveryError("connection refused")
        self.received.append((recipient.id, notification.reason, notification.key))


def open_work_order(
    engine: Engine, clock: FakeClock, code: str, *, device: str = "e1", kind: DeviceKind = DeviceKind.ELEVATOR
) -> int:
    ref = DeviceRef(site="s1", building="b1", device=device, kind=kind, model="m")
    event = Event(ref=ref, ts=clock.now(), type=EventType.FAULT_RAISED, code=code)
    [wo_id] = apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now()).opened
    return wo_id


def make(engine: Engine, clock: FakeClock, phone: Phone, **kwargs: object) -> tuple[Dispatcher, Sender]:
    dispatcher = Dispatcher(engine, clock, resolver=resolver, channels={"phone": phone}, **kwargs)  # type: ignore[arg-type]
    sender = Sender(engine, {"phone": phone}, clock, backoff=delivery_backoff(random.Random(1)))
    return dispatcher, sender


def timeline(engine: Engine, wo_id: int) -> list[tuple[str, str | None, str | None]]:
    with Session(engine) as session:
        entries = session.execute(
            select(WorkOrderEvent).where(WorkOrderEvent.work_order_id == wo_id).order_by(WorkOrderEvent.id)
        ).scalars()
        return [(e.type, e.actor, e.detail.get("step")) for e in entries if e.source == "notifier"]


# How far the clock moves between two ticks of the parts. The services tick every second; the escalation steps,
# SLA deadlines and storm periods of these tests all fall on whole multiples of 5 s from the work order's opening,
# so ticking every 5 s sees each of them at the same moment as ticking every second, at a fifth of the database
# round trips (a tick is a few queries: on PostgreSQL, 20 minutes second by second took 15-25 s a test).
STEP = 5 * SEC


async def run_to(clock: FakeClock, at: datetime, *parts: Dispatcher | Sender | SlaMonitor) -> None:
    """Advance to `at` in steps of `STEP` (the last one shorter if need be), ticking each part after every step."""
    while clock.now() < at:
        clock.advance(min(STEP, at - clock.now()))
        for part in parts:
            await part.tick()


async def test_entrapment_escalates_at_0_5_10_and_manager_on_the_20_minute_breach(
    engine: Engine, clock: FakeClock
) -> None:
    phone = Phone()
    dispatcher, sender = make(engine, clock, phone)
    monitor = SlaMonitor(engine, clock)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "entrapment")
    await dispatcher.tick()
    await sender.tick()
    assert phone.received == [("li-ming", "opened", f"wo{wo}:on_call#0:li-ming")]
    await run_to(clock, t0 + 5 * MIN - SEC, monitor, dispatcher, sender)
    assert len(phone.received) == 1
    await run_to(clock, t0 + 5 * MIN, monitor, dispatcher, sender)
    assert phone.received[-1][:2] == ("li-ming", "reminder")
    await run_to(clock, t0 + 10 * MIN, monitor, dispatcher, sender)
    assert [r[:2] for r in phone.received[-2:]] == [("li-ming", "reminder"), ("zhao-lei", "escalation")]
    await run_to(clock, t0 + 20 * MIN, monitor, dispatcher, sender)
    assert all(r[0] != MANAGER.id for r in phone.received)  # the deadline itself is still in time
    await run_to(clock, t0 + 20 * MIN + SEC, monitor, dispatcher, sender)
    assert phone.received[-1][:2] == (MANAGER.id, "breach")
    assert timeline(engine, wo) == [
        ("notified", "Li Ming", "on_call#0"),
        ("notified", "Li Ming", "on_call#1"),
        ("notified", "Li Ming", "on_call#2"),
        ("escalated", "Zhao Lei", "supervisor#0"),
        ("notified", "Li Ming", "on_call#3"),
        ("notified", "Li Ming", "on_call#4"),
        ("escalated", "Chen Jing", "manager#0"),
    ]
    log = deliveries_of(engine, wo)
    assert len(log) == 7
    assert all(d.delivered_at is not None and d.attempts == 1 for d in log)
    assert all(d.latency_s is not None and 0 <= d.latency_s <= 1 for d in log)


@pytest.mark.parametrize("to", [WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.RESOLVED, WorkOrderStatus.CANCELLED])
async def test_escalation_stops_on_acknowledge_resolve_and_cancel(
    engine: Engine, clock: FakeClock, to: WorkOrderStatus
) -> None:
    phone = Phone()
    dispatcher, sender = make(engine, clock, phone)
    monitor = SlaMonitor(engine, clock)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "entrapment")
    await run_to(clock, t0 + 2 * MIN, monitor, dispatcher, sender)
    if to is WorkOrderStatus.RESOLVED:
        transition(engine, wo, WorkOrderStatus.ON_SITE, actor="Li Ming", source="api", at=clock.now())
    transition(engine, wo, to, actor="Li Ming", source="api", at=clock.now())
    await run_to(clock, t0 + 25 * MIN, monitor, dispatcher, sender)
    expected = [("li-ming", "opened")]
    if to is WorkOrderStatus.ACKNOWLEDGED:
        # Acknowledged is not on site: the manager still hears that the 20-minute arrival was missed.
        expected.append((MANAGER.id, "breach"))
    assert [r[:2] for r in phone.received] == expected


async def test_a_new_dispatcher_over_the_same_database_sends_nothing_twice(engine: Engine, clock: FakeClock) -> None:
    phone = Phone()
    first, sender = make(engine, clock, phone)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "entrapment")
    await run_to(clock, t0 + 10 * MIN, first, sender)
    sent = list(phone.received)
    assert len(sent) == 4
    # A restart: new dispatcher and sender, same database and same moment; then on as before.
    second, sender2 = make(engine, clock, phone)
    assert (await second.tick()).sent == 0
    assert await sender2.tick() == 0
    await run_to(clock, t0 + 15 * MIN, second, sender2, first)  # and two dispatchers side by side
    assert phone.received[:4] == sent
    keys = [r[2] for r in phone.received]
    assert len(keys) == len(set(keys)) == 5
    assert len(deliveries_of(engine, wo)) == 5


async def test_a_channel_that_is_down_is_retried_with_backoff_and_loses_nothing(
    engine: Engine, clock: FakeClock
) -> None:
    phone = Phone()
    phone.down = True
    dispatcher, sender = make(engine, clock, phone)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "entrapment")
    await dispatcher.tick()
    attempt_times: list[datetime] = []
    while clock.now() < t0 + 3 * MIN:
        before = phone.attempts
        await sender.tick()
        if phone.attempts > before:
            attempt_times.append(clock.now())
        clock.advance(SEC)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempt_times)]
    # 5 s doubling, half to full of it (jitter), capped at 5 min: e.g. ~5, ~10, ~20, ~40 s.
    assert len(gaps) >= 3
    for n, gap in enumerate(gaps[:4], start=1):
        ceiling = min(300, 5 * 2 ** (n - 1))
        assert ceiling / 2 - 1 <= gap <= ceiling + 1, (n, gaps)
    [row] = deliveries_of(engine, wo)
    assert row.delivered_at is None
    assert row.last_error == "connection refused"
    assert row.attempts == len(attempt_times)
    phone.down = False
    await run_to(clock, t0 + 10 * MIN, dispatcher, sender)
    log = deliveries_of(engine, wo)
    assert [r[1] for r in phone.received] == ["opened", "reminder", "reminder", "escalation"]
    assert all(d.delivered_at is not None for d in log)
    assert log[0].latency_s is not None
    assert log[0].latency_s > 180


async def test_a_permanent_refusal_is_given_up_and_logged(engine: Engine, clock: FakeClock) -> None:
    class Refusing(Phone):
        async def send(self, notification: Notification, recipient: Recipient) -> None:
            raise DeliveryError("no such number", retryable=False)

    phone = Refusing()
    dispatcher, sender = make(engine, clock, phone)
    wo = open_work_order(engine, clock, "entrapment")
    await dispatcher.tick()
    await sender.tick()
    [row] = deliveries_of(engine, wo)
    assert row.failed_at == clock.now()
    assert row.last_error == "no such number"
    assert row.attempts == 1


async def test_maintenance_window_silences_a_camera_fault_but_not_an_entrapment(
    engine: Engine, clock: FakeClock
) -> None:
    phone = Phone()
    window = MaintenanceWindow("s1", clock.now(), clock.now() + 60 * MIN, building="b1", reason="planned works")
    dispatcher, sender = make(engine, clock, phone, maintenance=[window])
    t0 = clock.now()
    camera = open_work_order(engine, clock, "video_loss", device="cam1", kind=DeviceKind.CAMERA)
    lift = open_work_order(engine, clock, "entrapment")
    await run_to(clock, t0 + 2 * MIN, dispatcher, sender)
    assert [(r[1], r[2]) for r in phone.received] == [("opened", f"wo{lift}:on_call#0:li-ming")]
    assert timeline(engine, camera) == [("silenced", None, "on_call#0")]


async def test_a_building_wide_cause_is_one_message_and_the_rest_a_digest(engine: Engine, clock: FakeClock) -> None:
    phone = Phone()
    dispatcher, sender = make(engine, clock, phone, limits=StormLimits(rate_limit=2))
    t0 = clock.now()
    # Five cameras of one building within 40 s (a switch died): routine, first alert after the 1-minute window.
    cams = []
    for i in range(5):
        cams.append(open_work_order(engine, clock, "video_loss", device=f"cam{i}", kind=DeviceKind.CAMERA))
        clock.advance(10 * SEC)
    await run_to(clock, t0 + 3 * MIN, dispatcher, sender)
    assert [r[1] for r in phone.received] == ["opened"]
    assert phone.received[0][2] == f"wo{cams[0]}:on_call#0:li-ming"
    assert all(("notified", "Li Ming", "on_call#0") in timeline(engine, c) for c in cams)
    # Then gates and elevators of other buildings, one each: the limit of 2 per 10 min lets one more through.
    for i, building in enumerate(["b2", "b3", "b4"]):
        ref = DeviceRef(site="s1", building=building, device=f"g{i}", kind=DeviceKind.GATE, model="m")
        event = Event(ref=ref, ts=clock.now(), type=EventType.FAULT_RAISED, code="limit_timeout")
        apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now())
    await run_to(clock, t0 + 5 * MIN, dispatcher, sender)
    assert [r[1] for r in phone.received] == ["opened", "opened", "digest"]


async def test_delivery_log_is_served(engine: Engine, clock: FakeClock) -> None:
    import httpx

    from api.app import create_app

    phone = Phone()
    phone.down = True
    dispatcher, sender = make(engine, clock, phone)
    wo = open_work_order(engine, clock, "entrapment")
    await dispatcher.tick()
    await sender.tick()
    transport = httpx.ASGITransport(app=create_app(sites=[], engine=engine))
    headers = bearer(engine, UserRole.ENGINEER)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test", headers=headers) as client:
        [row] = (await client.get(f"/api/v1/work-orders/{wo}/deliveries")).json()
        missing = await client.get("/api/v1/work-orders/999/deliveries")
    assert (row["result"], row["attempts"], row["last_error"], row["channel"]) == (
        "pending",
        1,
        "connection refused",
        "phone",
    )
    assert missing.status_code == 404
