"""The notifier's tables: escalation steps carried out, and the durable delivery queue with its log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from facmon.kernel.db import Base, Id


class NotificationStep(Base):
    """An escalation step carried out for a work order (facmon.notifier.policy: "<stage>#<repeat>").

    The primary key makes a step happen once, across restarts and concurrent dispatchers: the step, its timeline
    entry and its deliveries are written in one transaction, which a second writer cannot commit.
    """

    __tablename__ = "notification_steps"

    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(String(48), primary_key=True)
    # sent, digest, silenced or no_recipient.
    outcome: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]


class Delivery(Base):
    """One message to one recipient over one channel: the durable queue and the delivery log in one table."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index(
            "ix_deliveries_pending",
            "next_attempt_at",
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index("ix_deliveries_recipient_created_at", "recipient_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # Notification.key plus the channel: unique, so nothing is queued twice.
    key: Mapped[str] = mapped_column(String(240), unique=True)
    message: Mapped[str] = mapped_column(String(200))
    # What the message is about: a work order, or a fire alarm (which is not a work order).
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    fire_alarm_id: Mapped[int | None] = mapped_column(ForeignKey("fire_alarms.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(16))
    # The Notification and the Recipient as sent (facmon.notifier.queue), so a restart rebuilds them exactly.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    # Given up: the channel said trying again would not help.
    failed_at: Mapped[datetime | None]
    # Not sent after all: the breach it escalated was withdrawn before it went out (facmon.notifier.withdrawn).
    cancelled_at: Mapped[datetime | None]
    # Seconds from queueing to the channel accepting it.
    latency_s: Mapped[float | None] = mapped_column(Float)
