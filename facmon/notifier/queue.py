"""The durable delivery queue (table `deliveries`) and the sender that drains it.

The dispatcher only inserts rows, in the transaction that records the escalation step, so deciding who is told
never waits on a channel. `Sender` takes rows that are due, hands them to their channels concurrently, and records
each outcome: delivered (with the latency from queueing), retried later with capped exponential backoff and jitter,
or given up when the channel says retrying cannot help. A channel that is down keeps its rows queued, in the
database, until it is back; a restart picks them up where they were. A row cancelled while queued (the breach it
escalated was withdrawn, facmon.notifier.withdrawn) is not sent.

Several senders side by side (two notifiers over one database): a sender claims the rows it takes, in the
transaction that reads them, by moving their next attempt past its send timeout (`claim_s`); on PostgreSQL the read
locks them and skips rows another sender has locked (`FOR UPDATE SKIP LOCKED`), on SQLite the one writer at a time
does the same. So no row is sent by two senders at once.

At least once: a crash between a channel accepting a message and the row being marked delivers it again, under the
same Notification.key, so a receiver can drop the duplicate; a row claimed by a sender that died is due again when
its claim runs out.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, NoReturn

import structlog
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from facmon.kernel.backoff import Backoff
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.notifier.base import Channel, DeliveryError, Notification, Recipient
from facmon.notifier.passes import guarded_pass
from facmon.notifier.tables import Delivery

log = structlog.get_logger(__name__)


def to_payload(notification: Notification, recipient: Recipient) -> dict[str, Any]:
    fields = asdict(notification)
    fields["created_at"] = notification.created_at.isoformat()
    return {"notification": fields, "recipient": asdict(recipient)}


def from_payload(payload: Mapping[str, Any]) -> tuple[Notification, Recipient]:
    fields = dict(payload["notification"])
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return Notification(**fields), Recipient(**payload["recipient"])


def delivery_row(notification: Notification, recipient: Recipient, channel: str) -> Delivery:
    """A queued delivery of `notification` to `recipient` over `channel`, due at once."""
    return Delivery(
        # A webhook sends this as its Idempotency-Key (facmon.notifier.channels.webhook.idempotency_key).
        key=f"{notification.key}/{channel}",
        message=notification.key,
        work_order_id=notification.work_order_id,
        fire_alarm_id=notification.fire_alarm_id,
        recipient_id=recipient.id,
        channel=channel,
        reason=notification.reason,
        payload=to_payload(notification, recipient),
        created_at=notification.created_at,
        attempts=0,
        next_attempt_at=notification.created_at,
    )


def delivery_backoff(rng: random.Random | None = None) -> Backoff:
    """How long a failed delivery waits: attempt n up to min(5 min, 5 s * 2**(n-1)), at least half of it."""
    return Backoff(5.0, 300.0, rng)


class Sender:
    """Delivers due rows of the queue over `channels` (by name); `tick()` is one pass, `run()` loops."""

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Channel],
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        batch: int = 100,
        send_timeout_s: float = 30.0,
        metrics: Counters | None = None,
    ) -> None:
        self.engine = engine
        self.channels = dict(channels)
        self.clock = clock
        self.backoff = backoff or delivery_backoff()
        self.batch = batch
        self.send_timeout_s = send_timeout_s
        self.metrics = metrics or Counters()
        # Why the last pass failed; None once one succeeded (the notifier's health).
        self.last_error: str | None = None

    @property
    def claim_s(self) -> float:
        """How long a row taken by this sender stays its own: a send and the recording of its outcome."""
        return self.send_timeout_s + 5.0

    def _due(self, now: datetime) -> list[Delivery]:
        """The rows due at `now`, claimed for this sender (see the module's docstring)."""
        query = (
            select(Delivery)
            .where(
                Delivery.delivered_at.is_(None),
                Delivery.failed_at.is_(None),
                Delivery.cancelled_at.is_(None),
                Delivery.next_attempt_at <= now,
            )
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            rows = list(session.execute(query).scalars())
            if rows:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_([row.id for row in rows]))
                    .values(next_attempt_at=now + timedelta(seconds=self.claim_s))
                    .execution_options(synchronize_session=False)
                )
            return rows

    def _record(self, row: Delivery, values: dict[str, Any]) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id == row.id, Delivery.delivered_at.is_(None))
                .values(attempts=row.attempts + 1, **values)
                .execution_options(synchronize_session=False)
            )

    async def _deliver(self, row: Delivery) -> bool:
        channel = self.channels.get(row.channel)
        try:
            if channel is None:
                # Configuration changed under a queued row: keep it, a channel of that name may come back.
                raise DeliveryError(f"channel {row.channel!r} is not configured")
            notification, recipient = from_payload(row.payload)
            async with asyncio.timeout(self.send_timeout_s):
                await channel.send(notification, recipient)
        except (DeliveryError, TimeoutError) as exc:
            now = self.clock.now()
            error = str(exc) or type(exc).__name__
            retryable = not isinstance(exc, DeliveryError) or exc.retryable
            if retryable:
                values: dict[str, Any] = {
                    "last_error": error[:500],
                    "next_attempt_at": now + timedelta(seconds=self.backoff.delay(row.attempts + 1)),
                }
            else:
                values = {"last_error": error[:500], "failed_at": now}
            await asyncio.to_thread(self._record, row, values)
            self.metrics.inc("notifier_delivery_errors", channel=row.channel, retryable=str(retryable).lower())
            log.warning("delivery failed", key=row.key, attempt=row.attempts + 1, error=error, retryable=retryable)
            return False
        now = self.clock.now()
        latency = (now - row.created_at).total_seconds()
        await asyncio.to_thread(self._record, row, {"delivered_at": now, "latency_s": latency, "next_attempt_at": now})
        self.metrics.inc("notifier_delivered", channel=row.channel)
        return True

    async def tick(self) -> int:
        """One pass over the due rows; the number delivered."""
        rows = await asyncio.to_thread(self._due, self.clock.now())
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        return sum(results)

    async def run(self, interval_s: float = 1.0) -> NoReturn:
        while True:
            next_at = self.clock.monotonic() + interval_s
            self.last_error = await guarded_pass(self.tick, self.metrics, "sender")
            await self.clock.sleep_until(next_at)


def deliveries_of(engine: Engine, work_order_id: int) -> list[Delivery]:
    """The delivery log of one work order, oldest first."""
    query = select(Delivery).where(Delivery.work_order_id == work_order_id).order_by(Delivery.id)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.execute(query).scalars())
