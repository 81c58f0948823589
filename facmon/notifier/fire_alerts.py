"""Fire alarms: every one not alerted yet goes to the on-call fire technician, the supervisor and the manager at once.

A fire alarm is not a work order (rules.fire) and never waits: no grouping, digest or maintenance window applies.
Queued with the alarm marked alerted in one transaction, so a restart sends nothing twice; the alarms are read
locked, skipping those another dispatcher has locked (PostgreSQL's `FOR UPDATE SKIP LOCKED`), so two dispatchers do
not both queue one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind
from facmon.notifier.base import Notification
from facmon.notifier.queue import delivery_row
from facmon.notifier.recipients import Resolver, Target
from facmon.workorders.tables import Priority
from rules.tables import FireAlarm

log = structlog.get_logger(__name__)


def _fire_notification(alarm: FireAlarm, target: Target, now: datetime) -> Notification:
    point = f" point {alarm.point}" if alarm.point else ""
    what = alarm.point_type.replace("_", " ") if alarm.point_type else "fire point"
    return Notification(
        key=f"fire{alarm.id}:{target.role.value}:{target.recipient.id}",
        work_order_id=None,
        fire_alarm_id=alarm.id,
        site=alarm.site,
        building=alarm.building,
        device=alarm.device,
        kind=DeviceKind.FIRE_PANEL.value,
        fault=f"{what}{point}",
        priority=Priority.EMERGENCY.value,
        title=f"FIRE ALARM: {alarm.device}{point} ({what})",
        sla_clock=None,
        sla_left_s=None,
        ack_url=None,
        reason="fire_alarm",
        created_at=now,
    )


def alert_fire_alarms(
    engine: Engine, resolver: Resolver, channels: Sequence[str], metrics: Counters, now: datetime
) -> int:
    """Queue the messages of every fire alarm not alerted yet; the number of alarms."""
    with Session(engine) as session, session.begin():
        alarms = list(
            session.scalars(select(FireAlarm).where(FireAlarm.alerted_at.is_(None)).with_for_update(skip_locked=True))
        )
        for alarm in alarms:
            # One message per person, even when the on-call technician is also the supervisor.
            unique: dict[str, Target] = {}
            for target in resolver(alarm.site, DeviceKind.FIRE_PANEL.value, now):
                unique.setdefault(target.recipient.id, target)
            targets = list(unique.values())
            for target in targets:
                notification = _fire_notification(alarm, target, now)
                for channel in channels:
                    session.add(delivery_row(notification, target.recipient, channel))
            alarm.alerted_at = now
            metrics.inc("notifier_fire_alarms_alerted")
            log.warning(
                "fire alarm alerted", site=alarm.site, device=alarm.device, point=alarm.point, people=len(targets)
            )
    return len(alarms)
