"""Cameras' and barriers' heartbeats in the history: one every `heard_every`, as their collector hears them, except
while the plan has a device silent (a camera gone quiet, facmon.demo_history.security): its last heartbeat then is
at the moment it was last heard and the next when it is heard again, with none between, so the silence the
watchdog reported is a silence in InfluxDB too.

A year is some 100,000 heartbeats a device, two million for the demo site, so they are formatted by a fast path
of their own (about half a microsecond each): the series key made once, values in tenths each formatted once as
line protocol writes the float (facmon.demo_history.influx.value_text), and each device's first heartbeat made by
the project's encoder too and required to be the same (as facmon.demo_history.influx.SeriesEncoder checks its first
point). The values come from one seeded stream per device.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import chain
from zoneinfo import ZoneInfo

from facmon.demo_history.influx import EPOCH, EncoderMismatch, nanoseconds, series_key, value_text
from facmon.demo_history.profile import HistoryProfile, Period, stream
from facmon.estate.site import Site
from facmon.historian.lines import reading_line
from facmon.kernel.model import DeviceKind, Reading, Value

# Local time is looked up once a quarter hour (time zones' offsets are whole quarter hours).
QUARTER_NS = 900 * 10**9
# In six hours a camera's recordings fill up to 0.3 % more of its disk and a barrier's arm makes some 65 cycles;
# each heartbeat draws its share.
STORAGE_RISE_PER_6H = 0.3
GATE_CYCLES_PER_6H = 65.0
SIX_HOURS = timedelta(hours=6)
# The project's encoder of one device's readings (facmon.historian.lines).
Reference = Callable[[Mapping[str, Value], datetime], str]


def beat_times(start: int, until: int, step: int, silences: Iterable[tuple[int, int]]) -> Iterator[int]:
    """Whole multiples of `step` in [start, until) and, for each silence (last heard, heard again), its two ends
    instead of the multiples between them; in time order, nanoseconds."""
    parts: list[Iterable[int]] = []
    at = start
    for lo, hi in sorted(silences):
        if lo < at or hi >= until:
            continue
        parts += [_grid(at, lo, step), (lo,), () if hi % step == 0 else (hi,)]
        at = hi
    parts.append(_grid(at, until, step))
    return chain.from_iterable(parts)


def _grid(start: int, until: int, step: int) -> range:
    return range(-(-start // step) * step, until, step)


def heartbeat_streams(
    site: Site,
    period: Period,
    profile: HistoryProfile,
    seed: int,
    silences: Mapping[str, Sequence[tuple[datetime, datetime]]],
) -> Iterator[tuple[str, Iterator[str]]]:
    """Cameras' (recording, storage) and barriers' (arm cycles, cabinet temperature) heartbeats: (measurement, the
    lines of one device)."""
    step = profile.heard_every // timedelta(microseconds=1) * 1000
    start, until = nanoseconds(period.start), nanoseconds(period.until)
    share = profile.heard_every / SIX_HOURS
    for _, device in site.devices():
        if device.kind not in (DeviceKind.CAMERA, DeviceKind.GATE):
            continue
        rng = stream(seed, "heartbeat", device.id)
        reference = _reference(site, device.id)
        silent = [(nanoseconds(a), nanoseconds(b)) for a, b in silences.get(device.id, ())]
        times = beat_times(start, until, step, silent)
        if device.kind == DeviceKind.CAMERA:
            yield device.kind.value, _camera(reference, rng, share, times)
        else:
            yield device.kind.value, _gate(reference, rng, share, times, period.tz)


def _reference(site: Site, device: str) -> Reference:
    ref = site.ref(device)

    def line(values: Mapping[str, Value], at: datetime) -> str:
        made = reading_line(Reading(ref=ref, ts=at, values=dict(values)))
        assert made is not None
        return made

    return line


def _check(reference: Reference, fields: Mapping[str, Value], ns: int, line: str) -> None:
    """`line`, made by a device's fast path, must be what the project's encoder makes of `fields` at `ns`."""
    expected = reference(fields, EPOCH + timedelta(microseconds=ns // 1000))
    if line != expected:
        raise EncoderMismatch(f"{line!r} != {expected!r}")


class _Tenths(dict[int, str]):
    """A value in tenths as line protocol writes the float (tenths / 10), each formatted once."""

    def __missing__(self, tenths: int) -> str:
        text = self[tenths] = value_text(tenths / 10) or ""
        return text


def _camera(reference: Reference, rng: random.Random, share: float, times: Iterable[int]) -> Iterator[str]:
    """Recordings fill the disk until the oldest are overwritten: a slow saw-tooth, in tenths of a per cent."""
    storage = rng.uniform(35.0, 60.0)
    rise = STORAGE_RISE_PER_6H * share
    texts = _Tenths()
    prefix = f"{series_key(reference({'recording': True}, EPOCH))} recording=true,storage_used_pct="
    first = True
    for ns in times:
        storage = storage + rng.random() * rise if storage < 92.0 else rng.uniform(55.0, 60.0)
        used = int(storage * 10 + 0.5)
        line = f"{prefix}{texts[used]} {ns}"
        if first:
            _check(reference, {"recording": True, "storage_used_pct": used / 10}, ns, line)
            first = False
        yield line


def _gate(reference: Reference, rng: random.Random, share: float, times: Iterable[int], tz: ZoneInfo) -> Iterator[str]:
    """The arm's cycle counter rises; the cabinet is warmer by day (06:00-18:59 site time), in tenths of a degree."""
    cycles = float(rng.randint(20_000, 90_000))
    rise = 2 * GATE_CYCLES_PER_6H * share
    texts = _Tenths()
    daytime: dict[int, float] = {}
    key = series_key(reference({"cycles": 0}, EPOCH))
    first = True
    for ns in times:
        cycles += rng.random() * rise
        quarter = ns // QUARTER_NS
        base = daytime.get(quarter)
        if base is None:
            local = (EPOCH + timedelta(minutes=15 * quarter)).astimezone(tz)
            base = daytime[quarter] = 260.0 if 6 <= local.hour <= 18 else 180.0
        temperature = int(base + rng.random() * 10)
        count = int(cycles)
        line = f"{key} cycles={count}i,temperature_c={texts[temperature]} {ns}"
        if first:
            _check(reference, {"cycles": count, "temperature_c": temperature / 10}, ns, line)
            first = False
        yield line
