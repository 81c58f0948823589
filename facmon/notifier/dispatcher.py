"""The dispatcher: every tick, which work orders owe someone a message, and queue those messages.

One tick (`Dispatcher.tick`, every second on the injected clock) reads the open work orders with their SLA breaches
and the escalation steps already carried out, asks each one's policy what is due (facmon.notifier.policy), applies storm
control (facmon.notifier.storm: maintenance windows, grouping by building, the per-recipient rate limit and digest),
resolves who is to be told (a `Resolver`: the on-call rota, the supervisor, the manager), and records each message
in one transaction: the steps it carries out, one timeline entry per work order (`notified` for the on-call
technician, `escalated` further up, `silenced` in a maintenance window) and one queued delivery per channel.

Nothing here talks to a channel: the `Sender` (facmon.notifier.queue) delivers from the queue on its own schedule, so a
slow or dead channel never holds up escalation. Every decision lives in the database (steps have a primary key), so
a dispatcher started again, or a second one over the same database, sends nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

import structlog
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind
from facmon.notifier.base import Channel, Notification, Recipient
from facmon.notifier.policy import EscalationState, Policy, Role, Step, due_steps, load_policies, select_policy
from facmon.notifier.queue import delivery_row
from facmon.notifier.storm import Alert, MaintenanceWindow, group_alerts, rate_limit, silenced_by
from facmon.notifier.tables import Delivery, NotificationStep
from facmon.workorders.tables import (
    OPEN_STATUSES,
    Priority,
    TimelineType,
    WorkOrder,
    WorkOrderClock,
    WorkOrderEvent,
    WorkOrderMember,
    WorkOrderStatus,
)
from rules.tables import FireAlarm

log = structlog.get_logger(__name__)

NOTIFIER_SOURCE = "notifier"


@dataclass(frozen=True)
class Target:
    role: Role
    recipient: Recipient


class Resolver(Protocol):
    """Who to tell about a work order of `kind` at `site` at `at`: the on-call technician, supervisor, manager."""

    def __call__(self, site: str, kind: str, at: datetime) -> Sequence[Target]: ...


class SiteResolver:
    """Targets from the site files' rotas (facmon.estate.on_call)."""

    def __init__(self, sites: Sequence[Site]) -> None:
        self.sites = {s.id: s for s in sites}

    def __call__(self, site: str, kind: str, at: datetime) -> Sequence[Target]:
        from facmon.estate.on_call import on_call_for_work_order

        known = self.sites.get(site)
        if known is None:
            return ()
        try:
            chain = on_call_for_work_order(known, kind, at)
        except ValueError:
            return ()
        targets: list[Target] = []
        if chain.on_call is not None:
            t = chain.on_call.technician
            targets.append(Target(Role.ON_CALL, Recipient(t.id, t.name, t.phone, t.email)))
        for role, person in ((Role.SUPERVISOR, chain.supervisor), (Role.MANAGER, chain.manager)):
            if person is not None:
                # A contact's id is its phone number's digits: "+" is a wildcard in MQTT topics, where pushes go.
                ident = person.technician or "contact:" + "".join(ch for ch in person.phone if ch.isdigit())
                targets.append(Target(role, Recipient(ident, person.name, person.phone, person.email)))
        return targets


class LogChannel:
    """A channel that writes the message to the log: what `facmon up` uses when no channel is configured."""

    name = "log"

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        log.info(
            "notification",
            to=recipient.name,
            reason=notification.reason,
            work_order=notification.work_order_id,
            title=notification.title,
        )


@dataclass
class TickResult:
    fire_alarms: int = 0
    sent: int = 0
    digests: int = 0
    silenced: int = 0
    unrouted: int = 0
    deferred: int = 0


@dataclass
class _Item:
    """One due step of one work order."""

    order: WorkOrder
    policy: Policy
    step: Step
    alert: Alert


