"""Two notifiers and two SLA monitors over one real PostgreSQL database, ticking at the same moments of the fake
clock (their database work in threads at once, as two processes would): every escalation step is recorded once,
every fire alarm alerted once, and every queued message delivered once, by one sender or the other."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.notifier.base import Notification, Recipient
from facmon.notifier.dispatcher import Dispatcher
from facmon.notifier.queue import Sender, delivery_backoff
from facmon.notifier.tables import Delivery, NotificationStep
from facmon.workorders.breaches import SlaMonitor
from rules.engine import FireAlarmSignal, evaluate, load_rules
from rules.fire import record_fire_signals
from tests.notifier.test_dispatch import open_work_order, resolver

ORDERS = 30
ALARMS = 5


class Phone:
    """One channel shared by both notifiers (one receiver): what it accepted, duplicates included."""

    name = "phone"

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        await asyncio.sleep(0)  # the other sender's turn, as a real channel's network wait gives it
        self.keys.append(f"{notification.key}/{recipient.id}")


def _fire(engine: Engine, clock: FakeClock, n: int) -> None:
    ref = DeviceRef(site="s1", building="b1", device=f"fp{n}", kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")
    event = Event(ref=ref, ts=clock.now(), type=EventType.FAULT_RAISED, code="fire", point="1-004")
    signals = [a for a in evaluate(load_rules(), event, clock.now()) if isinstance(a, FireAlarmSignal)]
    record_fire_signals(engine, signals, clock.now())


async def test_two_notifiers_record_each_step_once_and_deliver_each_message_once(postgres_engine: Engine) -> None:
    clock = FakeClock()
    for n in range(ORDERS):
        open_work_order(postgres_engine, clock, "entrapment", device=f"e{n}")  # alerted at once, escalated
    for n in range(ALARMS):
        _fire(postgres_engine, clock, n)
    phone = Phone()
    url = postgres_engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(2)]
    try:
        dispatchers = [Dispatcher(e, clock, resolver=resolver, channels={"phone": phone}) for e in engines]
        senders = [Sender(e, {"phone": phone}, clock, backoff=delivery_backoff(random.Random(1))) for e in engines]
        monitors = [SlaMonitor(e, clock) for e in engines]
        # Past the first alert, the 5- and 10-minute escalations and the 20-minute breach that calls the manager.
        for _ in range(22 * 6):
            clock.advance(timedelta(seconds=10))
            for parts in (monitors, dispatchers, senders):
                await asyncio.gather(*(part.tick() for part in parts))
    finally:
        for engine in engines:
            engine.dispose()
    with Session(postgres_engine) as session:
        queued = session.execute(select(Delivery.key, Delivery.delivered_at)).all()
        steps = session.execute(select(func.count()).select_from(NotificationStep)).scalar_one()
    assert steps >= ORDERS * 3  # on call, supervisor, manager at least, each recorded once (their primary key)
    assert queued
    assert all(delivered is not None for _, delivered in queued)
    duplicates = {key: n for key, n in Counter(phone.keys).items() if n > 1}
    assert duplicates == {}
    assert len(phone.keys) == len(queued)
