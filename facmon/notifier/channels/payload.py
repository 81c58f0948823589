"""The notification as JSON, shared by the channels that carry structured data (generic webhook, MQTT push)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from facmon.notifier.base import Notification, Recipient
from facmon.notifier.message import render_text

__all__ = ["notification_json"]


def notification_json(notification: Notification, recipient: Recipient) -> dict[str, Any]:
    body = asdict(notification)
    body["created_at"] = notification.created_at.isoformat()
    # The person's id and name only: their phone number and e-mail address stay out of third-party systems.
    body["recipient"] = {"id": recipient.id, "name": recipient.name}
    body["text"] = render_text(notification)
    return body
