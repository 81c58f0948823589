"""The edge of one estate: collectors feed a durable outbox, and the publisher drains it to the MQTT backbone."""

from gateway.outbox import Outbox, OutboxMessage
from gateway.publisher import Publisher

__all__ = ["Outbox", "OutboxMessage", "Publisher"]
