"""The fire equipment intact rate of each site, computed continuously from its panels' readings.

Each panel's own rate comes from the collector (`fire_panel.intact_pct`, with `points_total` present points and
`points_intact`). A site's rate is not the mean of its panels' rates but intact points / present points over all its
panels, so a panel of 400 points weighs more than one of 40. `SiteIntactRates.update` keeps the latest counts of
every panel and answers the site's figures after each panel reading (pure apart from that memory); the writer turns
them into points of measurement `fire_intact` (tags `site`; fields `intact_pct`, `points_present`,
`points_intact`, `panels`), at the reading's time.

Why a component of its own beside the event consumer rather than more topics on the consumer's session: the
consumer's persistent session and manual acks exist so that no event is lost; panel readings come every second and
each supersedes the last, so a clean session at QoS 0 is right for them, and queueing a day of readings in the
broker for a worker that was away would be wrong. A panel heard of for the first time is also put on the single-item
check schedule (rules.fire_checks).

Memory holds the last counts per panel since start: after a restart a site's figure covers the panels heard from so
far, which within one poll interval is all of them. A panel that goes silent keeps its last counts (its points did
not vanish; `comm_lost` says it is unheard).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

import aiomqtt
import structlog
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from facmon.kernel.clock import Clock, SystemClock, not_ahead
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, Reading, decode_message
from facmon.kernel.topics import STATE, subscription
from facmon.workorders.lifecycle import LifecycleSink, LifecycleSinkError

log = structlog.get_logger(__name__)

MEASUREMENT = "fire_intact"
PANEL_STATE_TOPICS = subscription(kind=DeviceKind.FIRE_PANEL.value, leaf=STATE)
# Points waiting for InfluxDB while it is down; the oldest are dropped beyond this (a rate, not a record).
MAX_PENDING = 50_000


@dataclass(frozen=True)
class _Panel:
    ts: datetime
    present: int
    intact: int


@dataclass(frozen=True)
class SiteIntact:
    site: str
    ts: datetime
    points_present: int
    points_intact: int
    panels: int

    @property
    def intact_pct(self) -> float | None:
        if self.points_present == 0:
            return None
        return round(100.0 * self.points_intact / self.points_present, 2)


class SiteIntactRates:
    def __init__(self) -> None:
        self._panels: dict[str, dict[str, _Panel]] = {}

    def update(self, reading: Reading) -> SiteIntact | None:
        """The site's figures after this reading; None for what is not a panel reading with counts, or older than
        the last one taken from the same panel."""
        if reading.ref.kind != DeviceKind.FIRE_PANEL or reading.point is not None:
            return None
        present, intact = reading.values.get("points_total"), reading.values.get("points_intact")
        if type(present) is not int or type(intact) is not int or not 0 <= intact <= present:
            return None
        panels = self._panels.setdefault(reading.ref.site, {})
        previous = panels.get(reading.ref.device)
        if previous is not None and previous.ts > reading.ts:
            return None
        panels[reading.ref.device] = _Panel(reading.ts, present, intact)
        return SiteIntact(
            site=reading.ref.site,
            ts=reading.ts,
            points_present=sum(p.present for p in panels.values()),
            points_intact=sum(p.intact for p in panels.values()),
            panels=len(panels),
        )

    def knows(self, site: str, device: str) -> bool:
        return device in self._panels.get(site, {})


def intact_line(figures: SiteIntact) -> str:
    fields: dict[str, int | float] = {
        "points_present": figures.points_present,
        "points_intact": figures.points_intact,
        "panels": figures.panels,
    }
    if figures.intact_pct is not None:
        fields["intact_pct"] = figures.intact_pct
    point = Point.from_dict(
        {"measurement": MEASUREMENT, "tags": {"site": figures.site}, "fields": fields, "time": figures.ts}
    )
    line: str = point.to_line_protocol(WritePrecision.NS)
    return line


# Called with (site, building, device, first seen at) for a panel heard of for the first time since start.
NewPanel = Callable[[str, str, str, datetime], Awaitable[None]]


class FireIntactWriter:
    def __init__(
        self,
        sink: LifecycleSink,
        *,
        on_new_panel: NewPanel | None = None,
        metrics: Counters | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.sink = sink
        self.on_new_panel = on_new_panel
        self.metrics = metrics or Counters()
        # The flusher's period runs on it (tests drive it); the reconnect pause is a network wait on real time.
        self.clock = clock or SystemClock()
        self.rates = SiteIntactRates()
        self._pending: deque[str] = deque(maxlen=MAX_PENDING)
        self.subscribed = asyncio.Event()

    async def take(self, reading: Reading) -> SiteIntact | None:
        ref = reading.ref
        # A panel's gateway with its clock ahead must not hide the readings after it until that time comes.
        now = self.clock.now()
        if not_ahead(reading.ts, now) != reading.ts:
            self.metrics.inc("rules_fire_intact_from_future")
            reading = reading.model_copy(update={"ts": now})
        new = reading.ref.kind == DeviceKind.FIRE_PANEL and not self.rates.knows(ref.site, ref.device)
        figures = self.rates.update(reading)
        if figures is None:
            return None
        if new and self.on_new_panel is not None:
            await self.on_new_panel(ref.site, ref.building, ref.device, reading.ts)
        self._pending.append(intact_line(figures))
        return figures

    async def flush(self) -> int:
        """Write what is pending; how many points (0 when the sink refused them: they stay for the next flush)."""
        if not self._pending:
            return 0
        lines = list(self._pending)
        try:
            await self.sink.write(lines)
        except LifecycleSinkError as exc:
            self.metrics.inc("rules_fire_intact_errors")
            log.warning("fire intact points not written", error=str(exc), pending=len(lines))
            return 0
        for _ in lines:
            self._pending.popleft()
        self.metrics.inc("rules_fire_intact_points", len(lines))
        return len(lines)

    async def run_flusher(self, interval_s: float = 1.0) -> NoReturn:
        """Flush every `interval_s` of the clock's time until cancelled (what the sink refused goes next time)."""
        next_at = self.clock.monotonic() + interval_s
        while True:
            await self.clock.sleep_until(next_at)
            next_at = self.clock.monotonic() + interval_s
            await self.flush()

    async def consume(self, client_factory: Callable[[], aiomqtt.Client], backoff_s: float = 1.0) -> NoReturn:
        """Take panel readings from the backbone until cancelled; reconnect after a lost connection."""
        while True:
            try:
                async with client_factory() as client:
                    await client.subscribe(PANEL_STATE_TOPICS, qos=0)
                    self.subscribed.set()
                    async for message in client.messages:
                        await self._message(message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("fire intact: mqtt connection lost", error=str(exc))
            finally:
                self.subscribed.clear()
            await asyncio.sleep(backoff_s)

    async def _message(self, payload: object) -> None:
        if not isinstance(payload, bytes | str):
            return
        try:
            message = decode_message(payload)
        except ValueError:
            self.metrics.inc("rules_fire_intact_rejected")
            return
        if isinstance(message, Reading):
            await self.take(message)
