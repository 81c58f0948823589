"""A fire alarm is not a work order, but it is alerted at once to the on-call fire technician, the supervisor and the
manager, is never silenced, and is sent once, also across a restart."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.notifier.base import Notification, Recipient
from facmon.notifier.dispatcher import Dispatcher
from facmon.notifier.message import render_text
from facmon.notifier.policy import Role
from facmon.notifier.queue import Sender, delivery_backoff
from facmon.notifier.recipients import Target
from facmon.notifier.storm import MaintenanceWindow
from facmon.notifier.tables import Delivery
from rules.engine import FireAlarmSignal, evaluate, load_rules
from rules.fire import record_fire_signals
from rules.tables import FireAlarm

FIRE_TECH = Recipient("wang-fang", "Wang Fang", "+86 138 0000 0003")
SUPERVISOR = Recipient("zhao-lei", "Zhao Lei", "+86 138 0000 0002")
MANAGER = Recipient("chen-jing", "Chen Jing", "+86 138 0000 0009")
asked: list[str] = []


def resolver(site: str, kind: str, at: datetime) -> Sequence[Target]:
    asked.append(kind)
    return (Target(Role.ON_CALL, FIRE_TECH), Target(Role.SUPERVISOR, SUPERVISOR), Target(Role.MANAGER, MANAGER))


class Phone:
    name = "phone"

    def __init__(self) -> None:
        self.received: list[tuple[Recipient, Notification]] = []

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        self.received.append((recipient, notification))


def raise_fire(engine: Engine, clock: FakeClock, point: str = "1-004") -> int:
    ref = DeviceRef(site="s1", building="b1", device="fp1", kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")
    event = Event(
        ref=ref, ts=clock.now(), type=EventType.FAULT_RAISED, code="fire", point=point, data={"point_type": "smoke"}
    )
    signals = [a for a in evaluate(load_rules(), event, clock.now()) if isinstance(a, FireAlarmSignal)]
    [alarm_id] = record_fire_signals(engine, signals, clock.now())
    return alarm_id


async def test_a_fire_alarm_goes_to_everyone_at_once_and_only_once(engine: Engine) -> None:
    clock = FakeClock()
    phone = Phone()
    # A maintenance window over the whole site: routine alerts would be silent, a fire alarm is not.
    window = MaintenanceWindow(site="s1", start=clock.now() - timedelta(hours=1), end=clock.now() + timedelta(hours=1))
    dispatcher = Dispatcher(engine, clock, resolver=resolver, channels={"phone": phone}, maintenance=[window])
    sender = Sender(engine, {"phone": phone}, clock, backoff=delivery_backoff(random.Random(1)))
    alarm_id = raise_fire(engine, clock)

    result = await dispatcher.tick()
    await sender.tick()
    assert result.fire_alarms == 1
    assert asked[-1] == DeviceKind.FIRE_PANEL.value, "the fire discipline's rota is asked"
    assert [r.id for r, _ in phone.received] == ["wang-fang", "zhao-lei", "chen-jing"]
    _, message = phone.received[0]
    assert (message.fire_alarm_id, message.work_order_id, message.priority) == (alarm_id, None, "emergency")
    assert "FIRE ALARM" in render_text(message)

    # Later ticks, and a dispatcher built anew over the same database (a restart), send nothing again.
    clock.advance(60)
    again = Dispatcher(engine, clock, resolver=resolver, channels={"phone": phone})
    assert (await dispatcher.tick()).fire_alarms == 0
    assert (await again.tick()).fire_alarms == 0
    await sender.tick()
    assert len(phone.received) == 3
    with Session(engine) as session:
        assert session.scalar(select(FireAlarm.alerted_at).where(FireAlarm.id == alarm_id)) == clock.now() - timedelta(
            seconds=60
        )
        rows = session.scalars(select(Delivery).where(Delivery.fire_alarm_id == alarm_id)).all()
        assert {(row.recipient_id, row.work_order_id) for row in rows} == {
            ("wang-fang", None),
            ("zhao-lei", None),
            ("chen-jing", None),
        }
        assert all(row.delivered_at is not None for row in rows)


async def test_one_message_per_person_when_the_on_call_technician_is_also_the_supervisor(engine: Engine) -> None:
    clock = FakeClock()
    phone = Phone()

    def same_person(site: str, kind: str, at: datetime) -> Sequence[Target]:
        return (Target(Role.ON_CALL, SUPERVISOR), Target(Role.SUPERVISOR, SUPERVISOR), Target(Role.MANAGER, MANAGER))

    dispatcher = Dispatcher(engine, clock, resolver=same_person, channels={"phone": phone})
    raise_fire(engine, clock)
    await dispatcher.tick()
    await Sender(engine, {"phone": phone}, clock, backoff=delivery_backoff(random.Random(1))).tick()
    assert [(r.id, n.key.split(":")[1]) for r, n in phone.received] == [
        ("zhao-lei", "on_call"),
        ("chen-jing", "manager"),
    ]
