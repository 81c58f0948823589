"""A device's first answer since its gateway started (comm_restored marked first_contact) sets its comm to ok, and
does nothing else: no work order opened, cleared or cancelled, no hold started; a pending comm hold is cancelled, as
by any restore. Through the engine, the store, the state rules, a migrated database and the running worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto, free_port
from facmon.kernel.db import make_engine
from facmon.kernel.metrics import Counters
from facmon.kernel.model import FIRST_CONTACT, DeviceKind, DeviceRef, Event, EventType
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.tables import WorkOrder
from rules.engine import SetComm, evaluate, load_rules
from rules.state_rules import load_state_rules
from rules.state_store import apply_state_event, tick
from rules.store import apply_event, device_statuses
from rules.tables import DeviceStatus, RuleHold
from tests.databases import Databases
from tests.rules.test_worker import as_message, eventually, make_worker, publish, running

RULES = load_rules()
STATE_RULES = load_state_rules()
T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def _ref(kind: DeviceKind = DeviceKind.ELEVATOR, device: str = "e1", site: str = "s1") -> DeviceRef:
    model = {"elevator": "elev-gb-a", "fire_panel": "fire-gb-a", "gate": "barrier-a", "camera": "camera-a"}[kind]
    return DeviceRef(site=site, building="b1", device=device, kind=kind, model=model)


def first_contact(ts: datetime, ref: DeviceRef | None = None) -> Event:
    message = "answering" if ref is None or ref.kind in (DeviceKind.ELEVATOR, DeviceKind.FIRE_PANEL) else "talking"
    return Event(ref=ref or _ref(), ts=ts, type=EventType.COMM_RESTORED, message=message, data={FIRST_CONTACT: True})


def _apply(engine: Engine, event: Event, now: datetime) -> None:
    apply_event(engine, event, evaluate(RULES, event, now), now)
    apply_state_event(engine, event, STATE_RULES, {}, now)


def _work_orders(engine: Engine) -> list[tuple[str, str, str, datetime | None]]:
    with Session(engine) as session:
        rows = session.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars()
        return [(wo.device, wo.fault, wo.status, wo.fault_cleared_at) for wo in rows]


def _holds(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(h.device, h.rule_id) for h in session.execute(select(RuleHold)).scalars()]


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_the_only_action_is_comm_ok(kind: DeviceKind) -> None:
    event = first_contact(T0, _ref(kind))
    [action] = evaluate(RULES, event, T0)
    assert isinstance(action, SetComm)
    assert (action.device, action.comm, action.at) == ("e1", "ok", T0)


def test_it_makes_a_device_never_heard_from_comm_ok(engine: Engine) -> None:
    with Session(engine) as session:
        assert device_statuses(session) == {}, "unknown before its first contact"
    _apply(engine, first_contact(T0), T0)
    with Session(engine) as session:
        status = session.get(DeviceStatus, ("s1", "e1"))
        assert status is not None
        assert (status.comm, status.comm_since, status.last_event_type) == ("ok", T0, "comm_restored")
    assert _work_orders(engine) == []
    assert _holds(engine) == []


def test_it_neither_opens_nor_clears_nor_cancels_work_orders(engine: Engine) -> None:
    clock = FakeClock(T0)
    fault = Event(ref=_ref(), ts=clock.now(), type=EventType.FAULT_RAISED, code="2")
    _apply(engine, fault, clock.now())
    before = _work_orders(engine)
    assert [(d, f, s) for d, f, s, _ in before] == [("e1", "2", "open")]
    clock.advance(60)
    # The gateway restarted: the elevator's first answer since.
    _apply(engine, first_contact(clock.now()), clock.now())
    assert _work_orders(engine) == before, "the door fault's work order is untouched"
    assert _holds(engine) == []


def test_it_cancels_a_pending_comm_hold_as_any_restore(engine: Engine) -> None:
    clock = FakeClock(T0)
    lost = Event(ref=_ref(), ts=clock.now(), type=EventType.COMM_LOST, message="no answer for 3.0 s")
    _apply(engine, lost, clock.now())
    assert _holds(engine) == [("e1", "elevator.comm.lost.work-order")]
    clock.advance(timedelta(minutes=2))
    # The gateway restarted within the hold, and the elevator answers: it is plainly there again.
    _apply(engine, first_contact(clock.now()), clock.now())
    assert _holds(engine) == []
    with Session(engine) as session:
        status = session.get(DeviceStatus, ("s1", "e1"))
        assert status is not None
        assert (status.comm, status.comm_since) == ("ok", clock.now())
    clock.advance(timedelta(minutes=30))
    assert tick(engine, STATE_RULES, {}, clock.now()).opened == []
    assert _work_orders(engine) == []


def test_comm_since_moves_with_each_comm_event_and_not_with_others(engine: Engine) -> None:
    clock = FakeClock(T0)
    _apply(engine, first_contact(clock.now()), clock.now())
    clock.advance(30)
    _apply(engine, Event(ref=_ref(), ts=clock.now(), type=EventType.FAULT_RAISED, code="2"), clock.now())
    with Session(engine) as session:
        status = session.get(DeviceStatus, ("s1", "e1"))
        assert status is not None
        assert (status.comm, status.comm_since, status.last_event_at) == ("ok", T0, clock.now())
    clock.advance(30)
    _apply(engine, Event(ref=_ref(), ts=clock.now(), type=EventType.COMM_LOST), clock.now())
    with Session(engine) as session:
        status = session.get(DeviceStatus, ("s1", "e1"))
        assert status is not None
        assert (status.comm, status.comm_since) == ("lost", clock.now())


def test_a_migrated_database_takes_comm_since_from_the_last_comm_event(databases: Databases) -> None:
    engine = make_engine(databases.url(migrated=False))
    try:
        create_schema(engine, "0010")
        stamp = T0.replace(tzinfo=None).isoformat(sep=" ")
        with engine.begin() as connection:
            for device, comm, last in [("e1", "lost", "comm_lost"), ("e2", "ok", "fault_raised")]:
                connection.execute(
                    text(
                        "INSERT INTO device_status (site, device, comm, last_event_at, last_event_type)"
                        " VALUES ('s1', :device, :comm, :t, :last)"
                    ),
                    {"device": device, "comm": comm, "t": stamp, "last": last},
                )
        create_schema(engine)
        with Session(engine) as session:
            found = {key: (s.comm, s.comm_since) for key, s in device_statuses(session).items()}
        assert found == {("s1", "e1"): ("lost", T0), ("s1", "e2"): ("ok", None)}
    finally:
        engine.dispose()


async def test_the_worker_sets_comm_ok_from_a_first_contact_on_the_broker(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, topic_prefix: str
) -> None:
    metrics = Counters()
    camera = _ref(DeviceKind.CAMERA, "c1", site=topic_prefix)
    async with running(make_worker(mosquitto.port, engine, clock, metrics, f"rules-{topic_prefix}", site=topic_prefix)):
        await publish(mosquitto.port, as_message(first_contact(clock.now(), camera)))
        await eventually(lambda: metrics.get("rules_events_applied") == 1, "the first contact applied")
    with Session(engine) as session:
        status = session.get(DeviceStatus, (topic_prefix, "c1"))
        assert status is not None
        assert (status.comm, status.comm_since) == ("ok", clock.now())
    assert _work_orders(engine) == []
    assert metrics.get("rules_work_orders_opened") == 0
    assert metrics.get("rules_holds_started") == 0


async def test_a_worker_started_after_the_first_contact_still_learns_it(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, topic_prefix: str, tmp_path: Path
) -> None:
    """A first start of a whole system: the gateway announces its devices before any rules worker has a session, so
    nobody queues those events for it. The broker keeps each device's last comm event (retained), so a worker that
    subscribes later still learns that the device answers."""
    from facmon.estate.site import Site
    from facmon.kernel.clock import SystemClock
    from gateway.site_gateway import SiteGateway
    from simulators.site import SiteSimulator
    from tests.gateway.conftest import running as running_task
    from tests.support import one_elevator_site, wait_for

    site = Site.model_validate(one_elevator_site(topic_prefix, free_port()))
    simulator = SiteSimulator(site, seed=1)
    gateway_metrics = Counters()
    gateway = SiteGateway(
        site,
        mqtt=MqttSettings("127.0.0.1", mosquitto.port),
        state_dir=tmp_path,
        clock=SystemClock(),
        metrics=gateway_metrics,
    )
    async with running_task(simulator.run(), "simulator"), running_task(gateway.run(), "gateway"):

        async def announced() -> bool:
            # The first poll that answers announces the first contact; after two, with the outbox empty, the
            # broker has it.
            polled = gateway_metrics.get("modbus_polls") - gateway_metrics.get("modbus_poll_failures")
            return polled >= 2 and gateway.outbox.size() == 0

        await wait_for(announced, 20, "the gateway to publish e1's first contact")
        metrics = Counters()
        async with running(
            make_worker(mosquitto.port, engine, clock, metrics, f"rules-late-{topic_prefix}", site=topic_prefix)
        ):
            await eventually(lambda: metrics.get("rules_events_applied") >= 1, "the retained comm event applied")
    with Session(engine) as session:
        status = session.get(DeviceStatus, (topic_prefix, "e1"))
        assert status is not None
        assert status.comm == "ok"
