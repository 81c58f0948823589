"""The reports (facmon.reports.insurance, facmon.reports.kpi_monthly) over HTTP, as JSON, CSV or PDF; readable by
admins, engineers,
viewers and reporters (insurers and auditors, read only).

The insurance report takes the elevators' asset data from the site file with the changes made through the API
(api.routes.assets, facmon.estate.asset_store) laid over it."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError

from api.accounts.models import Role
from api.auth import require
from api.deps import ClockDep, SessionDep, SitesDep
from api.routes.kpis import get_influx, get_kpi_targets
from facmon.estate.site import Site
from facmon.reports.common import MEDIA_TYPES, ReportFormat, parse_month, previous_month, render
from facmon.reports.insurance import DEFAULT_THRESHOLD_YEARS, insurance_report
from facmon.reports.insurance_output import insurance_csv, insurance_pdf
from facmon.reports.kpi import KpiTargets
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_monthly import kpi_monthly_report
from facmon.reports.kpi_output import kpi_csv, kpi_pdf

router = APIRouter(
    prefix="/reports",
    tags=["reports"],
    dependencies=[Depends(require(Role.ADMIN, Role.ENGINEER, Role.VIEWER, Role.REPORTER))],
)

SiteQuery = Annotated[str, Query(min_length=1, max_length=64)]
FormatQuery = Annotated[ReportFormat, Query(alias="format")]
# Report dates outside these years are typing mistakes (and year 1 or 9999 would not survive the period arithmetic).
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199


def _invalid(field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}])


def _check_year(field: str, year: int, value: object) -> None:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise _invalid(field, f"the year must be between {EARLIEST_YEAR} and {LATEST_YEAR}", value)


def _site(sites: tuple[Site, ...], site_id: str) -> Site:
    site = next((s for s in sites if s.id == site_id), None)
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no site {site_id!r}")
    return site


def _response(content: str | bytes, fmt: ReportFormat, filename: str) -> Response:
    return Response(
        content=content,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'inline; filename="{filename}.{fmt.value}"'},
    )


@router.get("/insurance")
async def read_insurance_report(
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    site: SiteQuery,
    as_of: Annotated[date | None, Query(description="the report's date (site time); default: today")] = None,
    fmt: FormatQuery = ReportFormat.JSON,
    threshold_years: Annotated[int, Query(ge=0, le=100)] = DEFAULT_THRESHOLD_YEARS,
) -> Response:
    the_site = _site(sites, site)
    if as_of is None:
        as_of = clock.now().astimezone(the_site.tz).date()
    _check_year("as_of", as_of.year, str(as_of))
    report = await asyncio.to_thread(insurance_report, session, the_site, as_of, clock.now(), threshold_years)
    content = await asyncio.to_thread(render, report, fmt, as_csv=insurance_csv, as_pdf=insurance_pdf)
    return _response(content, fmt, f"insurance-{site}-{as_of}")


@router.get("/kpi")
async def read_kpi_report(
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    targets: Annotated[KpiTargets, Depends(get_kpi_targets)],
    influx: Annotated[InfluxReader | None, Depends(get_influx)],
    site: SiteQuery,
    month: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM, site time; default: the last complete month")
    ] = None,
    fmt: FormatQuery = ReportFormat.JSON,
) -> Response:
    if month is None:
        month = previous_month(clock.now(), _site(sites, site).tz)
    try:
        year, _ = parse_month(month)
    except ValueError as exc:
        raise _invalid("month", str(exc), month) from exc
    _check_year("month", year, month)
    the_site = _site(sites, site)
    report = await kpi_monthly_report(session, the_site, month, clock.now(), influx, targets)
    content = await asyncio.to_thread(render, report, fmt, as_csv=kpi_csv, as_pdf=kpi_pdf)
    return _response(content, fmt, f"kpi-{site}-{month}")
