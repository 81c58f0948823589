"""The rules worker's fire intact rate: panel readings from the backbone in, the point table kept, each site's figure
written to InfluxDB (`fire_intact`, rules.fire_intact) on the injected clock.

Every `tick_s` (one second by default) the writer makes each site's figure at that instant and stores what the
readings taught it about the point table (rules.fire_point_store): points first heard of and state changes at once,
the mere time of each point's latest reading every `save_s`; every `reload_s` it reads back which points are
decommissioned (the API changes that). A
figure is written when it differs from the last one written and at least every `heartbeat_s` (a minute) even when
nothing changed, so a panel that falls silent lowers the rate within its `silent_after` rather than freezing the
last figure; the period's figure lets each one hold for at most five minutes (facmon.reports.kpi_period).

Start: no figure before the table is loaded (the site files' points added to it first), and none of a site until
each of its panels has been heard of or has been silent for its `silent_after` since the start; then the figure
uses the stored table and the states stored with it at once (a point absent before the restart is still counted,
and one the panel reported within its point hold keeps its state), so a restart neither forgets a point nor dips.

Why a component of its own beside the event consumer rather than more topics on the consumer's session: the
consumer's persistent session and manual acks exist so that no event is lost; panel readings come every second and
each supersedes the last, so a clean session at QoS 0 is right for them, and queueing a day of readings in the
broker for a worker that was away would be wrong. A panel heard of for the first time is also put on the single-item
check schedule (`on_new_panel`, rules.fire_checks).

Several workers side by side: with a `lease` (rules.leases) every writer hears the readings, and only the lease's
holder saves the point table and writes figures; the others drop what they learnt (the holder heard it too). One that
takes the lease over loads the stored table first, under what its own readings taught it, as at a start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import aiomqtt
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from collectors.modbus.fire_panel import parse_point
from collectors.registry import fire_panel_driver
from facmon.estate.site import Site
from facmon.kernel.batches import decode_state
from facmon.kernel.clock import CLOCK_SKEW, Clock, SystemClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, Reading
from facmon.kernel.ticking import tick_forever
from facmon.kernel.topics import STATE, subscription
from facmon.workorders.lifecycle import LifecycleSink, LifecycleSinkError
from rules import fire_point_store as store
from rules.fire_intact import FirePointBook, PanelSpec, intact_line, point_report, silent_after
from rules.leases import Lease

log = structlog.get_logger(__name__)

PANEL_STATE_TOPICS = subscription(kind=DeviceKind.FIRE_PANEL.value, leaf=STATE)
# Figures waiting for InfluxDB while it is down; the oldest are dropped beyond this (a rate, not a record).
MAX_PENDING = 50_000

# Called with (site, building, device, first seen at) for a panel heard of for the first time since start.
NewPanel = Callable[[str, str, str, datetime], Awaitable[None]]


@dataclass(frozen=True)
class IntactTiming:
    tick_s: float = 1.0
    heartbeat_s: float = 60.0
    save_s: float = 5.0
    reload_s: float = 5.0


def panel_specs(sites: Sequence[Site]) -> list[PanelSpec]:
    """The fire panels of the site files; a reading holds for max(60 s, three poll intervals, the comm grace)."""
    return [
        PanelSpec(
            site.id, building.id, device.id, device.model, silent_after(device.poll_interval_s, device.comm_grace_s)
        )
        for site in sites
        for building, device in site.devices()
        if device.kind == DeviceKind.FIRE_PANEL
    ]


class FireIntactWriter:
    def __init__(
        self,
        sink: LifecycleSink,
        engine: Engine,
        *,
        sites: Sequence[Site] | None = None,
        on_new_panel: NewPanel | None = None,
        metrics: Counters | None = None,
        clock: Clock | None = None,
        timing: IntactTiming = IntactTiming(),
        lease: Lease | None = None,
    ) -> None:
        self.sink = sink
        self.lease = lease
        self.engine = engine
        self.sites = None if sites is None else tuple(sites)
        self.on_new_panel = on_new_panel
        self.metrics = metrics or Counters()
        # Ticks run on it (tests drive it); the reconnect pause is a network wait on real time.
        self.clock = clock or SystemClock()
        self.timing = timing
        self.book = FirePointBook(None if sites is None else panel_specs(sites))
        self._site_ids = None if sites is None else [s.id for s in sites]
        self._lines: deque[str] = deque(maxlen=MAX_PENDING)
        self._started: datetime | None = None
        self._reload_at = 0.0
        self._save_at = 0.0
        self._written: dict[str, tuple[tuple[int, ...], datetime]] = {}
        self.subscribed = asyncio.Event()

    # --- readings in ---------------------------------------------------------------------------------------------

    async def take(self, reading: Reading) -> None:
        ref = reading.ref
        if ref.kind != DeviceKind.FIRE_PANEL:
            return
        now = self.clock.now()
        if reading.ts > now + CLOCK_SKEW:
            self.metrics.inc("rules_fire_intact_from_future")
        # Not later than now: a gateway's clock ahead would keep a point current for as long as it is ahead.
        at = min(reading.ts, now)
        if self.sites is not None:
            # A panel of the site files only, as they describe it (the event consumer refuses the same).
            spec = self.book.panel(ref.site, ref.device)
            if spec is None or (spec.building, spec.model) != (ref.building, ref.model):
                self.metrics.inc("rules_fire_intact_refused")
                return
        if reading.point is None:
            total = reading.values.get("points_total")
            present = total if isinstance(total, int) and not isinstance(total, bool) else None
            if self.book.heard_panel(ref.site, ref.building, ref.device, ref.model, at, present) and self.on_new_panel:
                await self.on_new_panel(ref.site, ref.building, ref.device, at)
            return
        report = point_report(reading, at) if self._on_panel(ref.model, reading.point) else None
        if report is None:
            self.metrics.inc("rules_fire_intact_rejected")
            return
        self.book.take_point(report)

    def _on_panel(self, model: str, point: str) -> bool:
        """Whether `point` names a point of the panel's point table (of any table, for a model without a driver)."""
        try:
            if self.sites is None:
                parse_point(point)
            else:
                fire_panel_driver(model).point_table.offset(point)
        except KeyError:
            return False
        return True

    # --- the ticks -----------------------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Keep the table, make the figures of this instant and write those due; how many were written."""
        now = self.clock.now()
        if not await self._leading(now):
            return 0
        if self._started is None:
            try:
                await asyncio.to_thread(self._load, now)
            except OperationalError as exc:
                self.metrics.inc("rules_fire_intact_db_errors")
                log.warning("fire points not loaded: no figures until they are", error=str(exc.orig))
                return 0
            self._started = now
            self._reload_at = self.clock.monotonic() + self.timing.reload_s
        pending = self.book.pending
        if pending.new or pending.states or (pending and self.clock.monotonic() >= self._save_at):
            self._save_at = self.clock.monotonic() + self.timing.save_s
            await self._save()
        if self.clock.monotonic() >= self._reload_at:
            await self._reload()
        self._figures(now)
        return await self.flush()

    async def _leading(self, now: datetime) -> bool:
        """Whether this writer holds the lease (or has none): else it drops what it learnt and starts afresh when it
        takes the lease."""
        if self.lease is None:
            return True
        try:
            held = await asyncio.to_thread(self.lease.hold, now)
        except OperationalError as exc:
            self.metrics.inc("rules_fire_intact_db_errors")
            log.warning("fire intact lease not renewed: no figures until it is", error=str(exc.orig))
            held = False
        if not held:
            if self._started is not None:
                log.info("fire intact figures: another worker holds the lease", holder=self.lease.holder)
            self.book.take_pending()
            self._started = None
            self._written.clear()
        return held

    def _load(self, now: datetime) -> None:
        if self.sites:
            added = store.add_all_listed(self.engine, self.sites, now)
            if added:
                log.info("fire points listed in the site files added to the point table", points=added)
        self.book.load(store.stored_points(self.engine, self._site_ids), full=True)

    async def _save(self) -> None:
        pending = self.book.take_pending()
        if not pending:
            return
        try:
            await asyncio.to_thread(store.save, self.engine, pending)
        except OperationalError as exc:
            self.book.pending.merge(pending)  # written with the next tick's
            self.metrics.inc("rules_fire_intact_db_errors")
            log.warning("fire points not saved", error=str(exc.orig))
        except SQLAlchemyError as exc:
            # What the database refuses for what it holds would be refused again: counted, logged and dropped.
            self.metrics.inc("rules_fire_intact_db_refused")
            log.error("fire points refused by the database", error=type(exc).__name__, detail=str(exc)[:300])

    async def _reload(self) -> None:
        try:
            rows = await asyncio.to_thread(store.commissioning, self.engine, self._site_ids)
        except OperationalError as exc:
            self.metrics.inc("rules_fire_intact_db_errors")
            log.warning("fire point decommissioning not read", error=str(exc.orig))
            return
        self.book.load(rows, full=False)
        self._reload_at = self.clock.monotonic() + self.timing.reload_s

    def _figures(self, now: datetime) -> None:
        assert self._started is not None
        heartbeat = timedelta(seconds=self.timing.heartbeat_s)
        for site in self.book.sites():
            if not self.book.ready(site, self._started, now):
                continue
            last = self._written.get(site)
            due = last is None or now - last[1] >= heartbeat
            if not (due or self.book.due(site, now)):
                continue
            figure = self.book.figure(site, now)
            if due or last is None or last[0] != figure.counts():
                self._lines.append(intact_line(figure))
                self._written[site] = (figure.counts(), now)

    async def flush(self) -> int:
        """Write the figures waiting; how many (0 when the sink refused them: they stay for the next flush)."""
        if not self._lines:
            return 0
        lines = list(self._lines)
        try:
            await self.sink.write(lines)
        except LifecycleSinkError as exc:
            self.metrics.inc("rules_fire_intact_errors")
            log.warning("fire intact points not written", error=str(exc), pending=len(lines))
            return 0
        for _ in lines:
            self._lines.popleft()
        self.metrics.inc("rules_fire_intact_points", len(lines))
        return len(lines)

    async def run_ticks(self) -> NoReturn:
        """Tick every `tick_s` of the clock's time until cancelled."""
        await tick_forever(self.tick, self.timing.tick_s, clock=self.clock, metrics=self.metrics, name="fire_intact")

    # --- the backbone --------------------------------------------------------------------------------------------

    async def consume(self, client_factory: Callable[[], aiomqtt.Client], backoff_s: float = 1.0) -> NoReturn:
        """Take panel readings from the backbone until cancelled; reconnect after a lost connection."""
        topics = (
            [PANEL_STATE_TOPICS]
            if self._site_ids is None
            else [subscription(site, DeviceKind.FIRE_PANEL.value, STATE) for site in self.book.sites()]
        )
        if not topics:  # site files without a fire panel: nothing to hear
            await asyncio.Future()
        while True:
            try:
                async with client_factory() as client:
                    await client.subscribe([(topic, 0) for topic in topics])
                    self.subscribed.set()
                    async for message in client.messages:
                        await self._message(message.topic.value, message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("fire intact: mqtt connection lost", error=str(exc))
            finally:
                self.subscribed.clear()
            await asyncio.sleep(backoff_s)

    async def _message(self, topic: str, payload: object) -> None:
        """A panel's state message: one reading, or a batch of them (facmon.kernel.batches)."""
        if not isinstance(payload, bytes | str):
            return
        try:
            decoded = decode_state(topic, payload)
        except ValueError:
            self.metrics.inc("rules_fire_intact_rejected")
            return
        if decoded.refused:
            self.metrics.inc("rules_fire_intact_rejected", len(decoded.refused))
        for reading in decoded.readings:
            await self.take(reading)
