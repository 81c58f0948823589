"""What every channel shares: who gets a message, what it says, and how a failed delivery is reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Recipient:
    """A person a message goes to (a technician, the site's supervisor or manager)."""

    id: str
    name: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Notification:
    """One message about one work order to one recipient: what, where, how urgent, the time left on the SLA.

    `key` is unique per (work order, escalation stage, repeat, recipient, channel): a delivery retried after a crash
    carries the same key, so a receiver can drop duplicates.
    """

    key: str
    # The work order the message is about; None for a fire alarm, which is not a work order (rules.fire).
    work_order_id: int | None
    site: str
    building: str
    device: str
    kind: str
    fault: str
    priority: str
    title: str
    # The SLA clock the message is about and the seconds left on it (negative: breached that long ago).
    sla_clock: str | None
    sla_left_s: float | None
    # A one-tap acknowledge link (a signed, expiring token), when the API's public address is known.
    ack_url: str | None
    # Why this message: "opened", "reminder", "escalation", "breach", "digest", "fire_alarm", or "withdrawn" (an all
    # clear: late evidence proved the deadline met, so the breach this person was told of is withdrawn).
    reason: str
    created_at: datetime
    fire_alarm_id: int | None = None


class DeliveryError(Exception):
    """A channel could not deliver. `retryable`: worth trying again later (timeouts, 5xx, connection refused)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """A way to reach people. `send` returns once the other side accepted the message, or raises DeliveryError."""

    @property
    def name(self) -> str: ...

    async def send(self, notification: Notification, recipient: Recipient) -> None: ...
