"""Poll one fire alarm panel and turn its panel registers and point table into Readings and Events.

Every poll reads the whole panel (a few coalesced requests) and emits one panel Reading: the panel's own values and
the counts of its points, with the fire equipment intact rate. A point's Reading (`Reading.point = "1-023"`) is
emitted when the point changes, and for every known point once per `snapshot_interval_s`, so its history is
complete even when nothing happens. Conditions (fire, supervisory, fault, disabled; absent when a point that was
there disappears) are events on their edges, per point; started and feedback are status events. Registers that make
no sense are refused per point: counted each poll, dead-lettered when they start or change, and the rest of the
frame is used; a refused point keeps its last good state. Schedule, shared link and comm status are the same as
for any Modbus device (`collectors.modbus.polling`).
"""

from __future__ import annotations

from datetime import datetime

import structlog

from collectors.modbus.driver import Table
from collectors.modbus.fire_panel import CONDITIONS, STATUS_FLAGS, FirePanelDriver, Flag, PanelFrame, PointStatus
from collectors.modbus.link import LinkError, ModbusLink, ModbusLinks
from collectors.modbus.polling import CommWatch, poll_on_schedule
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Emit, Event, EventType, ModbusAddress, Reading, Reject, Value

log = structlog.get_logger(__name__)

_NOTHING = dict.fromkeys(CONDITIONS, False)
_STATUS_WORDS = {Flag.ACTIVE: ("started", "stopped"), Flag.FEEDBACK: ("feedback on", "feedback off")}


