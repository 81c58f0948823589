"""`generate_history`: a year (or `days`) of believable past for a site, into its work-order database and InfluxDB.

The plan (what happens, from the seed) is made first; then the readings and events go to InfluxDB in a thread while
the replay writes the work orders, visits, checks and alarms through facmon's own functions; last, the work orders'
timelines go to InfluxDB through the rules worker's lifecycle exporter, and a marker records the history. The same
site, seed and `until` give the same rows and the same points.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine

from facmon.demo_history.guard import HistoryRefused, check_fresh, generated_until, mark
from facmon.demo_history.influx import InfluxWriter
from facmon.demo_history.model import HistoryPlan
from facmon.demo_history.planner import plan_history
from facmon.demo_history.profile import DEFAULT_PROFILE, HistoryProfile, Period
from facmon.demo_history.readings import reading_streams
from facmon.demo_history.replay import Replay
from facmon.demo_history.summary import HistorySummary, count_rows
from facmon.estate.site import Site
from facmon.historian.lines import EVENTS_MEASUREMENT, event_line
from facmon.kernel.clock import Clock, FakeClock, SystemClock, utc
from facmon.kernel.influx import InfluxError
from facmon.workorders.lifecycle import LifecycleExporter

log = structlog.get_logger(__name__)

DEMO_SEED = 1
DEFAULT_DAYS = 365


class InfluxOptions:
    def __init__(self, url: str, db: str, *, username: str | None = None, password: str | None = None) -> None:
        self.url = url
        self.db = db
        self.username = username
        self.password = password


def generate_history(
    site: Site,
    engine: Engine,
    influx_url: str,
    influx_db: str,
    *,
    until: datetime,
    days: int = DEFAULT_DAYS,
    seed: int = DEMO_SEED,
    influx_username: str | None = None,
    influx_password: str | None = None,
    profile: HistoryProfile = DEFAULT_PROFILE,
) -> HistorySummary:
    """Write `days` of history ending at `until`; nothing when this database has a generated history already.

    Raises HistoryRefused for a database holding work of its own. Call it from a thread in async code: it runs
    an event loop of its own for the in-process collectors.
    """
    return _generate(
        site,
        engine,
        InfluxOptions(influx_url, influx_db, username=influx_username, password=influx_password),
        until=until,
        days=days,
        seed=seed,
        profile=profile,
        clock=SystemClock(),
    )


def _generate(
    site: Site,
    engine: Engine,
    influx: InfluxOptions,
    *,
    until: datetime,
    days: int,
    seed: int,
    profile: HistoryProfile,
    clock: Clock,
) -> HistorySummary:
    began = clock.monotonic()
    if days < 1:
        raise ValueError("a history is at least one day long")
    until = utc(until).replace(microsecond=0)
    period = Period(until - timedelta(days=days), until, site.tz)
    done = generated_until(engine)
    if done is not None:
        return HistorySummary(site.id, period.start, done, seed, skipped=True)
    check_fresh(engine)
    writer = InfluxWriter(influx.url, influx.db, username=influx.username, password=influx.password)
    try:
        writer.ensure_database()
        plan = plan_history(site, period, seed, profile)
        _write_and_replay(engine, site, plan, period, profile, writer, seed)
        asyncio.run(_export_lifecycle(engine, writer, until))
        mark(engine, until)
    finally:
        writer.close()
    return HistorySummary(
        site.id,
        period.start,
        until,
        seed,
        events=len(plan.events),
        points=dict(writer.points),
        digest=writer.digest,
        seconds=round(clock.monotonic() - began, 1),
        **count_rows(engine),
    )


def _event_lines(plan: HistoryPlan) -> Iterator[str]:
    return (event_line(timed.event) for timed in plan.events)


def _write_and_replay(
    engine: Engine,
    site: Site,
    plan: HistoryPlan,
    period: Period,
    profile: HistoryProfile,
    writer: InfluxWriter,
    seed: int,
) -> None:
    """Readings and events to InfluxDB in a thread (influxd takes them on its own core) while the replay runs."""
    failed: list[BaseException] = []

    def write() -> None:
        try:
            for measurement, lines in reading_streams(plan, site, period, profile, seed):
                writer.write(lines, measurement)
            writer.write(_event_lines(plan), EVENTS_MEASUREMENT)
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)

    thread = threading.Thread(target=write, name="history-influx", daemon=True)
    thread.start()
    try:
        Replay(engine, site, plan, period, profile).run()
    finally:
        thread.join()
    if failed:
        raise failed[0]


class _WriterSink:
    """The lifecycle exporter's sink, writing through the history's writer (so its points are counted too)."""

    def __init__(self, writer: InfluxWriter) -> None:
        self.writer = writer

    async def write(self, lines: Sequence[str]) -> None:
        self.writer.write(lines)


async def _export_lifecycle(engine: Engine, writer: InfluxWriter, until: datetime) -> None:
    """Every timeline entry as a `work_orders` point, marked exported as the rules worker's exporter does."""
    exporter = LifecycleExporter(engine, _WriterSink(writer), FakeClock(until), batch_size=5000)
    while await exporter.export_once():
        pass


async def ensure_demo_history(
    site: Site,
    engine: Engine,
    influx_url: str,
    influx_db: str,
    *,
    now: datetime,
    demo: bool,
    seed: int = DEMO_SEED,
    days: int = DEFAULT_DAYS,
) -> HistorySummary | None:
    """For `facmon up --demo` on its first start: the year before `now`, once. Outside demo mode it does nothing,
    and a database with work of its own (a demo run before histories existed) is left alone, with a warning."""
    if not demo:
        return None
    try:
        summary = await asyncio.to_thread(
            generate_history, site, engine, influx_url, influx_db, until=now, days=days, seed=seed
        )
    except HistoryRefused as exc:
        log.warning("demo history not generated", reason=str(exc))
        return None
    except InfluxError as exc:
        log.warning("demo history not written to InfluxDB", reason=str(exc))
        return None
    for line in summary.lines():
        log.info(line.strip())
    return summary
