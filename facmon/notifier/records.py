"""What the dispatcher records, each in one transaction: the escalation steps carried out (their primary key makes a
second dispatcher's attempt fail, so nothing is sent twice), one timeline entry per work order (`notified` for the
on-call technician, `escalated` further up, `silenced` in a maintenance window) and one queued delivery per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facmon.notifier.base import Notification, Recipient
from facmon.notifier.due import DueItem
from facmon.notifier.policy import Role
from facmon.notifier.queue import delivery_row
from facmon.notifier.storm import MaintenanceWindow
from facmon.notifier.tables import NotificationStep
from facmon.workorders.tables import TimelineType, WorkOrderEvent

log = structlog.get_logger(__name__)

NOTIFIER_SOURCE = "notifier"


def _detail(
    item: DueItem, outcome: str, recipient: Recipient | None, channels: Sequence[str], message: str | None
) -> dict[str, Any]:
    return {
        "policy": item.policy.id,
        "stage": item.step.stage.name,
        "step": item.step.key,
        "reason": item.step.reason,
        "role": item.step.stage.notify.value,
        "outcome": outcome,
        "recipient": None if recipient is None else {"id": recipient.id, "name": recipient.name},
        "channels": list(channels) if recipient is not None else [],
        "message": message,
    }


def record_steps(
    engine: Engine,
    items: Sequence[DueItem],
    recipient: Recipient | None,
    notification: Notification | None,
    outcome: str,
    *,
    channels: Sequence[str],
    now: datetime,
) -> bool:
    """Steps, timeline entries and deliveries in one transaction; False if another dispatcher got there first."""
    message = None if notification is None else notification.key
    group = [i.order.id for i in items]
    try:
        with Session(engine) as session, session.begin():
            for item in items:
                session.add(
                    NotificationStep(
                        work_order_id=item.order.id, step=item.step.key, outcome=outcome, message=message, at=now
                    )
                )
                detail = _detail(item, outcome, recipient, channels, message)
                if len(group) > 1:
                    detail["group"] = group
                on_call = item.step.stage.notify is Role.ON_CALL
                session.add(
                    WorkOrderEvent(
                        work_order_id=item.order.id,
                        at=now,
                        type=TimelineType.NOTIFIED if on_call else TimelineType.ESCALATED,
                        status=item.order.status,
                        actor=None if recipient is None else recipient.name,
                        source=NOTIFIER_SOURCE,
                        note="nobody to notify: no one holds this role now" if recipient is None else None,
                        detail=detail,
                    )
                )
            if notification is not None and recipient is not None:
                for channel in channels:
                    session.add(delivery_row(notification, recipient, channel))
    except IntegrityError:
        log.info("escalation step already recorded", work_orders=group, message=message)
        return False
    return True


def record_silenced(engine: Engine, item: DueItem, window: MaintenanceWindow, now: datetime) -> bool:
    """The step silenced by a maintenance window, on the timeline; False if another dispatcher got there first."""
    try:
        with Session(engine) as session, session.begin():
            session.add(NotificationStep(work_order_id=item.order.id, step=item.step.key, outcome="silenced", at=now))
            session.add(
                WorkOrderEvent(
                    work_order_id=item.order.id,
                    at=now,
                    type=TimelineType.SILENCED,
                    status=item.order.status,
                    source=NOTIFIER_SOURCE,
                    note=window.reason or None,
                    detail={
                        "policy": item.policy.id,
                        "step": item.step.key,
                        "window": {
                            "site": window.site,
                            "building": window.building,
                            "device": window.device,
                            "from": window.start.isoformat(),
                            "to": window.end.isoformat(),
                        },
                    },
                )
            )
    except IntegrityError:
        return False
    return True