class FirePanelPoller:
    def __init__(
        self,
        ref: DeviceRef,
        driver: FirePanelDriver,
        address: ModbusAddress,
        *,
        poll_interval_s: float,
        comm_grace_s: float,
        emit: Emit,
        clock: Clock,
        metrics: Counters,
        reject: Reject | None = None,
        snapshot_interval_s: float = 60.0,
        timeout_s: float = 1.0,
        backoff_max_s: float = 30.0,
        links: ModbusLinks | None = None,
    ) -> None:
        if poll_interval_s <= 0 or timeout_s <= 0 or snapshot_interval_s <= 0:
            raise ValueError("poll_interval_s, snapshot_interval_s and timeout_s must be positive")
        self.ref = ref
        self.driver = driver
        self.address = address
        self.poll_interval_s = poll_interval_s
        self.snapshot_interval_s = snapshot_interval_s
        self._emit = emit
        self._reject = reject
        self._clock = clock
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._backoff_max_s = backoff_max_s
        self._links = links
        self._log = log.bind(device=ref.device, address=f"{address.host}:{address.port}/{address.unit}")
        self._comm = CommWatch(ref, comm_grace_s=comm_grace_s, emit=emit, clock=clock, log=self._log)
        # Last good status of every point seen present since start, and those of them that are now gone.
        self._points: dict[str, PointStatus] = {}
        self._gone: set[str] = set()
        self._panel_faults: dict[str, bool] = {}
        self._rejecting: dict[str, str] = {}
        self._snapshot_due_s: float | None = None

    async def run(self) -> None:
        """Poll until cancelled; device and network problems become events and metrics, never exceptions."""
        self._comm.start()
        await poll_on_schedule(
            self.poll,
            self.address,
            interval_s=self.poll_interval_s,
            device=self.ref.device,
            metrics=self._metrics,
            backoff_max_s=self._backoff_max_s,
            links=self._links,
        )

    async def poll(self, link: ModbusLink) -> None:
        """One poll of the whole panel, or a failure counted against comm status."""
        self._metrics.inc("modbus_polls", device=self.ref.device)
        image: dict[tuple[Table, int], int] = {}
        try:
            for block in self.driver.blocks:
                words = await link.read(
                    block.table, block.start, block.count, unit=self.address.unit, timeout_s=self._timeout_s
                )
                image.update(((block.table, block.start + i), w) for i, w in enumerate(words))
        except LinkError as exc:
            # Half a panel is not a frame: its counts would be wrong. The rest is not tried either.
            self._metrics.inc("modbus_poll_failures", device=self.ref.device)
            await self._comm.silent(str(exc))
            return
        ts = self._clock.now()
        await self._comm.answered(ts)
        await self._take(self.driver.decode(image), ts)

    async def _take(self, frame: PanelFrame, ts: datetime) -> None:
        await self._refused(frame, ts)
        events: list[Event] = []
        changed: list[str] = []
        for point, status in frame.points.items():
            if self._update(point, status, ts, events):
                changed.append(point)
        now_s = self._clock.monotonic()
        if self._snapshot_due_s is None or now_s >= self._snapshot_due_s:
            self._snapshot_due_s = now_s + self.snapshot_interval_s
            changed = list(self._points)
        await self._emit(Reading(ref=self.ref, ts=ts, values={**frame.panel, **self._counts(frame)}))
        for point in changed:
            await self._emit(Reading(ref=self.ref, ts=ts, point=point, values=self._point_values(point)))
        for name, message in self.driver.panel_faults.items():
            flag = frame.panel.get(name)
            # A refused value is missing: the last known state stands until a legal one is read.
            if isinstance(flag, bool) and flag != self._panel_faults.get(name, False):
                self._panel_faults[name] = flag
                type_ = EventType.FAULT_RAISED if flag else EventType.FAULT_CLEARED
                self._log.info("panel fault", type=type_.value, code=name)
                await self._emit(Event(ref=self.ref, ts=ts, type=type_, code=name, message=message))
        for event in events:
            await self._emit(event)

    def _update(self, point: str, status: PointStatus | None, ts: datetime, events: list[Event]) -> bool:
        """Take a point's new status; True when it changed. The events its change implies go to `events`."""
        old = self._points.get(point)
        was_gone = point in self._gone
        if status is None:
            if old is None or was_gone:
                return False  # never there, or already known to be gone
            self._gone.add(point)
            events.extend(self._changes(old, None, ts))
            events.append(self._event(EventType.FAULT_RAISED, old, "absent", "absent", ts))
            return True
        self._points[point] = status
        self._gone.discard(point)
        if was_gone and old is not None:
            events.append(self._event(EventType.FAULT_CLEARED, old, "absent", "absent", ts))
        previous = None if was_gone else old
        events.extend(self._changes(previous, status, ts))
        return previous != status

    def _changes(self, before: PointStatus | None, after: PointStatus | None, ts: datetime) -> list[Event]:
        """Condition edges (a point first seen or gone counts as in no condition) and status changes."""
        was = before.conditions() if before is not None else _NOTHING
        now = after.conditions() if after is not None else _NOTHING
        events = []
        for condition in CONDITIONS:
            if now[condition] and not was[condition] and after is not None:
                events.append(self._event(EventType.FAULT_RAISED, after, condition, condition, ts))
            elif was[condition] and not now[condition] and before is not None:
                events.append(self._event(EventType.FAULT_CLEARED, before, condition, condition, ts))
        if after is None:
            return events  # a point that is gone has no status to report
        for flag in STATUS_FLAGS:
            on = after.has(flag)
            if on != (before is not None and before.has(flag)):
                event = self._event(EventType.STATUS, after, flag.value, _STATUS_WORDS[flag][0 if on else 1], ts)
                events.append(event.model_copy(update={"data": {**event.data, flag.value: on}}))
        return events

    def _event(self, type_: EventType, status: PointStatus, code: str, words: str, ts: datetime) -> Event:
        return Event(
            ref=self.ref,
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

    async def _refused(self, frame: PanelFrame, ts: datetime) -> None:
        refused = {r.where for r in frame.rejected}
        for where in [w for w in self._rejecting if w not in refused]:
            del self._rejecting[where]
            self._log.info("fire panel value accepted again", point=where)
        for r in frame.rejected:
            self._metrics.inc("modbus_rejected_values", device=self.ref.device, point=r.where)
            # Counted every poll, reported when it starts or its reason changes: a stuck bad value must not flood.
            if self._rejecting.get(r.where) == r.reason:
                continue
            self._rejecting[r.where] = r.reason
            self._log.warning("fire panel value rejected", point=r.where, reason=r.reason)
            if self._reject is not None:
                letter = DeadLetter(
                    site=self.ref.site, ref=self.ref, ts=ts, source="modbus", reason=r.reason, payload=r.payload
                )
                await self._reject(letter)
