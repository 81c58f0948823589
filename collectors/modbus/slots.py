"""Poll slots: when a device is polled and what time its readings carry, the same on every gateway of a site.

Two gateways may poll the same device (a standby next to the gateway it stands in for, or a second one started by
mistake). Were each reading stamped with its gateway's own time, every poll would be stored twice. Instead each
device has a fixed place in the poll interval (its phase, from its identity), polls start at the beginning of their
slot, and a poll's readings and events carry the slot's start. Two gateways' polls of one slot then write the same
InfluxDB point (same series, same time), and the events of a slot carry an id made from what they say and the slot,
so a consumer that knows events by id takes the second copy for the first. The time lost to the stamp is at most
the poll's lateness, typically milliseconds.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import UTC, datetime, timedelta

from facmon.kernel.model import DeviceRef, Event

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The namespace of events ids made from a device's slot (uuid5 of what the event says).
_EVENT_IDS = uuid.UUID("5d1b8e0e-3f5c-4d51-9a47-0c2f6f1d7a11")


# Places in an interval a slot may start at. A gateway's devices share them, so the polls of one place start in one
# turn of the event loop: 1,000 devices each at its own instant cost the loop a wake-up, a poll of the selector and
# a timer each; at 20 places fifty polls share those, and their answers come back together too (50 ms apart at a
# 1 s interval: a few units behind one Modbus gateway share a place and wait their turn on its connection, which the
# lateness does not count, as it is measured at the start of a poll).
PLACES = 20


def phase_s(ref: DeviceRef, interval_s: float) -> float:
    """Where in each interval the device's slot starts: one of `PLACES` evenly spaced places, chosen by identity, the
    same everywhere."""
    digest = hashlib.sha256(f"{ref.site}/{ref.device}".encode()).digest()
    return int.from_bytes(digest[:4], "big") * PLACES // 2**32 * interval_s / PLACES


def slot_start(now: datetime, interval_s: float, phase: float) -> datetime:
    """The start of the slot `now` falls in."""
    seconds = (now - _EPOCH).total_seconds() - phase
    return _EPOCH + timedelta(seconds=math.floor(seconds / interval_s) * interval_s + phase)


def until_next_slot_s(now: datetime, interval_s: float, phase: float) -> float:
    """Seconds from `now` to the start of the next slot (0 when `now` is on a slot's start)."""
    return (interval_s - ((now - _EPOCH).total_seconds() - phase) % interval_s) % interval_s


def with_slot_id(event: Event) -> Event:
    """The event with an id made from its device, what it says and its time: equal for equal events of one slot."""
    ref = event.ref
    key = "/".join((ref.site, ref.device, event.type.value, event.code or "", event.point or "", event.ts.isoformat()))
    return event.model_copy(update={"id": uuid.uuid5(_EVENT_IDS, key).hex})
