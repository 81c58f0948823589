"""The log channel: writes each message to the log; what `facmon up` uses when no channel is configured."""

from __future__ import annotations

import structlog

from facmon.notifier.base import Notification, Recipient

log = structlog.get_logger(__name__)


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
