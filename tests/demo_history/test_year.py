"""A year of the demo site's history: every work order as the store keeps them (nothing left open, timelines in
order, statuses and SLA clocks that agree with the timeline), believable figures, the points in InfluxDB, and a
second run that changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from statistics import mean

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from collectors.registry import mqtt_driver
from facmon.demo_history.generate import ensure_demo_history, generate_history
from facmon.demo_history.guard import generated_until
from facmon.kernel.model import DeviceKind
from facmon.notifier.tables import Delivery
from facmon.reports.kpi_coverage import PRESENCE_FIELDS
from facmon.workorders.lifecycle import lifecycle_line
from facmon.workorders.tables import OPEN_STATUSES, TimelineType, WorkOrder, WorkOrderEvent, WorkOrderStatus
from facmon.workorders.transitions import NEXT
from gateway.mqtt_devices import grace_s
from rules.tables import FireAlarm
from tests.demo_history.conftest import Year
from tests.demo_history.support import UNTIL, count, digest, dump, query

S = WorkOrderStatus
# The status column each status's time is kept in.
REACHED = {S.ACKNOWLEDGED: "acknowledged_at", S.ON_SITE: "on_site_at", S.RESOLVED: "resolved_at"}


def _orders(year: Year) -> list[WorkOrder]:
    with Session(year.engine) as session:
        query = select(WorkOrder).options(
            selectinload(WorkOrder.timeline), selectinload(WorkOrder.clocks), selectinload(WorkOrder.follow_ups)
        )
        return list(session.execute(query.order_by(WorkOrder.id)).scalars())


def test_every_work_order_is_finished_by_the_end(year: Year) -> None:
    orders = _orders(year)
    assert len(orders) == sum(year.summary.work_orders.values()) > 150
    assert [wo.id for wo in orders if wo.status in {s.value for s in OPEN_STATUSES}] == []
    assert all(wo.detected_at < UNTIL and wo.updated_at <= UNTIL for wo in orders)


def test_timelines_are_in_order_and_agree_with_the_status(year: Year) -> None:
    for wo in _orders(year):
        entries = wo.timeline
        assert entries[0].type == TimelineType.OPENED, wo.id
        assert [e.at for e in entries] == sorted(e.at for e in entries), wo.id
        steps = [e for e in entries if e.type == TimelineType.TRANSITION]
        status = S.OPEN
        for step in steps:
            assert S(step.status or "") in NEXT[status] or step.detail["implied"], (wo.id, status, step.status)
            status = S(step.status or "")
            # The time of the first arrival at each status is kept in its column.
            column = REACHED.get(status) or f"{status.value}_at"
            assert getattr(wo, column) <= step.at, (wo.id, column)
        assert wo.status == status.value, wo.id
        assert wo.detected_at <= (wo.acknowledged_at or UNTIL) <= (wo.on_site_at or UNTIL) <= (wo.resolved_at or UNTIL)


def test_sla_clocks_agree_with_the_timeline(year: Year) -> None:
    """Met when the work order got there; a breach recorded once, one tick after a deadline it missed."""
    breaches = 0
    for wo in _orders(year):
        recorded = {e.detail["clock"]: e.at for e in wo.timeline if e.type == TimelineType.SLA_BREACHED}
        for clock in wo.clocks:
            reached = getattr(wo, REACHED[S(clock.milestone)])
            stopped = wo.cancelled_at if reached is None or (wo.cancelled_at and wo.cancelled_at < reached) else None
            assert clock.met_at == (None if stopped else reached), (wo.id, clock.name)
            assert clock.cancelled_at == stopped, (wo.id, clock.name)
            in_time = (clock.met_at or clock.cancelled_at or UNTIL) <= clock.due_at
            if in_time:
                assert clock.breached_at is None, (wo.id, clock.name)
                assert clock.name not in recorded, (wo.id, clock.name)
            else:
                assert clock.breached_at == clock.due_at + timedelta(seconds=1) == recorded[clock.name], wo.id
                breaches += 1
    assert breaches == year.summary.breached_clocks > 0


def test_a_believable_year(year: Year) -> None:
    repairs = [wo for wo in _orders(year) if wo.kind == DeviceKind.ELEVATOR and wo.category == "repair"]
    faults = [wo for wo in repairs if wo.status != S.CANCELLED]
    entrapments = [wo for wo in faults if wo.fault == "entrapment"]
    arrivals = [(wo.on_site_at - wo.detected_at) / timedelta(minutes=1) for wo in faults if wo.on_site_at]
    assert 0.5 < len(entrapments) / len(faults) < 0.8
    assert 13 < mean(arrivals) < 19
    assert 0.8 < sum(a <= 20 for a in arrivals) / len(arrivals) < 0.97
    # The old cars (installed 2008 and 2012) fail more than the two young ones.
    per_car = Counter(wo.device for wo in faults)
    assert min(per_car[d] for d in ("b1-e1", "b1-e2", "b2-e1", "b2-e2")) > max(per_car["b1-e3"], per_car["b2-e3"])
    resolved = [wo for wo in _orders(year) if wo.resolved_at is not None and wo.category == "repair"]
    assert 0.25 < sum(bool(wo.follow_ups) for wo in resolved) / len(resolved) < 0.45
    sources = Counter(
        e.source for wo in faults for e in wo.timeline if e.status == S.ON_SITE and e.type == "transition"
    )
    assert sources["card_read"] > sources["api"] > 0


def test_the_points_in_influxdb(year: Year) -> None:
    url, db = year.influx_url, year.influx_db
    assert count(url, db, "SELECT count(event_id) FROM events") == year.summary.events
    assert year.summary.points["work_orders"] == year.summary.timeline_entries
    # Timeline entries of one series at one time are one point (a grouped work order recurring for two cars).
    with Session(year.engine) as session:
        lines = [
            lifecycle_line(entry, wo)
            for entry, wo in session.execute(select(WorkOrderEvent, WorkOrder).join(WorkOrder))
        ]
    points = {(line.split(" ")[0], line.rsplit(" ", 1)[1]) for line in lines}
    assert count(url, db, "SELECT count(work_order_id) FROM work_orders") == len(points)
    assert count(url, db, "SELECT count(intact_pct) FROM fire_intact") == year.summary.points["fire_intact"]
    assert count(url, db, "SELECT count(service_mode) FROM elevator") == year.summary.points["elevator"]
    # A car is read at least every minute of its scheduled hours, and its trips counter only rises.
    trips = count(url, db, "SELECT count(trips) FROM elevator WHERE device = 'b1-e1'")
    assert 365 * 24 * 4 <= trips < 365 * 24 * 4 + 1000
    series = year.summary.points
    assert series["elevator"] > 2 * 365 * 24 * 60


FIVE = timedelta(minutes=5)


def test_every_device_is_heard_in_every_five_minutes_but_a_silent_camera(year: Year) -> None:
    """InfluxDB holds a reading of every device in every 5-minute slot (the slots docs/kpis.md counts coverage in;
    counted over the history's last quarter, which has three camera outages, to keep the test quick), but for the
    slots a camera's silence spans whole: from when it was last heard (its comm_lost a grace later) to when it is
    heard again (its comm_restored), nothing of it is written, all year."""
    start = UNTIL - timedelta(days=92)
    silences = _silences(year)
    assert sum(lo >= start for spans in silences.values() for lo, _ in spans) >= 2
    for kind, field in PRESENCE_FIELDS.items():
        heard = query(
            year.influx_url,
            year.influx_db,
            f'SELECT count(c) FROM (SELECT count("{field}") AS c FROM "{kind.value}" WHERE time >= {_at(start)}'
            f" AND time < {_at(UNTIL)} GROUP BY time(5m), device fill(none)) GROUP BY device",
        )
        slots = {s["tags"]["device"]: s["values"][0][1] for s in heard}
        expected = {
            d.id: (UNTIL - start) // FIVE - sum(_silent_slots(*s) for s in silences.get(d.id, []) if s[0] >= start)
            for _, d in year.site.devices()
            if d.kind == kind
        }
        assert slots == expected, kind
    for device, spans in silences.items():
        for lo, hi in spans:
            during = query(
                year.influx_url,
                year.influx_db,
                f"SELECT recording FROM camera WHERE device = '{device}' AND time >= {_at(lo)} AND time <= {_at(hi)}",
            )
            assert [row[0] for row in during[0]["values"]] == [_ns(lo), _ns(hi)], device


def _silences(year: Year) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each camera's silences as its comm_lost and comm_restored events tell them: (last heard, heard again)."""
    found = query(
        year.influx_url,
        year.influx_db,
        "SELECT event_id, device, type FROM events WHERE kind = 'camera'"
        " AND (type = 'comm_lost' OR type = 'comm_restored')",
    )
    cameras = {d.id: d for _, d in year.site.devices() if d.kind == DeviceKind.CAMERA}
    lost: dict[str, datetime] = {}
    silences: dict[str, list[tuple[datetime, datetime]]] = {}
    for ns, _, device, type_ in found[0]["values"] if found else []:
        at = datetime.fromtimestamp(ns / 1e9, UTC)
        if type_ == "comm_lost":
            grace = grace_s(cameras[device], mqtt_driver(cameras[device].model))
            lost[device] = at - timedelta(seconds=grace)
        else:
            silences.setdefault(device, []).append((lost.pop(device), at))
    assert lost == {}
    return silences


def _silent_slots(lo: datetime, hi: datetime) -> int:
    """The 5-minute slots (from whole multiples of 5 minutes) wholly inside (lo, hi): those without a reading."""
    first = -(-_ns(lo) // _ns_of(FIVE)) * _ns_of(FIVE)
    first += _ns_of(FIVE) if first == _ns(lo) else 0
    return len(range(first, _ns(hi - FIVE) + 1, _ns_of(FIVE)))


def _ns(at: datetime) -> int:
    return _ns_of(at - datetime(1970, 1, 1, tzinfo=UTC))


def _ns_of(span: timedelta) -> int:
    return span // timedelta(microseconds=1) * 1000


def _at(at: datetime) -> str:
    return f"'{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"


def test_a_second_run_changes_nothing(year: Year) -> None:
    before = digest(dump(year.engine))
    points = count(year.influx_url, year.influx_db, "SELECT count(service_mode) FROM elevator")
    again = generate_history(year.site, year.engine, year.influx_url, year.influx_db, until=UNTIL, seed=1)
    assert again.skipped
    assert again.until == UNTIL == generated_until(year.engine)
    assert digest(dump(year.engine)) == before
    assert count(year.influx_url, year.influx_db, "SELECT count(service_mode) FROM elevator") == points


def test_fire_alarms_have_verdicts_and_alert_nobody_again(year: Year) -> None:
    """The past's alerts are not replayed: every alarm is marked alerted, as the notifier marks one it took, and no
    message waits to be sent when the demo starts."""
    with Session(year.engine) as session:
        alarms = session.execute(select(FireAlarm)).scalars().all()
        queued = session.execute(select(func.count()).select_from(Delivery)).scalar_one()
    assert len(alarms) == year.summary.fire_alarms > 3
    for alarm in alarms:
        assert alarm.alerted_at == alarm.created_at + timedelta(seconds=1)
        assert alarm.cleared_at is not None
        assert alarm.raised_at < alarm.cleared_at < (alarm.outcome_at or UNTIL)
        assert alarm.outcome in ("false_alarm", "confirmed")
    assert queued == 0


def test_periodic_inspections_on_the_site_files_dates(year: Year) -> None:
    """A car whose last periodic inspection (site file) falls in the year stood out of service that afternoon."""
    inspected = 0
    for _, car in year.site.devices():
        if car.inspection is None or not UNTIL - timedelta(days=363) < _local_noon(year, car.inspection.last) < UNTIL:
            continue
        noon = _local_noon(year, car.inspection.last)
        found = query(
            year.influx_url,
            year.influx_db,
            f"SELECT status_value FROM events WHERE device = '{car.id}' AND code = '42' AND type = 'status'"
            f" AND time >= '{noon:%Y-%m-%dT%H:%M:%SZ}' AND time < '{noon + timedelta(days=3):%Y-%m-%dT%H:%M:%SZ}'",
        )
        assert found, car.id
        inspected += 1
    assert inspected >= 4


def _local_noon(year: Year, day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=year.site.tz).astimezone(UTC)


async def test_ensure_demo_history_runs_in_demo_mode_only(year: Year) -> None:
    args = (year.site, year.engine, year.influx_url, year.influx_db)
    assert await ensure_demo_history(*args, now=UNTIL, demo=False) is None
    again = await ensure_demo_history(*args, now=UNTIL + timedelta(days=30), demo=True)
    assert again is not None
    assert again.skipped
    assert again.until == UNTIL
