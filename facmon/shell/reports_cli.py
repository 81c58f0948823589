"""`facmon report ...`: the reports from the command line, over the work-order database and InfluxDB of the settings
(FACMON_DB_URL or the state folder, FACMON_INFLUX_URL)."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from facmon.estate.site import Site, SiteFileError, load_site
from facmon.kernel.clock import SystemClock
from facmon.kernel.influx import InfluxSettings
from facmon.reports.common import ReportFormat, render
from facmon.shell.settings import Settings

report_app = typer.Typer(
    help="Reports: elevators for the insurer, monthly KPIs for the property manager (JSON, CSV or PDF).",
    no_args_is_help=True,
)

SiteOption = Annotated[Path, typer.Option("--site", help="site file (YAML)")]
FormatOption = Annotated[ReportFormat, typer.Option("--format", help="json, csv or pdf")]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="file to write; default: standard output (json, csv), a file named after the report (pdf)",
    ),
]
StateOption = Annotated[
    Path | None, typer.Option("--state-dir", help="folder for local data (default: FACMON_STATE_DIR or .facmon)")
]


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _site(path: Path) -> Site:
    try:
        return load_site(path)
    except SiteFileError as exc:
        _fail(f"{len(exc.problems)} problem(s) in the site file:\n" + "\n".join(f"  {p}" for p in exc.problems))


def _settings(state_dir: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"state_dir": state_dir}) if state_dir is not None else settings


def _engine(settings: Settings) -> Engine:
    from facmon.kernel.db import make_engine

    url = settings.database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        _fail(f"no work-order database at {url.removeprefix('sqlite:///')} (set FACMON_DB_URL or --state-dir)")
    return make_engine(url)


def _write(content: str | bytes, output: Path | None, default_name: str) -> None:
    if isinstance(content, bytes) and output is None:
        output = Path(default_name)
    if output is None:
        sys.stdout.write(content if isinstance(content, str) else content.decode())
        return
    if isinstance(content, bytes):
        output.write_bytes(content)
    else:
        output.write_text(content, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)


@report_app.command("insurance")
def insurance(
    site: SiteOption,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="the report's date, YYYY-MM-DD (site time); default: today")
    ] = None,
    fmt: FormatOption = ReportFormat.JSON,
    threshold_years: Annotated[int, typer.Option("--threshold-years", min=0, help="age from which to report")] = 10,
    output: OutputOption = None,
    state_dir: StateOption = None,
) -> None:
    """Every elevator in service THRESHOLD years or more: registration, inspection, maintenance, faults in the last
    12 months, policy or uninsured."""
    from facmon.reports.insurance import insurance_report
    from facmon.reports.insurance_output import insurance_csv, insurance_pdf

    the_site = _site(site)
    try:
        day = SystemClock().now().astimezone(the_site.tz).date() if as_of is None else date.fromisoformat(as_of)
    except ValueError:
        _fail(f"--as-of {as_of!r}: expected a date as YYYY-MM-DD")
    engine = _engine(_settings(state_dir))
    try:
        with Session(engine) as session:
            report = insurance_report(session, the_site, day, SystemClock().now(), threshold_years)
    except SQLAlchemyError as exc:
        _fail(f"cannot read the work-order database: {exc}")
    finally:
        engine.dispose()
    content = render(report, fmt, as_csv=insurance_csv, as_pdf=insurance_pdf)
    _write(content, output, f"insurance-{the_site.id}-{day}.{fmt.value}")


@report_app.command("kpi")
def kpi(
    site: SiteOption,
    month: Annotated[
        str | None, typer.Option("--month", help="the month, YYYY-MM (site time); default: the last complete month")
    ] = None,
    fmt: FormatOption = ReportFormat.JSON,
    output: OutputOption = None,
    state_dir: StateOption = None,
) -> None:
    """The contract KPIs of one month against their targets, with the work orders behind every miss. Fire intact
    rate and availability need InfluxDB (FACMON_INFLUX_URL); without it they are reported unavailable."""
    from facmon.reports.common import parse_month, previous_month
    from facmon.reports.kpi_data import InfluxReader
    from facmon.reports.kpi_monthly import KpiMonthlyReport, kpi_monthly_report
    from facmon.reports.kpi_output import kpi_csv, kpi_pdf
    from facmon.shell.local import endpoints

    the_site = _site(site)
    if month is None:
        month = previous_month(SystemClock().now(), the_site.tz)
    try:
        parse_month(month)
    except ValueError as exc:
        _fail(f"--month: {exc}")
    settings = _settings(state_dir)
    engine = _engine(settings)

    async def build() -> KpiMonthlyReport:
        # The configured InfluxDB, or the one a running `facmon up` started on this state folder (the demo's).
        ends = endpoints(settings)
        influx = (
            None
            if ends.influx_url is None
            else InfluxReader(
                InfluxSettings(
                    ends.influx_url, ends.influx_db, username=ends.influx_username, password=ends.influx_password
                )
            )
        )
        try:
            with Session(engine) as session:
                return await kpi_monthly_report(session, the_site, month, SystemClock().now(), influx)
        finally:
            if influx is not None:
                await influx.aclose()

    try:
        report = asyncio.run(build())
    except SQLAlchemyError as exc:
        _fail(f"cannot read the work-order database: {exc}")
    finally:
        engine.dispose()
    content = render(report, fmt, as_csv=kpi_csv, as_pdf=kpi_pdf)
    _write(content, output, f"kpi-{the_site.id}-{report.month}.{fmt.value}")
