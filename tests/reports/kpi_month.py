"""October 2026 at Birch Court, for the KPIs judged by each work order's own clocks, with cancellations and coverage.

Its contract says 30 minutes for an elevator fault (its rules use a copy of `elevator.fault` with a 30-minute
on-site clock); entrapments keep the library's profile (20 minutes by contract, 30 by law). Work orders are made
as the rules worker and the API make them (`rules.store.apply_event`, `facmon.workorders.workflow.transition`).
Times in UTC; the site's wall clock is UTC+8, so October runs from 2026-09-30 16:00 to 2026-10-31 16:00.

| name | what happened (minutes after detection) | contract | statutory | repair |
|---|---|---|---|---|
| on-time | e1 fault 2, 2 Oct 02:00: on site +28, resolved +60, followed up | met (30) | - | met (24 h) |
| at-deadline | e1 fault 3, 3 Oct 02:00: on site +30 exactly, resolved +120 | met (30) | - | met (24 h) |
| late | e2 fault 5, 4 Oct 02:00: on site +35, resolved 24 h 10 min after | missed (30) | - | missed (24 h) |
| entrapment | e1 entrapment, 5 Oct 02:00: on site +25, resolved +90 | missed (20) | met (30) | met (4 h) |
| false-alarm | e2 car alarm button, 6 Oct 02:00: cancelled +2 ("duplicate report") | out | out | out |
| cancelled-late | e1 fault 2, 7 Oct 02:00: nobody came, cancelled +45 | missed (30) | - | out |
| gate | g1 limit_timeout, 10 Oct 02:00: on site +60, resolved +180 | - | - | met (24 h) |
| pending | e1 fault 1, 31 Oct 15:50 (23:50 site time): nobody yet at NOW | pending | - | - |

Readings in InfluxDB: one every 5 minutes from each device, one minute into each 5-minute slot, except e2, silent
for the month's last 4 days: e2 covers 27/31 of the month, so the elevators cover (1 + 27/31) / 2 = 93.55 % (below
95 %: "insufficient data") and the three devices (2 + 27/31) / 3 = 95.70 %. The cars are polled every 100 s, so
a reading holds for 300 s (facmon.reports.availability): availability knows all of the scheduled time but the
month's first minute and e2's last 4 days of peak hours (16 h of 868 h).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from facmon.estate.site import Site
from facmon.historian.lines import reading_line
from facmon.kernel.model import Event, EventType, Reading, Value
from facmon.workorders.sla import ClockDef, load_sla_profiles
from facmon.workorders.tables import FollowUpOutcome, WorkOrderStatus
from facmon.workorders.workflow import add_follow_up, transition
from rules.engine import Rule, evaluate, load_rules
from rules.store import apply_event

SITE = Site.model_validate(
    {
        "site": {"id": "birch", "name": "Birch Court", "timezone": "Asia/Shanghai"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "role": "main", "poll_interval_s": 100,
                     "address": {"host": "127.0.0.1", "port": 1502}},
                    {"id": "e2", "kind": "elevator", "model": "elev-gb-a", "role": "peak", "poll_interval_s": 100,
                     "address": {"host": "127.0.0.1", "port": 1503}},
                    {"id": "g1", "kind": "gate", "model": "barrier-a"},
                ],
            }
        ],
    }
)  # fmt: skip
MONTH = "2026-10"
START = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
END = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
# Five minutes after the month: the work order of 23:50 is still inside its 30 minutes.
NOW = datetime(2026, 10, 31, 16, 5, tzinfo=UTC)
E2_SILENT_FROM = END - timedelta(days=4)
ELEVATOR_COVERAGE = round((1 + 27 / 31) / 2, 4)
DEVICE_COVERAGE = round((2 + 27 / 31) / 3, 4)
AVAILABILITY_COVERAGE = round((852 * 3600 - 60) / (868 * 3600), 4)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _rules() -> tuple[Rule, ...]:
    """The library's rules, with the site's contract: 30 minutes to be on site for an elevator fault."""
    profiles = load_sla_profiles()
    fault = profiles["elevator.fault"]
    clocks = tuple(
        ClockDef(name=c.name, milestone=c.milestone, within=timedelta(minutes=30)) if c.name == "on_site" else c
        for c in fault.clocks
    )
    profiles["elevator.fault"] = fault.model_copy(update={"clocks": clocks})
    return load_rules(sla_profiles=profiles)


class Month:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rules = _rules()
        self.ids: dict[str, int] = {}
        self.detected: dict[str, datetime] = {}

    def fault(self, name: str, device: str, code: str, detected: datetime) -> None:
        event = Event(ref=SITE.ref(device), ts=detected, type=EventType.FAULT_RAISED, code=code)
        (self.ids[name],) = apply_event(self.engine, event, evaluate(self.rules, event, detected), detected).opened

    def move(self, name: str, to: WorkOrderStatus, minutes: float, *, note: str | None = None) -> None:
        detected = self.detected[name]
        actor = "Wang Fang (engineer)" if to is WorkOrderStatus.CANCELLED else "Li Ming"
        transition(
            self.engine,
            self.ids[name],
            to,
            actor=actor,
            source="api",
            at=detected + timedelta(minutes=minutes),
            note=note,
        )

    def life(self, name: str, device: str, code: str, detected: datetime, **steps: float) -> None:
        self.detected[name] = detected
        self.fault(name, device, code, detected)
        for step, minutes in steps.items():
            self.move(name, WorkOrderStatus(step), minutes)


def seed(engine: Engine) -> dict[str, int]:
    """The month above; the work order ids by name."""
    s = Month(engine)
    s.life("on-time", "e1", "2", at("2026-10-02 02:00"), on_site=28, resolved=60)
    s.life("at-deadline", "e1", "3", at("2026-10-03 02:00"), on_site=30, resolved=120)
    s.life("late", "e2", "5", at("2026-10-04 02:00"), on_site=35, resolved=24 * 60 + 10)
    s.life("entrapment", "e1", "entrapment", at("2026-10-05 02:00"), on_site=25, resolved=90)
    s.life("false-alarm", "e2", "15", at("2026-10-06 02:00"))
    s.move("false-alarm", WorkOrderStatus.CANCELLED, 2, note="duplicate report")
    s.life("cancelled-late", "e1", "2", at("2026-10-07 02:00"))
    s.move("cancelled-late", WorkOrderStatus.CANCELLED, 45, note="fault gone, nobody went")
    s.life("gate", "g1", "limit_timeout", at("2026-10-10 02:00"), on_site=60, resolved=180)
    s.life("pending", "e1", "1", at("2026-10-31 15:50"))
    add_follow_up(
        engine,
        s.ids["on-time"],
        actor="Chen Jing",
        outcome=FollowUpOutcome.SATISFIED,
        note=None,
        visited_at=at("2026-10-03 02:00"),
        now=at("2026-10-03 02:00"),
        source="api",
    )
    return s.ids


def reading_lines() -> list[str]:
    """A reading from every device one minute into each 5-minute slot of the month (e2 silent at the end)."""
    lines = []
    slot = START
    while slot < END:
        ts = slot + timedelta(minutes=1)
        for device in ("e1", "e2", "g1"):
            if device == "e2" and slot >= E2_SILENT_FROM:
                continue
            values: dict[str, Value] = (
                {"cycles": 1} if device == "g1" else {"service_mode": "normal", "fault_code": 0, "moving": False}
            )
            line = reading_line(Reading(ref=SITE.ref(device), ts=ts, values=values))
            assert line is not None
            lines.append(line)
        slot += timedelta(minutes=5)
    return lines


def write_readings(url: str, db: str) -> None:
    lines = reading_lines()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(0, len(lines), 10_000):
            client.post("/write", params={"db": db}, content="\n".join(lines[i : i + 10_000])).raise_for_status()
