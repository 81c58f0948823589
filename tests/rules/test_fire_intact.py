"""The site's fire intact rate over its commissioned points: the pure book, the writer over a real SQLite point table
on a fake clock, figures in a real influxd read back by the KPI code, and readings from a real Mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Reading, Value
from facmon.kernel.topics import state_topic
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_period import period_intact
from facmon.workorders.lifecycle import InfluxLifecycleSink
from rules import fire_point_store as store
from rules.fire_intact import FirePointBook, PanelSpec, SiteIntact, point_report
from rules.fire_intact_writer import FireIntactWriter, IntactTiming
from rules.tables import FirePoint
from tests.conftest import influxql

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
POINTS = [f"1-{n:03d}" for n in range(1, 11)]


def site(site_id: str = "s1", listed: Sequence[str] = ()) -> Site:
    panel: dict[str, object] = {"id": "fp1", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "x"}}
    if listed:
        panel["points"] = list(listed)
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        panel,
                        {"id": "fp2", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "y"}},
                    ],
                }
            ],
        }
    )


def ref(device: str = "fp1", site_id: str = "s1") -> DeviceRef:
    return DeviceRef(site=site_id, building="b1", device=device, kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")


def panel_reading(at: datetime, device: str = "fp1", site_id: str = "s1", present: int | None = None) -> Reading:
    """A panel's own reading; `present`: the points it counts as present (left out: the figure does not wait for
    them)."""
    values: dict[str, Value] = {} if present is None else {"points_total": present, "points_intact": present}
    return Reading(ref=ref(device, site_id), ts=at, values=values)


def point_reading(point: str, at: datetime, state: str = "normal", device: str = "fp1", site_id: str = "s1") -> Reading:
    values: dict[str, Value] = {"state": state, "type": "smoke_detector"}
    if state != "absent":
        values |= {"fault": state == "fault", "disabled": state == "disabled", "fire": state == "fire"}
    return Reading(ref=ref(device, site_id), ts=at, point=point, values=values)


def spec(device: str, silent_after_s: float = 60) -> PanelSpec:
    return PanelSpec("s1", "b1", device, "fire-gb-a", timedelta(seconds=silent_after_s))


def feed(book: FirePointBook, at: datetime, states: dict[str, str], device: str = "fp1") -> None:
    book.heard_panel("s1", "b1", device, "fire-gb-a", at)
    for point, state in states.items():
        report = point_report(point_reading(point, at, state, device), at)
        assert report is not None
        book.take_point(report)


# --- the book -----------------------------------------------------------------------------------------------------


def test_an_absent_point_stays_in_the_denominator() -> None:
    book = FirePointBook([spec("fp1")])
    feed(book, T0, dict.fromkeys(POINTS, "normal"))
    assert book.figure("s1", T0) == SiteIntact("s1", T0, 10, 10, 10, 1, 1)
    feed(book, T0 + timedelta(seconds=5), {"1-003": "absent", "1-004": "fault", "1-005": "disabled", "1-006": "fire"})
    figure = book.figure("s1", T0 + timedelta(seconds=5))
    # 10 commissioned, 9 present (1-003 absent), 7 intact: fault and disabled are not; a fire alarm is.
    assert (figure.points_commissioned, figure.points_present, figure.points_intact) == (10, 9, 7)
    assert figure.intact_pct == 70.0


def test_a_silent_panel_counts_none_of_its_points_and_a_forgotten_point_lapses() -> None:
    # fp2 is polled once a minute: its reading holds for 3 minutes; a point's for 90 s more.
    book = FirePointBook([spec("fp1"), spec("fp2", silent_after_s=180)])
    feed(book, T0, dict.fromkeys(POINTS, "normal"))
    feed(book, T0, {"1-001": "normal"}, device="fp2")
    assert book.figure("s1", T0).counts() == (11, 11, 11, 2, 2)
    # fp1 stays silent for more than its 60 s; fp2 keeps answering but stops reporting its point (its gateway
    # forgot it): after 270 s that point is no longer known to be there.
    book.heard_panel("s1", "b1", "fp2", "fire-gb-a", T0 + timedelta(seconds=120))
    assert book.figure("s1", T0 + timedelta(seconds=61)).counts() == (11, 1, 1, 2, 1)
    book.heard_panel("s1", "b1", "fp2", "fire-gb-a", T0 + timedelta(seconds=240))
    assert book.figure("s1", T0 + timedelta(seconds=270)).counts() == (11, 1, 1, 2, 1)
    assert book.figure("s1", T0 + timedelta(seconds=271)).counts() == (11, 0, 0, 2, 1)


def test_a_figure_is_due_only_after_a_change_or_a_lapse() -> None:
    book = FirePointBook([spec("fp1")])
    assert book.due("s1", T0), "never made"
    feed(book, T0, dict.fromkeys(POINTS, "normal"))
    book.figure("s1", T0)
    # Readings that change nothing: the panel every second, every point again at the next snapshot.
    for second in range(1, 61):
        book.heard_panel("s1", "b1", "fp1", "fire-gb-a", T0 + timedelta(seconds=second))
    feed(book, T0 + timedelta(seconds=60), dict.fromkeys(POINTS, "normal"))
    assert not book.due("s1", T0 + timedelta(seconds=60))
    feed(book, T0 + timedelta(seconds=61), {"1-001": "fault"})
    assert book.due("s1", T0 + timedelta(seconds=61))
    assert book.figure("s1", T0 + timedelta(seconds=61)).points_intact == 9
    # The panel's 60 s since 08:01:01 run out after 08:02:01; nothing is heard of in between.
    book.heard_panel("s1", "b1", "fp1", "fire-gb-a", T0 + timedelta(seconds=61))
    assert not book.due("s1", T0 + timedelta(seconds=121))
    assert book.due("s1", T0 + timedelta(seconds=122))
    assert book.figure("s1", T0 + timedelta(seconds=122)).counts() == (10, 0, 0, 1, 0)
    # Heard of again after the silence.
    assert not book.due("s1", T0 + timedelta(seconds=220))
    book.heard_panel("s1", "b1", "fp1", "fire-gb-a", T0 + timedelta(seconds=220))
    assert book.due("s1", T0 + timedelta(seconds=220))
    assert book.figure("s1", T0 + timedelta(seconds=220)).counts() == (10, 0, 0, 1, 1), "every point has lapsed"


def test_stored_points_count_at_once_and_decommissioned_ones_not_at_all() -> None:
    book = FirePointBook([spec("fp1")])
    stored = [
        store.StoredPoint(("s1", "fp1", "1-001"), True, "normal", True, T0, T0),
        store.StoredPoint(("s1", "fp1", "1-002"), True, "absent", False, T0, T0),
        store.StoredPoint(("s1", "fp1", "1-003"), True),  # listed, never reported
        store.StoredPoint(("s1", "fp1", "1-004"), False, "absent", False, T0, T0),  # decommissioned
        store.StoredPoint(("s2", "fp1", "1-001"), True, "normal", True, T0, T0),  # not a panel of these sites
    ]
    book.load(stored, full=True)
    at = T0 + timedelta(seconds=1)
    assert not book.ready("s1", started=at, now=at), "no figure before the panel is heard of"
    book.heard_panel("s1", "b1", "fp1", "fire-gb-a", at)
    assert book.ready("s1", started=at, now=at)
    assert book.figure("s1", at).counts() == (3, 1, 1, 1, 1)
    # Decommissioning 1-002 and 1-003 (read back from the table) leaves 1 of 1.
    book.load([store.StoredPoint(("s1", "fp1", p), False) for p in ("1-002", "1-003")], full=False)
    assert book.figure("s1", at).counts() == (1, 1, 1, 1, 1)


def test_older_point_readings_change_nothing_and_the_pending_rows_say_what_to_store() -> None:
    book = FirePointBook([spec("fp1")])
    feed(book, T0 + timedelta(seconds=2), {"1-001": "fault"})
    report = point_report(point_reading("1-001", T0, "normal"), T0)
    assert report is not None
    assert not book.take_point(report)
    pending = book.take_pending()
    assert list(pending.new) == [("s1", "fp1", "1-001")]
    assert pending.states[("s1", "fp1", "1-001")].state == "fault"
    assert not book.take_pending()
    # The same state again is only a newer reading time.
    feed(book, T0 + timedelta(seconds=62), {"1-001": "fault"})
    again = book.take_pending()
    assert (again.new, again.states, again.heard) == ({}, {}, {("s1", "fp1", "1-001"): T0 + timedelta(seconds=62)})


# --- the writer over the point table ------------------------------------------------------------------------------


class Lines:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def write(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)


def figures(lines: Sequence[str]) -> list[str]:
    """The fields of each fire_intact line, without the measurement and time."""
    return [line.split(" ")[1] for line in lines]


def fields(commissioned: int, present: int, intact: int, answering: int = 2) -> str:
    pct = f"intact_pct={round(100 * intact / commissioned, 2):g}," if commissioned else ""
    return (
        f"{pct}panels=2i,panels_answering={answering}i,points_commissioned={commissioned}i,"
        f"points_intact={intact}i,points_present={present}i"
    )


async def test_the_point_table_survives_a_restart_and_a_decommission_is_read_back(engine: Engine) -> None:
    clock, sink = FakeClock(T0), Lines()
    the_site = site(listed=["1-011..1-012"])  # two listed points the panel never reports
    writer = FireIntactWriter(sink, engine, sites=[the_site], clock=clock, timing=IntactTiming(reload_s=5))
    for device in ("fp1", "fp2"):
        await writer.take(panel_reading(T0, device))
    for point in POINTS:
        await writer.take(point_reading(point, T0, "absent" if point == "1-010" else "normal"))
    assert await writer.tick() == 1
    assert figures(sink.lines) == [fields(12, 9, 9)]

    # A new worker (a restart) knows the table and the states at once: no figure until the panels are heard of.
    clock.advance(20)
    restarted = FireIntactWriter(sink, engine, sites=[the_site], clock=clock, timing=IntactTiming(reload_s=5))
    assert await restarted.tick() == 0
    for device in ("fp1", "fp2"):
        await restarted.take(panel_reading(clock.now(), device))
    assert await restarted.tick() == 1
    assert figures(sink.lines)[-1] == fields(12, 9, 9)

    with Session(engine) as session:
        for point in ("1-010", "1-011", "1-012"):
            store.decommission(session, "s1", "fp1", point, actor="engineer", reason="removed", now=clock.now())
        session.commit()
    clock.advance(5)
    for device in ("fp1", "fp2"):
        await restarted.take(panel_reading(clock.now(), device))
    for point in POINTS[:9]:
        await restarted.take(point_reading(point, clock.now()))
    assert await restarted.tick() == 1
    assert figures(sink.lines)[-1] == fields(9, 9, 9)
    with Session(engine) as session:
        rows = {r.point: r for r in session.scalars(select(FirePoint))}
    assert (rows["1-011"].source, rows["1-011"].reported_at) == ("site_file", None)
    assert (rows["1-001"].source, rows["1-001"].heard_at) == ("reported", clock.now())
    assert (rows["1-010"].state, rows["1-010"].intact, rows["1-010"].decommissioned_by) == ("absent", False, "engineer")


async def test_figures_are_written_every_minute_and_a_silent_panel_lowers_the_rate(engine: Engine) -> None:
    clock, sink, metrics = FakeClock(T0), Lines(), Counters()
    writer = FireIntactWriter(sink, engine, sites=[site()], clock=clock, metrics=metrics)
    for device in ("fp1", "fp2"):
        await writer.take(panel_reading(T0, device))
    for point in POINTS:
        await writer.take(point_reading(point, T0))
    await writer.tick()  # the first tick (loading the table) before the loop's own, which then writes nothing new
    task = asyncio.create_task(writer.run_ticks())
    try:
        await clock.settle()
        assert figures(sink.lines) == [fields(10, 10, 10)]
        await clock.advance_and_settle(30)
        assert len(sink.lines) == 1, "nothing changed, and a minute has not passed"
        await writer.take(panel_reading(clock.now()))  # fp1 answers at 08:00:30, fp2 last at 08:00:00
        # Then both are silent: at 08:01 a figure because a minute has passed, at 08:01:30 fp2's 60 s are over, at
        # 08:02 fp1's (none of its points is intact any more), at 08:03 another minute has passed.
        for _ in range(5):
            await clock.advance_and_settle(30)
        assert figures(sink.lines) == [
            fields(10, 10, 10),
            fields(10, 10, 10),
            fields(10, 10, 10, answering=1),
            fields(10, 0, 0, answering=0),
            fields(10, 0, 0, answering=0),
        ]
        times = [int(line.rsplit(" ", 1)[1]) for line in sink.lines]
        assert [(t - times[0]) // 10**9 for t in times] == [0, 60, 90, 120, 180]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert metrics.get("rules_fire_intact_points") == 5


async def test_readings_of_other_panels_or_points_off_the_table_are_refused(engine: Engine) -> None:
    metrics = Counters()
    writer = FireIntactWriter(Lines(), engine, sites=[site()], clock=FakeClock(T0), metrics=metrics)
    await writer.take(panel_reading(T0, "fp9"))
    await writer.take(point_reading("1-001", T0, site_id="s2"))
    await writer.take(point_reading("3-001", T0))  # fire-gb-a has two loops
    await writer.take(point_reading("1-1", T0))
    await writer.take(Reading(ref=ref(), ts=T0, point="1-001", values={"type": "smoke_detector"}))
    assert metrics.get("rules_fire_intact_refused") == 2
    assert metrics.get("rules_fire_intact_rejected") == 3
    await writer.tick()
    with Session(engine) as session:
        assert session.scalars(select(FirePoint)).all() == []


async def test_without_site_files_every_panel_heard_of_counts(engine: Engine) -> None:
    sink = Lines()
    writer = FireIntactWriter(sink, engine, clock=FakeClock(T0))
    await writer.take(point_reading("1-001", T0, site_id="s9"))  # a point before its panel's reading
    await writer.take(panel_reading(T0, site_id="s9"))
    await writer.take(point_reading("1-002", T0, "disabled", site_id="s9"))
    assert await writer.tick() == 1
    assert sink.lines[0].startswith("fire_intact,site=s9 intact_pct=50,panels=1i,panels_answering=1i,")


async def test_a_point_reading_stamped_a_day_ahead_is_taken_as_now(engine: Engine) -> None:
    clock, metrics = FakeClock(T0), Counters()
    writer = FireIntactWriter(Lines(), engine, sites=[site()], clock=clock, metrics=metrics)
    await writer.take(point_reading("1-001", T0 + timedelta(days=1), "fault"))
    assert metrics.get("rules_fire_intact_from_future") == 1
    # The gateway's clock set right: the next reading counts at once, not a day later.
    await writer.take(point_reading("1-001", T0 + timedelta(seconds=1)))
    assert writer.book.states("s1", "fp1")["1-001"].state == "normal"


# --- InfluxDB and the backbone --------------------------------------------------------------------------------------


async def test_the_figures_are_queryable_and_each_holds_at_most_five_minutes(
    engine: Engine, influxd: Influxd, influx_db: str
) -> None:
    settings = InfluxSettings(influxd.url, influx_db)
    sink, clock = InfluxLifecycleSink(settings), FakeClock(T0)
    writer = FireIntactWriter(sink, engine, sites=[site()], clock=clock, timing=IntactTiming(heartbeat_s=3600))
    try:
        for device in ("fp1", "fp2"):
            await writer.take(panel_reading(T0, device))
        for point in POINTS:
            await writer.take(point_reading(point, T0, "fault" if point == "1-001" else "normal"))
        assert await writer.tick() == 1  # 9 of 10 at 08:00
        clock.advance(600)
        for device in ("fp1", "fp2"):
            await writer.take(panel_reading(clock.now(), device))
        for point in POINTS:
            await writer.take(point_reading(point, clock.now()))
        assert await writer.tick() == 1  # 10 of 10 at 08:10
    finally:
        await sink.aclose()
    [series] = influxql(
        influxd.url,
        influx_db,
        "SELECT intact_pct, points_commissioned, points_present, points_intact, panels FROM fire_intact",
    )
    assert [r[1:] for r in series["values"]] == [[90.0, 10, 10, 9, 2], [100.0, 10, 10, 10, 2]]  # type: ignore[index]

    reader = InfluxReader(settings)
    try:
        # 08:00-08:20: 90 % for 5 minutes (then nothing until 08:10), 100 % for 5 minutes from 08:10.
        figure = await period_intact(reader, "s1", T0, T0 + timedelta(minutes=20), 1.0)
        before = await period_intact(reader, "s1", T0 - timedelta(minutes=1), T0 + timedelta(minutes=4), 1.0)
    finally:
        await reader.aclose()
    assert figure.current is not None
    assert (figure.current.numerator, figure.current.denominator) == (10, 10)
    assert figure.current_at == T0 + timedelta(minutes=10)
    assert figure.period_covered_s == 600
    assert figure.period_mean == pytest.approx(0.95)
    assert (before.period_covered_s, before.period_mean) == (240, pytest.approx(0.9))


async def test_panel_readings_from_the_backbone_reach_the_writer(
    engine: Engine, mosquitto: Mosquitto, topic_prefix: str
) -> None:
    writer = FireIntactWriter(Lines(), engine, sites=[site(topic_prefix)], clock=FakeClock(T0))

    def client() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"{topic_prefix}-sub")

    task = asyncio.create_task(writer.consume(client))
    try:
        await asyncio.wait_for(writer.subscribed.wait(), 5)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as publisher:
            for message in (
                panel_reading(T0, site_id=topic_prefix, present=1),
                point_reading("1-002", T0, site_id=topic_prefix),
            ):
                await publisher.publish(state_topic(message.ref), message.model_dump_json(), qos=1)
        for _ in range(100):
            if "1-002" in writer.book.states(topic_prefix, "fp1"):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert writer.book.states(topic_prefix, "fp1")["1-002"].state == "normal"
    assert writer.book.ready(topic_prefix, started=T0, now=T0 + timedelta(seconds=60))


def test_a_first_start_makes_no_figure_until_the_points_the_panel_counts_are_known() -> None:
    """With an empty table, the panel's reading (3 present points) comes before its points' readings: a figure then
    would be 0 of 0, or 0 of the one absent point heard first. It waits for the points, at most until a point not
    heard of would count as not reported anyway."""
    book = FirePointBook([spec("fp1")])
    book.heard_panel("s1", "b1", "fp1", "fire-gb-a", T0, present=3)
    assert not book.ready("s1", started=T0, now=T0)
    feed(book, T0 + timedelta(seconds=1), {"1-004": "absent", "1-001": "normal", "1-002": "fault"})
    assert not book.ready("s1", started=T0, now=T0 + timedelta(seconds=1)), "2 of 3 present points known"
    feed(book, T0 + timedelta(seconds=2), {"1-003": "normal"})
    assert book.ready("s1", started=T0, now=T0 + timedelta(seconds=2))
    assert book.figure("s1", T0 + timedelta(seconds=2)).counts() == (4, 3, 2, 1, 1)
    # Points never reported: the figure is made once a point would have lapsed anyway, and counts what it knows.
    late = FirePointBook([spec("fp1")])
    late.heard_panel("s1", "b1", "fp1", "fire-gb-a", T0, present=3)
    hold = spec("fp1").point_hold
    assert not late.ready("s1", started=T0, now=T0 + hold - timedelta(seconds=1))
    assert late.ready("s1", started=T0, now=T0 + hold)
