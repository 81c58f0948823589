"""Entrapment (困人) seen from the car's state, for controllers that do not flag it themselves.

A pure function of the readings it is fed and the monotonic time it is told: no I/O, no clock of its own, so a
test drives it with a FakeClock and the collector with the real one.

Field practice is to debounce every input: a passenger sensor flickers (smoothed: present continuously for
`passenger_s`), and a car stops briefly all the time. A passenger in a stopped car with the door closed is trapped
after `outside_zone_s` outside the door zone (the door cannot be opened there) or after the longer `in_zone_s`
level at a landing (the door should have opened by then). It ends only when the car is level with its door open,
which is how a rescue ends; a passenger sensor going quiet in a closed car proves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from collectors.modbus.event_specs import EntrapmentSpec
from facmon.kernel.model import Value

Stop = Literal["outside_zone", "in_zone"]


class EntrapmentDetector:
    def __init__(self, spec: EntrapmentSpec) -> None:
        self.spec = spec
        # Last value read of each point it watches: a value refused in one poll does not reset the timers.
        self._known: dict[str, Value] = {}
        self._passenger_since: float | None = None
        self._stop: Stop | None = None
        self._stop_since = 0.0
        self.trapped = False
        self.reason = ""

    def update(self, values: Mapping[str, Value], now_s: float) -> bool:
        """Feed one reading taken at `now_s` (monotonic seconds); whether a passenger is trapped now."""
        for name in (*EntrapmentSpec.POINTS, "service_mode"):
            if name in values:
                self._known[name] = values[name]
        spec, known = self.spec, self._known
        if known.get("passenger") is True:
            if self._passenger_since is None:
                self._passenger_since = now_s
        else:
            self._passenger_since = None
        level_and_open = known.get("door_zone") is True and known.get("door") == spec.door_open
        if self.trapped:
            if level_and_open:
                self.trapped, self.reason = False, ""
                self._stop = None
            return self.trapped
        stop = self._stopped()
        if stop != self._stop:
            self._stop, self._stop_since = stop, now_s
        if stop is None or self._passenger_since is None:
            return False
        stopped_s = now_s - self._stop_since
        limit_s = spec.outside_zone_s if stop == "outside_zone" else spec.in_zone_s
        if now_s - self._passenger_since >= spec.passenger_s and stopped_s >= limit_s:
            where = "outside the door zone" if stop == "outside_zone" else "level at a landing"
            self.trapped = True
            self.reason = f"{spec.message}: stopped {where} with the door closed for {stopped_s:.0f} s"
        return self.trapped

    def _stopped(self) -> Stop | None:
        """How the car is stopped with its door closed, if it is; None while it moves, opens or is in a quiet mode."""
        known = self._known
        if known.get("service_mode") in self.spec.quiet_modes:
            # A technician at work (inspection) stops cars with people in them; the clock starts again afterwards.
            return None
        if known.get("door") != self.spec.door_closed or known.get("moving") is not False:
            return None
        zone = known.get("door_zone")
        if zone is None:
            return None
        return "in_zone" if zone is True else "outside_zone"
