"""The fire equipment intact rate of each site (docs/kpis.md "Fire equipment intact rate"), from its panels' point
tables as commissioned, not from the points a panel happens to report now.

The denominator is every commissioned point of the site's panels: the points the site file lists for a panel and
every point a panel has ever reported (the table `fire_points`, rules.fire_point_store), less those a person has
decommissioned. The numerator is those of them that are present and neither in fault nor disabled, as far as is
known now. Not intact therefore: a point reported absent (removed from the panel's table, or gone from its loop), a
listed point the panel never reports, a point whose panel does not answer (no panel reading for its `silent_after`,
or none at all since the worker started), and a point not heard of for its panel's `point_hold` while the panel
answers (the gateway reports every point it knows at least once a minute, so that is a point its gateway has
forgotten: one absent when the gateway started).

`FirePointBook` holds what the readings said, pure apart from that memory: a panel reading (`Reading.point` None)
says the panel answers; a point reading (`Reading.point = "1-023"`) gives the point's state (`state`, `fault`,
`disabled`). It knows which of that must be kept in the database (`take_pending`) and answers a site's figures at
any instant (`figure`). rules.fire_intact_writer feeds it, keeps the table and writes the figures to InfluxDB as
measurement `fire_intact` (tag `site`; fields `intact_pct` = points_intact / points_commissioned x 100,
`points_commissioned`, `points_present`, `points_intact`, `panels`, `panels_answering`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from facmon.kernel.model import DeviceKind, Reading

MEASUREMENT = "fire_intact"
# A panel reading holds this long at least (longer: three poll intervals, or the panel's comm grace): a panel not
# heard of for that long does not answer, and none of its points counts as intact.
MIN_SILENT_AFTER = timedelta(seconds=60)
# A point's reading holds for the panel's silent_after and this much more: the gateway repeats every point it knows
# once a minute (collectors.modbus.fire_interpreter), so a point missing from a snapshot and a half is not known.
POINT_SNAPSHOTS = timedelta(seconds=90)
ABSENT = "absent"

PanelKey = tuple[str, str]  # site, device
PointKey = tuple[str, str, str]  # site, device, point


@dataclass(frozen=True)
class PanelSpec:
    """A fire panel of a site file, as the intact rate needs it: how long its reading and its points' readings hold."""

    site: str
    building: str
    device: str
    model: str
    silent_after: timedelta = MIN_SILENT_AFTER

    @property
    def point_hold(self) -> timedelta:
        return self.silent_after + POINT_SNAPSHOTS


def silent_after(poll_interval_s: float, comm_grace_s: float) -> timedelta:
    """How long a panel's reading holds: at least a minute, three poll intervals, and its comm grace (a panel is not
    taken as silent here before its gateway would report it lost)."""
    return max(MIN_SILENT_AFTER, timedelta(seconds=max(3 * poll_interval_s, comm_grace_s)))


@dataclass(frozen=True)
class PointReport:
    """What one point reading says: the point's state word, whether that is intact, and when."""

    key: PointKey
    state: str
    intact: bool
    at: datetime


def point_report(reading: Reading, at: datetime) -> PointReport | None:
    """The report of a fire panel's point reading (`at`: its time as taken), None when it is not one or says nothing
    usable (no state word)."""
    state = reading.values.get("state")
    if reading.ref.kind != DeviceKind.FIRE_PANEL or reading.point is None or not isinstance(state, str) or not state:
        return None
    fault, disabled = reading.values.get("fault") is True, reading.values.get("disabled") is True
    intact = state != ABSENT and not fault and not disabled
    return PointReport((reading.ref.site, reading.ref.device, reading.point), state[:32], intact, at)


@dataclass
class PointLive:
    state: str | None = None  # None: never reported
    intact: bool = False
    since: datetime | None = None
    heard_at: datetime | None = None
    commissioned: bool = True


@dataclass(frozen=True)
class StoredPoint:
    """A row of the point table as the book loads it."""

    key: PointKey
    commissioned: bool
    state: str | None = None
    intact: bool | None = None
    since: datetime | None = None
    heard_at: datetime | None = None


