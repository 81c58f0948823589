"""`facmon demo-history`: a believable past for a site, in the work-order database and InfluxDB of the settings.

The database is FACMON_DB_URL or the SQLite file in the state folder, as for every command; InfluxDB is
FACMON_INFLUX_URL, or else the state folder's own influxd (the one `facmon up` starts), run for the command's
duration. Run it once on a fresh state folder before `make demo`; running it again changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

from facmon.shell.settings import Settings

SiteOption = Annotated[Path, typer.Option("--site", help="site file (YAML)")]
SeedOption = Annotated[int, typer.Option("--seed", help="the same seed, site and end give the same history")]
DaysOption = Annotated[int, typer.Option("--days", min=1, max=3660, help="how many days of history")]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="where the history ends: YYYY-MM-DD (that day's midnight, site time) or an ISO time; default: now",
    ),
]
StateOption = Annotated[
    Path | None, typer.Option("--state-dir", help="folder for local data (default: FACMON_STATE_DIR or .facmon)")
]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")]


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def parse_until(text: str | None, tz: ZoneInfo, now: datetime) -> datetime:
    """The end of the history: a date is its midnight on the site's wall clock; a time without a zone is the site's."""
    if text is None:
        return now
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=tz)
        at = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--until {text!r}: expected YYYY-MM-DD or an ISO time such as 2026-11-01T08:00+08:00")
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


@contextlib.contextmanager
def _influx(settings: Settings) -> Iterator[str]:
    """FACMON_INFLUX_URL, or the state folder's influxd while the command runs."""
    if settings.influx_url:
        yield settings.influx_url
        return
    from facmon.kernel.daemons import Influxd, ServiceError

    service = Influxd(settings.state_dir / "influxdb")
    try:
        service.start()
    except ServiceError as exc:
        _fail(f"cannot start the state folder's influxd ({exc}); is `facmon up` running on it? Stop it first.")
    try:
        yield service.url
    finally:
        service.stop()


def demo_history_command(
    site: SiteOption = Path("examples/demo-site.yaml"),
    seed: SeedOption = 1,
    days: DaysOption = 365,
    until: UntilOption = None,
    state_dir: StateOption = None,
    log_level: LogLevel = "ERROR",
) -> None:
    """Give a site a believable past: a year of work orders, visits, checks, alarms and readings, from a seed."""
    from facmon.demo_history.generate import generate_history
    from facmon.demo_history.guard import HistoryRefused
    from facmon.estate.site import SiteFileError, load_site
    from facmon.kernel.clock import SystemClock
    from facmon.kernel.db import make_engine
    from facmon.shell.logs import configure
    from facmon.shell.migrations.schema import create_schema

    configure(log_level)
    settings = Settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    try:
        loaded = load_site(site)
    except SiteFileError as exc:
        _fail(f"{len(exc.problems)} problem(s) in the site file:\n" + "\n".join(f"  {p}" for p in exc.problems))
    end = parse_until(until, loaded.tz, SystemClock().now())
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    try:
        create_schema(engine)
        with _influx(settings) as influx_url:
            summary = generate_history(
                loaded,
                engine,
                influx_url,
                settings.influx_db,
                until=end,
                days=days,
                seed=seed,
                influx_username=settings.influx_username,
                influx_password=settings.influx_password_text(),
            )
    except HistoryRefused as exc:
        _fail(f"no history written: {exc}")
    finally:
        engine.dispose()
    for line in summary.lines():
        typer.echo(line)
