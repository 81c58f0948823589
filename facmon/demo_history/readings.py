"""The history's readings, as line protocol: what the historian would have written, at a coarser interval.

- Elevators: every reading the collector made at a change (facmon.demo_history.elevators), a full reading of every
  car every `full_reading_every`, and in between a reading of the values availability reads (service mode and fault
  codes): every minute of each car's scheduled hours (main: all day; peak: the peak windows), since
  facmon.reports.availability holds a reading for at most 60 s, and every `heard_every` outside them, so that every
  car is heard in every 5-minute slot of the KPIs' coverage (docs/kpis.md). A car in normal service moves between
  full readings (floor, door, load vary; the counters rise); one held by a fault, an entrapment or inspection stands
  as the change left it.
- Fire panels: the collector's readings at each change, and the panel's reading repeated every `heard_every` in
  between (in full every `panel_reading_every`, else its point counts and intact rate); the site's `fire_intact`
  figure after each change and every `intact_every` (rules.fire_intact: a figure holds for at most five minutes in
  the period's figure).
- Cameras and barriers: a heartbeat every `heard_every`, none while the plan has the device silent
  (facmon.demo_history.heartbeats).

Full readings carry some twenty fields, the others two to five: InfluxDB takes the short ones about four times as
fast, which is what keeps a year of a reading in every 5 minutes of every device cheap to load. Times are whole
nanoseconds here, as on the wire; a year is a few million of them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from collectors.registry import modbus_driver
from facmon.demo_history.heartbeats import heartbeat_streams
from facmon.demo_history.influx import EPOCH, EncoderMismatch, SeriesEncoder, fields_text, nanoseconds, value_text
from facmon.demo_history.model import CarHistory, HistoryPlan, PanelHistory
from facmon.demo_history.profile import HistoryProfile, Period, stream
from facmon.estate.site import Site
from facmon.historian.lines import reading_line
from facmon.kernel.model import DeviceKind, DeviceRef, Reading, Value
from facmon.reports.availability import scheduled_intervals
from rules.fire_intact import SiteIntact, intact_line

# Fields of an elevator reading that availability reads; the readings between a car's full ones carry these.
AVAILABILITY_FIELDS = ("service_mode", "fault_code", "e_code", "fault_bits")
# Fields of a fire panel's reading that the KPIs read (coverage: points_total; the panels' intact figures); the
# readings between its full ones carry these.
PANEL_FIGURES = ("intact_pct", "points_disabled", "points_fault", "points_intact", "points_total")
RATED_SPEED = 1.75
DOORS = ("closed", "closed", "closed", "open", "opening", "closing")


# Lines of one measurement (named) or of several (None), for the writer to count the points of each.
Stream = tuple[str | None, Iterator[str]]


def reading_streams(
    plan: HistoryPlan, site: Site, period: Period, profile: HistoryProfile, seed: int
) -> Iterator[Stream]:
    for car in plan.cars:
        yield DeviceKind.ELEVATOR.value, car_lines(car, site, period, profile, seed)
    yield None, panel_lines(plan.panels, site, period, profile)
    yield from heartbeat_streams(site, period, profile, seed, plan.silences)


def _ns(span: timedelta) -> int:
    return span // timedelta(microseconds=1) * 1000


def _grid(start: datetime, until: datetime, every: timedelta) -> range:
    """Whole multiples of `every` since the epoch in [start, until), in nanoseconds."""
    return _grid_ns(nanoseconds(start), nanoseconds(until), _ns(every))


def _grid_ns(start: int, until: int, step: int) -> range:
    return range(-(-start // step) * step, until, step)


def _time(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def _reference(ref: DeviceRef, point: str | None = None) -> SeriesEncoder:
    def line(values: Mapping[str, Value], at: datetime) -> str:
        made = reading_line(Reading(ref=ref, ts=at, values=dict(values), point=point))
        assert made is not None
        return made

    return SeriesEncoder(line)


class _Car:
    def __init__(self, car: CarHistory, site: Site, seed: int) -> None:
        self.car = car
        driver = modbus_driver(car.model)
        # Scaled values are what the collector decodes from the registers: raw * scale.
        self.scale = {p.name: p.scale for p in driver.points if p.scale != 1.0}
        self.rng = stream(seed, "movement", car.device)
        self.times = [nanoseconds(state.at) for state in car.states]
        self.full = _reference(site.ref(car.device))
        self.slim = _reference(site.ref(car.device))
        self.floors = int(car.states[0].values.get("floors_served", 18))
        self._halted: dict[int, str] = {}
        self._templates: dict[int, str] = {}
        self._covered: dict[int, str] = {}

    def segments(self, start: datetime, until: datetime) -> Iterator[tuple[int, int, int]]:
        """(state index, from, to) in nanoseconds: the parts of [start, until) each state holds."""
        lo, hi = nanoseconds(start), nanoseconds(until)
        index = max(0, bisect_right(self.times, lo) - 1)
        while index < len(self.times) and self.times[index] < hi:
            ends = self.times[index + 1] if index + 1 < len(self.times) else hi
            if max(lo, self.times[index]) < min(hi, ends):
                yield index, max(lo, self.times[index]), min(hi, ends)
            index += 1

    def exact(self, name: str, value: float) -> float:
        scale = self.scale.get(name)
        return value if scale is None else round(value / scale) * scale

    def moving(self, ns: int) -> dict[str, Value]:
        """What changes while a car runs in normal service: where it is, its door and load, its counters."""
        rng = self.rng
        counters = self.car.counters.at(_time(ns))
        moving = rng.random() < 0.35
        passenger = rng.random() < 0.4
        return {
            **counters,
            "run_hours": self.exact("run_hours", float(counters["run_hours"])),
            "moving": moving,
            "direction": rng.choice(("up", "down")) if moving else "none",
            "speed": self.exact("speed", RATED_SPEED if moving else 0.0),
            "door": "closed" if moving else rng.choice(DOORS),
            "door_zone": not moving,
            "floor": rng.randint(1, self.floors),
            "passenger": passenger,
            "load_pct": rng.randint(6, 90) if passenger else 0,
        }

    def running_line(self, index: int, ns: int) -> str:
        """A reading of a car in normal service. The state's other fields are the same in all of them, so they are
        formatted once, into a template checked against the project's encoder on its first line."""
        moving = self.moving(ns)
        template = self._templates.get(index)
        if template is None:
            line = self.full.line({**self.car.states[index].values, **moving}, _time(ns))
            template = self._templates[index] = _template(self.full.key, self.car.states[index].values)
            if template % _variables(moving, ns) != line:
                raise EncoderMismatch(f"the template for {self.car.device} does not give {line!r}")
        return template % _variables(moving, ns)

    def halted(self, index: int) -> str:
        """The fields of a car standing as the change `index` left it (checked once per change)."""
        if index not in self._halted:
            state = self.car.states[index]
            self._halted[index] = self.full.fields(state.values, state.at)
        return self._halted[index]

    def covered(self, index: int) -> str:
        if index not in self._covered:
            state = self.car.states[index]
            values = {k: state.values[k] for k in AVAILABILITY_FIELDS if k in state.values}
            self._covered[index] = self.slim.fields(values, state.at)
        return self._covered[index]