@dataclass
class Pending:
    """What the database does not have yet: points first heard of, state changes, and the latest reading times."""

    new: dict[PointKey, datetime] = field(default_factory=dict)
    states: dict[PointKey, PointReport] = field(default_factory=dict)
    heard: dict[PointKey, datetime] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.new or self.states or self.heard)

    def merge(self, older: Pending) -> None:
        """Put back what could not be written, under what came since (which is newer)."""
        for key, at in older.new.items():
            self.new.setdefault(key, at)
        for key, report in older.states.items():
            self.states.setdefault(key, report)
        for key, at in older.heard.items():
            self.heard.setdefault(key, at)


@dataclass(frozen=True)
class SiteIntact:
    site: str
    ts: datetime
    points_commissioned: int
    points_present: int
    points_intact: int
    panels: int
    panels_answering: int

    @property
    def intact_pct(self) -> float | None:
        if self.points_commissioned == 0:
            return None
        return round(100.0 * self.points_intact / self.points_commissioned, 2)

    def counts(self) -> tuple[int, int, int, int, int]:
        return (self.points_commissioned, self.points_present, self.points_intact, self.panels, self.panels_answering)


class FirePointBook:
    """The commissioned points of the panels, what their readings said, and each site's figures from that.

    `panels`: the fire panels of the site files; a reading of another panel is not taken. None: every panel heard of
    (a worker without site files). A site's figure only changes with a reading that changes something, a change of
    the table, or the time when a panel or point lapses; `due` says whether one of those happened since the last
    `figure`, so that a worker of many sites does not count every point every second."""

    def __init__(self, panels: Iterable[PanelSpec] | None = None) -> None:
        self._open = panels is None
        self._panels: dict[PanelKey, PanelSpec] = {}
        self._by_site: dict[str, list[PanelSpec]] = {}
        self._points: dict[PanelKey, dict[str, PointLive]] = {}
        self._heard: dict[PanelKey, datetime] = {}
        # The present points each panel's latest reading counts: until as many are known, its point table is not.
        self._present: dict[PanelKey, int] = {}
        # Sites whose figure may have changed since it was last made, and when a lapse changes it next.
        self._dirty: set[str] = set()
        self._lapses_at: dict[str, datetime | None] = {}
        self.pending = Pending()
        for panel in panels or ():
            self._add(panel)

    def _add(self, panel: PanelSpec) -> None:
        self._panels[(panel.site, panel.device)] = panel
        self._by_site.setdefault(panel.site, []).append(panel)
        self._points.setdefault((panel.site, panel.device), {})
        self._dirty.add(panel.site)

    def panel(self, site: str, device: str) -> PanelSpec | None:
        return self._panels.get((site, device))

    def takes(self, site: str, device: str) -> bool:
        return self._open or (site, device) in self._panels

    def sites(self) -> list[str]:
        return sorted(self._by_site)

    def heard_panel(
        self, site: str, building: str, device: str, model: str, at: datetime, present: int | None = None
    ) -> bool:
        """A panel reading at `at` (`present`: the points it says are present, `points_total`); True when the panel is
        heard of for the first time since start."""
        key = (site, device)
        if present is not None:
            self._present[key] = present
        panel = self._panels.get(key)
        if panel is None:
            if not self._open:
                return False
            panel = PanelSpec(site, building, device, model)
            self._add(panel)
        last = self._heard.get(key)
        if last is None or at - last > panel.silent_after:
            self._dirty.add(site)  # heard of again after a silence (or for the first time)
        if last is None or last < at:
            self._heard[key] = at
        return last is None

    def take_point(self, report: PointReport) -> bool:
        """A point reading; False when it is older than what the point last said (nothing changes then)."""
        site, device, point = report.key
        if not self.takes(site, device):
            return False
        if (site, device) not in self._panels:
            self._add(PanelSpec(site, "", device, ""))
        hold = self._panels[(site, device)].point_hold
        points = self._points[(site, device)]
        live = points.get(point)
        if live is None:
            live = points[point] = PointLive()
            self.pending.new[report.key] = report.at
        elif live.heard_at is not None and report.at < live.heard_at:
            return False
        if live.heard_at is None or report.at - live.heard_at > hold:
            self._dirty.add(site)  # new, or current again after it lapsed
        if (live.state, live.intact) != (report.state, report.intact) or live.since is None:
            live.state, live.intact, live.since = report.state, report.intact, report.at
            self.pending.states[report.key] = report
            self._dirty.add(site)
        live.heard_at = report.at
        self.pending.heard[report.key] = report.at
        return True

    def take_pending(self) -> Pending:
        pending, self.pending = self.pending, Pending()
        return pending

    def load(self, rows: Iterable[StoredPoint], *, full: bool) -> None:
        """The point table as stored: which points exist and which are commissioned; with `full`, also what the
        panels last said of them (at start, under what readings taught since if they are newer). Points heard of but
        not stored yet stay."""
        for row in rows:
            site, device, point = row.key
            if not self.takes(site, device):
                continue
            if (site, device) not in self._panels:
                self._add(PanelSpec(site, "", device, ""))
            points = self._points[(site, device)]
            live = points.get(point)
            if live is None:
                live = points[point] = PointLive(commissioned=row.commissioned)
                self._dirty.add(site)
                stored = True
            else:
                stored = full and (live.heard_at is None or (row.heard_at is not None and row.heard_at > live.heard_at))
            if live.commissioned != row.commissioned:
                live.commissioned = row.commissioned
                self._dirty.add(site)
            if stored and row.state is not None:
                live.state, live.intact, live.since = row.state, bool(row.intact), row.since
                live.heard_at = row.heard_at
                self._dirty.add(site)

    def ready(self, site: str, started: datetime, now: datetime) -> bool:
        """Whether a figure of `site` can be made: every panel of it heard of since `started` with as many present
        points known as its reading counts, or long enough since then that a panel not heard of does not answer and a
        point not heard of is not reported (a first start, with an empty table, hears the points within a minute of
        the panel: a figure before then would count only the points heard so far)."""
        return all(self._panel_ready(p, started, now) for p in self._by_site.get(site, ()))

    def _panel_ready(self, panel: PanelSpec, started: datetime, now: datetime) -> bool:
        key = (panel.site, panel.device)
        if key not in self._heard:
            return now - started >= panel.silent_after
        if now - started >= panel.point_hold:
            return True
        known = sum(
            1
            for live in self._points[key].values()
            if live.heard_at is not None and now - live.heard_at <= panel.point_hold and live.state != ABSENT
        )
        return known >= self._present.get(key, 0)

    def due(self, site: str, now: datetime) -> bool:
        """Whether the site's figure may differ from the one last made."""
        lapses = self._lapses_at.get(site)
        return site in self._dirty or (lapses is not None and now > lapses)

    def figure(self, site: str, now: datetime) -> SiteIntact:
        commissioned = present = intact = answering = 0
        lapses: list[datetime] = []
        panels = self._by_site.get(site, [])
        for panel in panels:
            heard = self._heard.get((panel.site, panel.device))
            answers = heard is not None and now - heard <= panel.silent_after
            if answers:
                assert heard is not None
                answering += 1
                lapses.append(heard + panel.silent_after)
            for live in self._points[(panel.site, panel.device)].values():
                if not live.commissioned:
                    continue
                commissioned += 1
                current = live.heard_at is not None and now - live.heard_at <= panel.point_hold
                if answers and current and live.state != ABSENT:
                    assert live.heard_at is not None
                    present += 1
                    intact += live.intact
                    lapses.append(live.heard_at + panel.point_hold)
        self._dirty.discard(site)
        self._lapses_at[site] = min(lapses) if lapses else None
        return SiteIntact(site, now, commissioned, present, intact, len(panels), answering)

    def heard(self, site: str, device: str) -> datetime | None:
        """The time of the panel's latest reading since start."""
        return self._heard.get((site, device))

    def states(self, site: str, device: str) -> Mapping[str, PointLive]:
        return self._points.get((site, device), {})


def intact_line(figures: SiteIntact) -> str:
    fields: dict[str, int | float] = {
        "points_commissioned": figures.points_commissioned,
        "points_present": figures.points_present,
        "points_intact": figures.points_intact,
        "panels": figures.panels,
        "panels_answering": figures.panels_answering,
    }
    if figures.intact_pct is not None:
        fields["intact_pct"] = figures.intact_pct
    point = Point.from_dict(
        {"measurement": MEASUREMENT, "tags": {"site": figures.site}, "fields": fields, "time": figures.ts}
    )
    line: str = point.to_line_protocol(WritePrecision.NS)
    return line
