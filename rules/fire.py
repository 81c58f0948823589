"""Fire alarms: the emergency path, kept apart from maintenance work orders.

A fire point's `fire` signal (the rule `fire.alarm.raised` in rules/library/fire.yaml; a supervisory signal from a
water-flow indicator or valve is not one) is recorded in `fire_alarms`, keyed by the raising event's id, so an event
delivered twice records one alarm. Its clear sets `cleared_at`, also when the clear was processed first (several
workers: the clear is kept, rules.tables.FaultClear, and the alarm is recorded cleared). The control room then says
what it was (`set_outcome`): confirmed or a false alarm.

False alarms are counted per site per day, the day being the site's local day of the alarm (`false_alarm_days`, a
pure function): a site with more than `FALSE_ALARM_DAY_LIMIT` in one day must act on it (GB 26875 monitoring-centre
practice), so such a day is flagged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from rules.engine import FireAlarmSignal
from rules.listing import in_sites_between
from rules.pipeline import Step, latest_clear, remember_clear, upsert
from rules.tables import FireAlarm, FireAlarmOutcome

# "A user with more than 5 false alarms a day must act on it."
FALSE_ALARM_DAY_LIMIT = 5


class FireAlarmNotFound(LookupError):
    def __init__(self, alarm_id: int) -> None:
        self.alarm_id = alarm_id
        super().__init__(f"no fire alarm with id {alarm_id}")


@dataclass(frozen=True)
class FalseAlarmDay:
    site: str
    day: date
    false_alarms: int
    flagged: bool


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local day as aware datetimes (a DST day is 23 or 25 hours long)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def false_alarm_days(
    alarms: Iterable[tuple[str, datetime, str]], tz_of: dict[str, ZoneInfo], *, limit: int = FALSE_ALARM_DAY_LIMIT
) -> list[FalseAlarmDay]:
    """Per (site, local day) the false alarms among `alarms` (site, raised_at, outcome); days without one left out.

    `tz_of` maps a site to its zone; pure, so the local-day boundaries are tested as a table.
    """
    counts: Counter[tuple[str, date]] = Counter()
    for site, raised_at, outcome in alarms:
        if outcome == FireAlarmOutcome.FALSE_ALARM:
            counts[(site, local_day(raised_at, tz_of[site]))] += 1
    return [FalseAlarmDay(site, day, n, n > limit) for (site, day), n in sorted(counts.items())]


# --- writing ---------------------------------------------------------------------------------------------------------


def _clear_key(signal: FireAlarmSignal) -> str:
    """The name the alarm's clear is kept under among the device's faults' clears (rules.tables.FaultClear)."""
    return f"fire-alarm/{signal.point or ''}"


def _raise(session: Session, signal: FireAlarmSignal, now: datetime) -> int | None:
    """Record a raised alarm; its id, or None when its event recorded it before. A clear of the point at or after
    the alarm that was processed before it (the events reached two workers, the clear's finished first) clears it
    at once, as the clear would have had the events come in order."""
    cleared = latest_clear(session, signal.site, signal.device, _clear_key(signal))
    stmt = (
        upsert(session, FireAlarm)
        .values(
            event_id=signal.event_id,
            site=signal.site,
            building=signal.building,
            device=signal.device,
            point=signal.point,
            point_type=signal.point_type,
            raised_at=signal.at,
            cleared_at=cleared if cleared is not None and cleared >= signal.at else None,
            outcome=FireAlarmOutcome.UNKNOWN.value,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[FireAlarm.event_id])
        .returning(FireAlarm.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def _clear(session: Session, signal: FireAlarmSignal) -> None:
    remember_clear(session, signal.site, signal.device, _clear_key(signal), signal.at)
    point = FireAlarm.point.is_(None) if signal.point is None else FireAlarm.point == signal.point
    session.execute(
        update(FireAlarm)
        .where(
            FireAlarm.site == signal.site,
            FireAlarm.device == signal.device,
            point,
            FireAlarm.cleared_at.is_(None),
            FireAlarm.raised_at <= signal.at,
        )
        .values(cleared_at=signal.at)
        .execution_options(synchronize_session=False)
    )


def record_signals(session: Session, signals: Sequence[FireAlarmSignal], now: datetime) -> list[int]:
    """Record raised alarms (once per event id) and clears, in the caller's transaction; the ids newly raised."""
    raised: list[int] = []
    for signal in signals:
        if not signal.raised:
            _clear(session, signal)
        elif (alarm_id := _raise(session, signal, now)) is not None:
            raised.append(alarm_id)
    return raised


def record_fire_signals(engine: Engine, signals: Sequence[FireAlarmSignal], now: datetime) -> list[int]:
    """`record_signals` in a transaction of its own."""
    with Session(engine) as session, session.begin():
        return record_signals(session, signals, now)


class FireAlarms:
    """Handler: the fire signals among the event's actions, recorded as fire alarms (never work orders)."""

    name = "fire_alarms"

    def __call__(self, step: Step) -> None:
        signals = [a for a in step.actions if isinstance(a, FireAlarmSignal)]
        if signals:
            step.outcome.fire_alarms += record_signals(step.session, signals, step.now)


def set_outcome(
    engine: Engine, alarm_id: int, outcome: FireAlarmOutcome, *, actor: str, note: str | None, at: datetime
) -> FireAlarm:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        alarm = session.get(FireAlarm, alarm_id)
        if alarm is None:
            raise FireAlarmNotFound(alarm_id)
        alarm.outcome = outcome.value
        alarm.outcome_at = at
        alarm.outcome_by = actor
        if note is not None:
            alarm.note = note
    return alarm


# --- reading ---------------------------------------------------------------------------------------------------------


def list_fire_alarms(
    session: Session,
    *,
    site: str | None = None,
    within: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[FireAlarm], int]:
    """Alarms raised in [since, until), newest first, and how many match in all."""
    conditions = in_sites_between(
        FireAlarm.site, FireAlarm.raised_at, site=site, within=within, since=since, until=until
    )
    total = session.execute(select(func.count()).select_from(FireAlarm).where(*conditions)).scalar_one()
    query = (
        select(FireAlarm)
        .where(*conditions)
        .order_by(FireAlarm.raised_at.desc(), FireAlarm.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.execute(query).scalars()), total


def false_alarms_between(
    session: Session, site: str, since: datetime, until: datetime
) -> list[tuple[str, datetime, str]]:
    """(site, raised_at, outcome) of the site's false alarms raised in [since, until)."""
    query = select(FireAlarm.site, FireAlarm.raised_at, FireAlarm.outcome).where(
        FireAlarm.site == site,
        FireAlarm.outcome == FireAlarmOutcome.FALSE_ALARM.value,
        FireAlarm.raised_at >= since,
        FireAlarm.raised_at < until,
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]
