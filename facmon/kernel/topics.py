"""The MQTT topic tree: facmon/v1/<site>/<kind>/<device>/{state,event}."""

from __future__ import annotations

from facmon.kernel.model import DeadLetter, DeviceRef, Event, Reading

ROOT = "facmon/v1"
STATE = "state"
EVENT = "event"
# Payloads that could not be decoded are parked here with the reason, never dropped silently.
DEAD_LETTER = f"{ROOT}/_dead"


def state_topic(ref: DeviceRef) -> str:
    return f"{ROOT}/{ref.site}/{ref.kind.value}/{ref.device}/{STATE}"


def event_topic(ref: DeviceRef) -> str:
    return f"{ROOT}/{ref.site}/{ref.kind.value}/{ref.device}/{EVENT}"


def dead_letter_topic(site: str, device: str | None) -> str:
    """Where a device's unusable input is parked: facmon/v1/_dead/<site>/<device> (`_unknown` for no device)."""
    return f"{DEAD_LETTER}/{site}/{device or '_unknown'}"


def topic_for(message: Reading | Event | DeadLetter) -> str:
    if isinstance(message, DeadLetter):
        return dead_letter_topic(message.site, message.ref.device if message.ref else None)
    return state_topic(message.ref) if isinstance(message, Reading) else event_topic(message.ref)


def subscription(site: str = "+", kind: str = "+", leaf: str = "+") -> str:
    return f"{ROOT}/{site}/{kind}/+/{leaf}"


def leaf_of(topic: str) -> str:
    """'state' or 'event' for a topic of the tree; raises ValueError for anything else."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != ROOT or parts[5] not in (STATE, EVENT):
        raise ValueError(f"not a facmon topic: {topic!r}")
    return parts[5]