# The fields of a running car that change from one reading to the next.
MOVING = (
    "direction",
    "door",
    "door_cycles",
    "door_zone",
    "floor",
    "load_pct",
    "moving",
    "passenger",
    "run_hours",
    "speed",
    "trips",
)


def _template(key: str, values: Mapping[str, Value]) -> str:
    """The line of a running car with %s for each moving field and %d for the time; the rest formatted now."""
    names = sorted({*values, *MOVING})
    parts = [f"{name}=%s" if name in MOVING else fields_text({name: values[name]}).replace("%", "%%") for name in names]
    return f"{key.replace('%', '%%')} {','.join(parts)} %d"


def _variables(moving: Mapping[str, Value], ns: int) -> tuple[object, ...]:
    return (*(value_text(moving[name]) for name in MOVING), ns)


def car_lines(car: CarHistory, site: Site, period: Period, profile: HistoryProfile, seed: int) -> Iterator[str]:
    ours = _Car(car, site, seed)
    for reading in car.readings:
        yield ours.full.line(reading.values, reading.ts)
    polled = set(ours.times)
    full = _ns(profile.full_reading_every)
    for index, lo, hi in ours.segments(period.start, period.until):
        if car.states[index].running:
            for ns in _grid_ns(lo, hi, full):
                if ns not in polled:
                    yield ours.running_line(index, ns)
        else:
            text = ours.halted(index)
            yield from (f"{ours.full.key} {text} {ns}" for ns in _grid_ns(lo, hi, full) if ns not in polled)
    for start, until, every in _slim_spans(car.role or "", period, profile):
        step = _ns(every)
        for index, lo, hi in ours.segments(start, until):
            text = ours.covered(index)
            yield from (
                f"{ours.slim.key} {text} {ns}" for ns in _grid_ns(lo, hi, step) if ns % full and ns not in polled
            )


