"""What a fire alarm panel's registers mean: its panel registers and point table as Readings and Events.

Every poll reads the whole panel (a few coalesced requests) and makes one panel Reading: the panel's own values and
the counts of its points, with the fire equipment intact rate. A point's Reading (`Reading.point = "1-023"`) is
made when the point changes, and for every known point once per `snapshot_interval_s`, so its history is complete
even when nothing happens. Conditions (fire, supervisory, fault, disabled; absent when a point that was there
disappears) are events on their edges, per point; started and feedback are status events; the panel's own faults
are events on their edges too. Registers that make no sense are refused per point and the rest of the frame is
used; a refused point keeps its last good state. Schedule, shared link, comm status and the counting and
dead-lettering of refused values are the poller's, as for any Modbus device (`collectors.modbus.poller`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from collectors.modbus.fire_panel import CONDITIONS, STATUS_FLAGS, FirePanelDriver, Flag, PanelFrame, PointStatus
from collectors.modbus.interpreter import Frame, Interpretation, Refusal
from collectors.modbus.registers import Block, Table
from facmon.kernel.model import DeviceRef, Event, EventType, Reading, Value

_NOTHING = dict.fromkeys(CONDITIONS, False)
_STATUS_WORDS = {Flag.ACTIVE: ("started", "stopped"), Flag.FEEDBACK: ("feedback on", "feedback off")}


class FirePanelInterpreter:
    def __init__(self, driver: FirePanelDriver, *, snapshot_interval_s: float = 60.0) -> None:
        if snapshot_interval_s <= 0:
            raise ValueError("snapshot_interval_s must be positive")
        self.driver = driver
        self.snapshot_interval_s = snapshot_interval_s
        # Last good status of every point seen present since start, and those of them that are now gone.
        self._points: dict[str, PointStatus] = {}
        self._gone: set[str] = set()
        self._panel_faults: dict[str, bool] = {}
        self._snapshot_due_s: float | None = None

    @property
    def blocks(self) -> Sequence[Block]:
        return self.driver.blocks

    def interpret(self, ref: DeviceRef, frame: Frame, ts: datetime, now_s: float) -> Interpretation:
        """The whole panel as read in one poll."""
        image: dict[tuple[Table, int], int] = {}
        for block, words in frame:
            image.update(((block.table, block.start + i), w) for i, w in enumerate(words))
        panel = self.driver.decode(image)
        meaning = Interpretation(refused=[Refusal(r.where, r.reason, r.payload) for r in panel.rejected])
        events: list[Event] = []
        changed: list[str] = []
        for point, status in panel.points.items():
            if self._update(ref, point, status, ts, events):
                changed.append(point)
        if self._snapshot_due_s is None or now_s >= self._snapshot_due_s:
            self._snapshot_due_s = now_s + self.snapshot_interval_s
            changed = list(self._points)
        meaning.messages.append(Reading(ref=ref, ts=ts, values={**panel.panel, **self._counts(panel)}))
        for point in changed:
            meaning.messages.append(Reading(ref=ref, ts=ts, point=point, values=self._point_values(point)))
        for name, message in self.driver.panel_faults.items():
            flag = panel.panel.get(name)
            # A refused value is missing: the last known state stands until a legal one is read.
            if isinstance(flag, bool) and flag != self._panel_faults.get(name, False):
                self._panel_faults[name] = flag
                type_ = EventType.FAULT_RAISED if flag else EventType.FAULT_CLEARED
                meaning.messages.append(Event(ref=ref, ts=ts, type=type_, code=name, message=message))
        meaning.messages.extend(events)
        return meaning

    def _update(
        self, ref: DeviceRef, point: str, status: PointStatus | None, ts: datetime, events: list[Event]
    ) -> bool:
        """Take a point's new status; True when it changed. The events its change implies go to `events`."""
        old = self._points.get(point)
        was_gone = point in self._gone
        if status is None:
            if old is None or was_gone:
                return False  # never there, or already known to be gone
            self._gone.add(point)
            events.extend(self._changes(ref, old, None, ts))
            events.append(self._event(ref, EventType.FAULT_RAISED, old, "absent", "absent", ts))
            return True
        self._points[point] = status
        self._gone.discard(point)
        if was_gone and old is not None:
            events.append(self._event(ref, EventType.FAULT_CLEARED, old, "absent", "absent", ts))
        previous = None if was_gone else old
        events.extend(self._changes(ref, previous, status, ts))
        return previous != status

    def _changes(
        self, ref: DeviceRef, before: PointStatus | None, after: PointStatus | None, ts: datetime
    ) -> list[Event]:
        """Condition edges (a point first seen or gone counts as in no condition) and status changes."""
        was = before.conditions() if before is not None else _NOTHING
        now = after.conditions() if after is not None else _NOTHING
        events = []
        for condition in CONDITIONS:
            if now[condition] and not was[condition] and after is not None:
                events.append(self._event(ref, EventType.FAULT_RAISED, after, condition, condition, ts))
            elif was[condition] and not now[condition] and before is not None:
                events.append(self._event(ref, EventType.FAULT_CLEARED, before, condition, condition, ts))
        if after is None:
            return events  # a point that is gone has no status to report
        for flag in STATUS_FLAGS:
            on = after.has(flag)
            if on != (before is not None and before.has(flag)):
                event = self._event(ref, EventType.STATUS, after, flag.value, _STATUS_WORDS[flag][0 if on else 1], ts)
                events.append(event.model_copy(update={"data": {**event.data, flag.value: on}}))
        return events

    def _event(
        self, ref: DeviceRef, type_: EventType, status: PointStatus, code: str, words: str, ts: datetime
    ) -> Event:
        return Event(
            ref=ref,
            ts=ts,
            type=type_,
            code=code,
            point=status.point,
            message=f"{status.type.label} {status.point}: {words}",
            data={"point_type": status.type.name},
        )

    def _point_values(self, point: str) -> dict[str, Value]:
        status = self._points[point]
        if point in self._gone:
            return {"state": "absent", "type": status.type.name}
        return status.values()

    def _counts(self, frame: PanelFrame) -> dict[str, Value]:
        present = [s for p, s in self._points.items() if p not in self._gone]
        intact = sum(s.intact for s in present)
        counts: dict[str, Value] = {
            "points_total": len(present),
            "points_fire": sum(s.fire for s in present),
            "points_supervisory": sum(s.supervisory for s in present),
            "points_fault": sum(s.has(Flag.FAULT) for s in present),
            "points_disabled": sum(s.has(Flag.DISABLED) for s in present),
            "points_active": sum(s.has(Flag.ACTIVE) for s in present),
            "points_intact": intact,
            "points_rejected": sum(r.point for r in frame.rejected),
        }
        if present:
            # Intact fire points / all fire points (DOMAIN: fire equipment intact rate), in percent.
            counts["intact_pct"] = round(100.0 * intact / len(present), 2)
        return counts
