"""The dispatcher: every tick, which work orders owe someone a message, and queue those messages.

One tick (`Dispatcher.tick`, every second on the injected clock) first stops what withdrawn breaches had started
(facmon.notifier.withdrawn), then reads the open work orders with their SLA breaches
and the escalation steps already carried out, asks each one's policy what is due (facmon.notifier.policy), applies storm
control (facmon.notifier.storm: maintenance windows, grouping by building, the per-recipient rate limit and digest),
resolves who is to be told (a `Resolver`, facmon.notifier.recipients: the on-call rota, the supervisor, the manager),
and records each message in one transaction (facmon.notifier.records): the steps it carries out, one timeline entry per
work order and one queued delivery per channel. Fire alarms go out first, to everyone at once
(facmon.notifier.fire_alerts).

Nothing here talks to a channel: the `Sender` (facmon.notifier.queue) delivers from the queue on its own schedule, so a
slow or dead channel never holds up escalation. Every decision lives in the database (steps have a primary key), so
a dispatcher started again, or a second one over the same database, sends nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NoReturn

import structlog
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.notifier.base import Channel, Notification, Recipient
from facmon.notifier.due import DueItem, Loaded, due_items, load_open
from facmon.notifier.fire_alerts import alert_fire_alarms
from facmon.notifier.passes import guarded_pass
from facmon.notifier.policy import Policy, load_policies
from facmon.notifier.recipients import Resolver
from facmon.notifier.records import record_silenced, record_steps
from facmon.notifier.storm import MaintenanceWindow, StormLimits, group_alerts, rate_limit, silenced_by
from facmon.notifier.tables import Delivery
from facmon.notifier.withdrawn import reconcile as reconcile_withdrawn
from facmon.workorders.tables import WorkOrder

log = structlog.get_logger(__name__)

# Per recipient: who, and their messages as (the due items of one message, routine).
_PerRecipient = dict[str, tuple[Recipient, list[tuple[list[DueItem], bool]]]]


@dataclass
class TickResult:
    fire_alarms: int = 0
    sent: int = 0
    digests: int = 0
    silenced: int = 0
    unrouted: int = 0
    deferred: int = 0
    # Escalation stages of withdrawn breaches reconciled (queued messages cancelled, an all clear to those told).
    withdrawn: int = 0


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
        limits: StormLimits | None = None,
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
        self.limits = limits or StormLimits()
        self.metrics = metrics or Counters()
        # Why the last tick failed; None once one succeeded (the notifier's health).
        self.last_error: str | None = None

    async def tick(self) -> TickResult:
        return await asyncio.to_thread(self.dispatch, self.clock.now())

    async def run(self, interval_s: float = 1.0) -> NoReturn:
        while True:
            next_at = self.clock.monotonic() + interval_s
            self.last_error = await guarded_pass(self.tick, self.metrics, "dispatcher")
            await self.clock.sleep_until(next_at)

    # --- one tick ----------------------------------------------------------------------------------------------------

    def dispatch(self, now: datetime) -> TickResult:
        """One tick at `now` (synchronous; `tick()` runs it in a thread)."""
        result = TickResult()
        result.fire_alarms = alert_fire_alarms(self.engine, self.resolver, self.channels, self.metrics, now)
        result.withdrawn = reconcile_withdrawn(self.engine, self.policies, now)
        loaded = load_open(self.engine)
        due, upcoming = due_items(self.policies, loaded, now, self.limits.group_window)
        # Maintenance windows first: a silenced alert is recorded and takes no part in grouping.
        live = self._unsilenced(due, now, result)
        upcoming = [i for i in upcoming if self._window(i, now) is None]
        for recipient, messages in self._route(live, upcoming, now, result).values():
            self._send(recipient, messages, loaded, now, result)
        counts = {
            "sent": result.sent,
            "digests": result.digests,
            "silenced": result.silenced,
            "withdrawn": result.withdrawn,
        }
        for name, count in counts.items():
            if count:
                self.metrics.inc(f"notifier_{name}", count)
        if result.unrouted:
            self.metrics.inc("notifier_unrouted", result.unrouted)
            log.warning("nobody to notify", count=result.unrouted)
        return result

    def _window(self, item: DueItem, now: datetime) -> MaintenanceWindow | None:
        wo = item.order
        return silenced_by(
            self.maintenance, site=wo.site, building=wo.building, device=wo.device, routine=item.policy.routine, at=now
        )

    def _unsilenced(self, due: list[DueItem], now: datetime, result: TickResult) -> list[DueItem]:
        """The items no maintenance window silences; the silenced ones are recorded as such."""
        live: list[DueItem] = []
        for item in due:
            window = self._window(item, now)
            if window is None:
                live.append(item)
            elif record_silenced(self.engine, item, window, now):
                result.silenced += 1
        return live

    def _route(self, live: list[DueItem], upcoming: list[DueItem], now: datetime, result: TickResult) -> _PerRecipient:
        """The groups of alerts by recipient; a group whose role nobody holds now is recorded as unrouted."""
        by_alert = {(i.alert.work_order_id, i.alert.stage): i for i in [*live, *upcoming]}
        groups = group_alerts([i.alert for i in live], [i.alert for i in upcoming], self.limits.group_window)
        per_recipient: _PerRecipient = {}
        for group in groups:
            items = [by_alert[(a.work_order_id, a.stage)] for a in group]
            lead = items[0]
            recipient = self._recipient(lead, now)
            if recipient is None:
                if self._record(items, None, None, "no_recipient", now):
                    result.unrouted += len(items)
                continue
            per_recipient.setdefault(recipient.id, (recipient, []))[1].append((items, lead.policy.routine))
        return per_recipient

    def _send(
        self,
        recipient: Recipient,
        messages: list[tuple[list[DueItem], bool]],
        loaded: Loaded,
        now: datetime,
        result: TickResult,
    ) -> None:
        """Queue one recipient's messages within the rate limit: sent now, in one digest, or deferred."""
        sent, last_digest = self._history(recipient.id, now)
        limits = self.limits
        decision = rate_limit(
            messages, sent=sent, last_digest_at=last_digest, now=now, limit=limits.rate_limit, per=limits.rate_period
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

    def _record(
        self,
        items: list[DueItem],
        recipient: Recipient | None,
        notification: Notification | None,
        outcome: str,
        now: datetime,
    ) -> bool:
        return record_steps(self.engine, items, recipient, notification, outcome, channels=self.channels, now=now)

    def _recipient(self, item: DueItem, now: datetime) -> Recipient | None:
        role = item.step.stage.notify
        wo = item.order
        return next((t.recipient for t in self.resolver(wo.site, wo.kind, now) if t.role is role), None)

    def _history(self, recipient_id: str, now: datetime) -> tuple[list[datetime], datetime | None]:
        """When the recipient's messages of the last rate period were queued, and their last digest."""
        query = (
            select(Delivery.message, Delivery.reason, func.min(Delivery.created_at))
            .where(Delivery.recipient_id == recipient_id, Delivery.created_at > now - self.limits.rate_period)
            .group_by(Delivery.message, Delivery.reason)
        )
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        digests = [at for _, reason, at in rows if reason == "digest"]
        return [at for _, _, at in rows], max(digests, default=None)

    # --- messages ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _sla(wo: WorkOrder, loaded: Loaded, now: datetime) -> tuple[str | None, float | None]:
        running = [c for c in loaded.clocks.get(wo.id, []) if c.met_at is None and c.cancelled_at is None]
        if not running:
            return None, None
        nearest = min(running, key=lambda c: c.due_at)
        return nearest.name, (nearest.due_at - now).total_seconds()

    def _notification(self, items: list[DueItem], recipient: Recipient, loaded: Loaded, now: datetime) -> Notification:
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

    def _digest(self, items: list[DueItem], recipient: Recipient, loaded: Loaded, now: datetime) -> Notification:
        first = self._notification(items[:1], recipient, loaded, now)
        ids = sorted({i.order.id for i in items})
        return replace(
            first,
            key=f"digest:{recipient.id}:{now.strftime('%Y%m%dT%H%M%S')}",
            title=f"{len(ids)} more work orders: " + "; ".join(f"#{i}" for i in ids),
            reason="digest",
        )