def _slim_spans(role: str, period: Period, profile: HistoryProfile) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """The period cut into a car's scheduled hours, read every `covered_reading_every`, and the rest, read every
    `heard_every`: (from, to, interval), in time order."""
    at = period.start
    for start, until in scheduled_intervals(role, period.start, period.until, period.tz):
        if at < start:
            yield at, start, profile.heard_every
        yield start, until, profile.covered_reading_every
        at = until
    if at < period.until:
        yield at, period.until, profile.heard_every


def panel_lines(panels: list[PanelHistory], site: Site, period: Period, profile: HistoryProfile) -> Iterator[str]:
    """Each panel's readings and heartbeats, then the site's intact figure after each reading and every
    `intact_every`."""
    changes: list[Reading] = []
    for panel in panels:
        ref = site.ref(panel.device)
        encoder = _reference(ref)
        points: dict[str, SeriesEncoder] = {}
        own = [r for r in panel.readings if r.point is None]
        for reading in panel.readings:
            if reading.point is None:
                yield encoder.line(reading.values, reading.ts)
            else:
                yield points.setdefault(reading.point, _reference(ref, reading.point)).line(reading.values, reading.ts)
        changes += own
        times = [nanoseconds(r.ts) for r in own]
        texts, slim = _Repeated(ref), _Repeated(ref, PANEL_FIGURES)
        full = _ns(profile.panel_reading_every)
        # Every `heard_every`, in full every `panel_reading_every` (a multiple of it: HistoryProfile checks).
        for ns in _grid(period.start, period.until, profile.heard_every):
            index = bisect_right(times, ns) - 1
            if index >= 0 and times[index] != ns:
                yield (texts if ns % full == 0 else slim).line(index, own[index], ns)
    yield from _intact(changes, len(panels), list(_grid(period.start, period.until, profile.intact_every)))


class _Repeated:
    """A device's reading repeated at later times: its fields text (only `names` when given) made once per reading
    and checked against the project's encoder."""

    def __init__(self, ref: DeviceRef, names: tuple[str, ...] | None = None) -> None:
        self.encoder = _reference(ref)
        self.names = names
        self._texts: dict[int, str] = {}

    def line(self, index: int, reading: Reading, ns: int) -> str:
        text = self._texts.get(index)
        if text is None:
            values = reading.values
            if self.names is not None:
                values = {k: values[k] for k in self.names if k in values}
            text = self._texts[index] = self.encoder.fields(values, reading.ts)
        return f"{self.encoder.key} {text} {ns}"


def _intact(changes: list[Reading], panels: int, beats: list[int]) -> Iterator[str]:
    """The site's figure after every panel reading, as the rules worker counts it (rules.fire_intact; no point of
    this history is ever absent, so every point a panel has is commissioned and present), repeated at `beats`; one
    point per time (panels read at the same moment make one figure, the last)."""
    latest: dict[str, tuple[int, int]] = {}
    at_time: dict[int, str] = {}
    key, text = "", ""
    beat = 0
    for reading in sorted(changes, key=lambda r: r.ts):
        ns = nanoseconds(reading.ts)
        while beat < len(beats) and beats[beat] < ns:
            if text:
                at_time[beats[beat]] = text
            beat += 1
        present, intact = reading.values.get("points_total"), reading.values.get("points_intact")
        if type(present) is not int or type(intact) is not int:
            continue
        latest[reading.ref.device] = (present, intact)
        commissioned = sum(p for p, _ in latest.values())
        figures = SiteIntact(
            site=reading.ref.site,
            ts=reading.ts,
            points_commissioned=commissioned,
            points_present=commissioned,
            points_intact=sum(i for _, i in latest.values()),
            panels=panels,
            panels_answering=len(latest),
        )
        encoder = SeriesEncoder(_intact_reference(figures))
        text = encoder.fields(_intact_fields(figures), figures.ts)
        key = encoder.key
        at_time[ns] = text
    for ns in beats[beat:]:
        if text:
            at_time[ns] = text
    yield from (f"{key} {fields} {ns}" for ns, fields in sorted(at_time.items()))


def _intact_reference(figures: SiteIntact) -> Callable[[Mapping[str, Value], datetime], str]:
    def line(values: Mapping[str, Value], at: datetime) -> str:
        return intact_line(replace(figures, ts=at))

    return line


def _intact_fields(figures: SiteIntact) -> dict[str, Value]:
    fields: dict[str, Value] = {
        "points_commissioned": figures.points_commissioned,
        "points_present": figures.points_present,
        "points_intact": figures.points_intact,
        "panels": figures.panels,
        "panels_answering": figures.panels_answering,
    }
    if figures.intact_pct is not None:
        fields["intact_pct"] = figures.intact_pct
    return fields