@dataclass
class _Loaded:
    orders: list[WorkOrder]
    clocks: dict[int, list[WorkOrderClock]] = field(default_factory=dict)
    done: dict[int, set[str]] = field(default_factory=dict)
    members: dict[int, int] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        resolver: Resolver,
        channels: Mapping[str, Channel],
        policies: Sequence[Policy] | None = None,
        maintenance: Sequence[MaintenanceWindow] = (),
        group_window: timedelta = timedelta(minutes=1),
        rate_limit: int = 5,
        rate_period: timedelta = timedelta(minutes=10),
        metrics: Counters | None = None,
        ack_link: Callable[[int, str, datetime], str] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        # (work order id, recipient id, now) -> a one-tap acknowledge URL; None: messages carry no link.
        self.ack_link = ack_link
        self.resolver = resolver
        self.channels = tuple(channels)
        self.policies = load_policies() if policies is None else tuple(policies)
        self.maintenance = tuple(maintenance)
        self.group_window = group_window
        self.rate_limit = rate_limit
        self.rate_period = rate_period
        self.metrics = metrics or Counters()
        # Why the last tick failed; None once one succeeded (the notifier's health).
        self.last_error: str | None = None

    async def tick(self) -> TickResult:
        return await asyncio.to_thread(self.dispatch, self.clock.now())

    async def run(self, interval_s: float = 1.0) -> NoReturn:
        while True:
            try:
                await self.tick()
                self.last_error = None
            except OperationalError as exc:
                self.metrics.inc("notifier_dispatcher_db_errors")
                self.last_error = f"database unavailable: {exc.orig}"[:300]
                log.warning("dispatcher: database unavailable", error=str(exc.orig))
            await self.clock.sleep(interval_s)

    # --- one tick ----------------------------------------------------------------------------------------------------

    def _load(self) -> _Loaded:
        with Session(self.engine, expire_on_commit=False) as session:
            orders = list(
                session.execute(
                    select(WorkOrder)
                    .where(WorkOrder.status.in_([s.value for s in OPEN_STATUSES]))
                    .order_by(WorkOrder.id)
                ).scalars()
            )
            loaded = _Loaded(orders)
            ids = [wo.id for wo in orders]
            if not ids:
                return loaded
            for c in session.execute(select(WorkOrderClock).where(WorkOrderClock.work_order_id.in_(ids))).scalars():
                loaded.clocks.setdefault(c.work_order_id, []).append(c)
            for wo_id, step in session.execute(
                select(NotificationStep.work_order_id, NotificationStep.step).where(
                    NotificationStep.work_order_id.in_(ids)
                )
            ):
                loaded.done.setdefault(wo_id, set()).add(step)
            for wo_id, count in session.execute(
                select(WorkOrderMember.work_order_id, func.count())
                .where(WorkOrderMember.work_order_id.in_(ids))
                .group_by(WorkOrderMember.work_order_id)
            ):
                loaded.members[wo_id] = count
            return loaded

    def _items(self, loaded: _Loaded, now: datetime) -> tuple[list[_Item], list[_Item]]:
        """(due now, routine first alerts due within the group window)."""
        due: list[_Item] = []
        upcoming: list[_Item] = []
        for wo in loaded.orders:
            policy = select_policy(self.policies, wo.kind, wo.priority)
            state = EscalationState(
                detected_at=wo.detected_at,
                status=WorkOrderStatus(wo.status),
                breaches={c.name: c.breached_at for c in loaded.clocks.get(wo.id, []) if c.breached_at is not None},
                done=frozenset(loaded.done.get(wo.id, ())),
            )
            steps = due_steps(policy, state, now).due
            due.extend(self._item(wo, policy, step) for step in steps)
            if policy.routine:
                keys = {s.key for s in steps}
                later = due_steps(policy, state, now + self.group_window).due
                upcoming.extend(
                    self._item(wo, policy, s)
                    for s in later
                    if s.key not in keys and s.repeat == 0 and s.stage.on_breach is None
                )
        return due, upcoming

    @staticmethod
    def _item(wo: WorkOrder, policy: Policy, step: Step) -> _Item:
        alert = Alert(wo.id, wo.site, wo.building, wo.kind, step.stage.name, wo.detected_at, policy.routine)
        return _Item(wo, policy, step, alert)

    def dispatch(self, now: datetime) -> TickResult:
        """One tick at `now` (synchronous; `tick()` runs it in a thread)."""
        result = TickResult()
        result.fire_alarms = self._alert_fire_alarms(now)
        loaded = self._load()
        due, upcoming = self._items(loaded, now)
        # Maintenance windows first: a silenced alert is recorded and takes no part in grouping.
        live: list[_Item] = []
        for item in due:
            wo = item.order
            window = silenced_by(
                self.maintenance,
                site=wo.site,
                building=wo.building,
                device=wo.device,
                routine=item.policy.routine,
                at=now,
            )
            if window is None:
                live.append(item)
            elif self._record_silenced(item, window, now):
                result.silenced += 1
        upcoming = [
            i
            for i in upcoming
            if silenced_by(
                self.maintenance,
                site=i.order.site,
                building=i.order.building,
                device=i.order.device,
                routine=i.policy.routine,
                at=now,
            )
            is None
        ]
        by_alert = {(i.alert.work_order_id, i.alert.stage): i for i in [*live, *upcoming]}
        groups = group_alerts([i.alert for i in live], [i.alert for i in upcoming], self.group_window)
        per_recipient: dict[str, tuple[Recipient, list[tuple[list[_Item], bool]]]] = {}
        for group in groups:
            items = [by_alert[(a.work_order_id, a.stage)] for a in group]
            lead = items[0]
            recipient = self._recipient(lead, now)
            if recipient is None:
                if self._record(items, None, None, "no_recipient", now):
                    result.unrouted += len(items)
                continue
            per_recipient.setdefault(recipient.id, (recipient, []))[1].append((items, lead.policy.routine))
        for recipient, messages in per_recipient.values():
            sent, last_digest = self._history(recipient.id, now)
            decision = rate_limit(
                messages, sent=sent, last_digest_at=last_digest, now=now, limit=self.rate_limit, per=self.rate_period
            )
            for items in decision.send:
                notification = self._notification(items, recipient, loaded, now)
                if self._record(items, recipient, notification, "sent", now):
                    result.sent += 1
            if decision.digest:
                items = [i for group in decision.digest for i in group]
                notification = self._digest(items, recipient, loaded, now)
                if self._record(items, recipient, notification, "digest", now):
                    result.digests += 1
            result.deferred += len(decision.defer)
        for name, count in (("sent", result.sent), ("digests", result.digests), ("silenced", result.silenced)):
            if count:
                self.metrics.inc(f"notifier_{name}", count)
        if result.unrouted:
            self.metrics.inc("notifier_unrouted", result.unrouted)
            log.warning("nobody to notify", count=result.unrouted)
        return result

    def _recipient(self, item: _Item, now: datetime) -> Recipient | None:
        role = item.step.stage.notify
        wo = item.order
        return next((t.recipient for t in self.resolver(wo.site, wo.kind, now) if t.role is role), None)

    def _history(self, recipient_id: str, now: datetime) -> tuple[list[datetime], datetime | None]:
        """When the recipient's messages of the last rate period were queued, and their last digest."""
        query = (
            select(Delivery.message, Delivery.reason, func.min(Delivery.created_at))
            .where(Delivery.recipient_id == recipient_id, Delivery.created_at > now - self.rate_period)
            .group_by(Delivery.message, Delivery.reason)
        )
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        digests = [at for _, reason, at in rows if reason == "digest"]
        return [at for _, _, at in rows], max(digests, default=None)

    # --- messages ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _sla(wo: WorkOrder, loaded: _Loaded, now: datetime) -> tuple[str | None, float | None]:
        running = [c for c in loaded.clocks.get(wo.id, []) if c.met_at is None and c.cancelled_at is None]
        if not running:
            return None, None
        nearest = min(running, key=lambda c: c.due_at)
        return nearest.name, (nearest.due_at - now).total_seconds()

    def _notification(self, items: list[_Item], recipient: Recipient, loaded: _Loaded, now: datetime) -> Notification:
        lead = items[0]
        wo = lead.order
        title = wo.title
        members = loaded.members.get(wo.id, 0)
        if members > 1:
            title = f"{title} ({members} devices)"
        if len(items) > 1:
            title = f"{len(items)} work orders in {wo.building}: {title} and {len(items) - 1} more"
        clock, left = self._sla(wo, loaded, now)
        return Notification(
            key=f"wo{wo.id}:{lead.step.key}:{recipient.id}",
            work_order_id=wo.id,
            site=wo.site,
            building=wo.building,
            device=wo.device,
            kind=wo.kind,
            fault=wo.fault,
            priority=wo.priority,
            title=title,
            sla_clock=clock,
            sla_left_s=left,
            ack_url=self.ack_link(wo.id, recipient.id, now) if self.ack_link else None,
            reason=lead.step.reason,
            created_at=now,
        )

    def _digest(self, items: list[_Item], recipient: Recipient, loaded: _Loaded, now: datetime) -> Notification:
        first = self._notification(items[:1], recipient, loaded, now)
        ids = sorted({i.order.id for i in items})
        return replace(
            first,
            key=f"digest:{recipient.id}:{now.strftime('%Y%m%dT%H%M%S')}",
            title=f"{len(ids)} more work orders: " + "; ".join(f"#{i}" for i in ids),
            reason="digest",
        )

    # --- recording ---------------------------------------------------------------------------------------------------

    def _record(
        self,
        items: list[_Item],
        recipient: Recipient | None,
        notification: Notification | None,
        outcome: str,
        now: datetime,
    ) -> bool:
        """Steps, timeline entries and deliveries in one transaction; False if another dispatcher got there first."""
        message = None if notification is None else notification.key
        group = [i.order.id for i in items]
        try:
            with Session(self.engine) as session, session.begin():
                for item in items:
                    session.add(
                        NotificationStep(
                            work_order_id=item.order.id, step=item.step.key, outcome=outcome, message=message, at=now
                        )
                    )
                    detail: dict[str, Any] = {
                        "policy": item.policy.id,
                        "stage": item.step.stage.name,
                        "step": item.step.key,
                        "reason": item.step.reason,
                        "role": item.step.stage.notify.value,
                        "outcome": outcome,
                        "recipient": None if recipient is None else {"id": recipient.id, "name": recipient.name},
                        "channels": list(self.channels) if recipient is not None else [],
                        "message": message,
                    }
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
                    for channel in self.channels:
                        session.add(delivery_row(notification, recipient, channel))
        except IntegrityError:
            log.info("escalation step already recorded", work_orders=group, message=message)
            return False
        return True

    def _alert_fire_alarms(self, now: datetime) -> int:
        """Every fire alarm not alerted yet, to the on-call fire technician, the supervisor and the manager at once.

        A fire alarm is not a work order (rules.fire) and never waits: no grouping, digest or maintenance window
        applies. Queued with the alarm marked alerted in one transaction, so a restart sends nothing twice.
        """
        with Session(self.engine) as session, session.begin():
            alarms = list(session.scalars(select(FireAlarm).where(FireAlarm.alerted_at.is_(None))))
            for alarm in alarms:
                point = f" point {alarm.point}" if alarm.point else ""
                what = alarm.point_type.replace("_", " ") if alarm.point_type else "fire point"
                # One message per person, even when the on-call technician is also the supervisor.
                unique: dict[str, Target] = {}
                for target in self.resolver(alarm.site, DeviceKind.FIRE_PANEL.value, now):
                    unique.setdefault(target.recipient.id, target)
                targets = list(unique.values())
                for target in targets:
                    notification = Notification(
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
                    for channel in self.channels:
                        session.add(delivery_row(notification, target.recipient, channel))
                alarm.alerted_at = now
                self.metrics.inc("notifier_fire_alarms_alerted")
                log.warning(
                    "fire alarm alerted", site=alarm.site, device=alarm.device, point=alarm.point, people=len(targets)
                )
        return len(alarms)

    def _record_silenced(self, item: _Item, window: MaintenanceWindow, now: datetime) -> bool:
        try:
            with Session(self.engine) as session, session.begin():
                session.add(
                    NotificationStep(work_order_id=item.order.id, step=item.step.key, outcome="silenced", at=now)
                )
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
