"""Devices: the list, one device in detail with its latest readings, and one field's history.

The device list comes from the site files (the source of truth for what exists), with the asset data changed through
the API (installation date, registration code) laid over them (facmon.estate.asset_store); status and open work orders
come
from the database: comm is "ok" from a device's first answer or message since its gateway started (reported as a
first-contact comm_restored), "lost" after a silence longer than its grace, and "unknown" for a device never heard
from. The latest readings and the history come from InfluxDB (api.influx_history); without InfluxDB the detail still
answers and says why the readings are missing, while the history, which is nothing but readings, answers 503.

Technicians see the devices of their sites only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.auth import Principal, PrincipalDep
from api.deps import ClockDep, DatabaseWorkDep, EngineDep, SitesDep
from api.influx_history import field_types, history, latest
from api.routes.kpis import get_influx
from api.routes.work_orders import earliest_running
from api.schemas import (
    EARLIEST,
    LATEST,
    DeviceDetailPublic,
    DevicePagePublic,
    DeviceState,
    HistoryPointPublic,
    HistoryPublic,
    LatestPublic,
    LatestValuePublic,
    Moment,
    Offset,
    ProblemError,
    WorkOrderSummaryPublic,
    problem_response,
)
from facmon.estate.asset_store import effective, effective_device, stored_updates
from facmon.estate.entries import Building, Device
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind, EventType
from facmon.reports.kpi_data import InfluxReader, InfluxUnavailable
from facmon.workorders.queries import list_work_order_rows, open_work_order_counts
from facmon.workorders.tables import OPEN_STATUSES
from rules.tables import DeviceStatus

router = APIRouter(tags=["devices"])

InfluxDep = Annotated[InfluxReader | None, Depends(get_influx)]
SiteId = Annotated[str, Path(min_length=1, max_length=64)]
DeviceId = Annotated[str, Path(min_length=1, max_length=64)]

# History: the range asked for when none is given, and the longest one answered.
DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=90)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: problem_response("no such site or device")}


class Heard(Protocol):
    """What the API shows of a device's status row (rules.tables.DeviceStatus, or a row of its columns)."""

    @property
    def comm(self) -> str: ...
    @property
    def comm_since(self) -> datetime | None: ...
    @property
    def last_event_at(self) -> datetime: ...
    @property
    def last_event_type(self) -> str: ...


def heard(
    session: Session, sites: Collection[str] | None, devices: Collection[str] | None = None
) -> dict[tuple[str, str], Heard]:
    """The status rows of the devices of `sites` (None: every site), of those named `devices` if given, as plain
    rows of the columns shown: ORM objects cost several times more to build than rows."""
    d = DeviceStatus
    query = select(d.site, d.device, d.comm, d.comm_since, d.last_event_at, d.last_event_type)
    if sites is not None:
        query = query.where(d.site.in_(list(sites)))
    if devices is not None:
        query = query.where(d.device.in_(list(devices)))
    return {(row.site, row.device): row for row in session.execute(query)}


def comms(session: Session, site: str | None) -> dict[tuple[str, str], str]:
    """Each device's comm ("ok", "lost"), for the devices with a status row: all a state filter needs of every
    device, without the times that only the page's devices show."""
    d = DeviceStatus
    query = select(d.site, d.device, d.comm)
    if site is not None:
        query = query.where(d.site == site)
    return {(row.site, row.device): row.comm for row in session.execute(query)}


def device_state(comm: str | None, open_work_orders: int) -> DeviceState:
    """`comm`: None when the device was never heard from (no status row)."""
    if comm == "lost":
        return "comm_lost"
    if open_work_orders:
        return "fault"
    return "unknown" if comm is None else "ok"


def _public(site: Site, building: Building, device: Device, known: Heard | None, open_count: int) -> dict[str, Any]:
    return {
        "site": site.id,
        "building": building.id,
        "id": device.id,
        "kind": device.kind,
        "model": device.model,
        "role": device.role,
        "installed_on": device.installed_on,
        "registration_code": device.registration_code,
        "comm": "unknown" if known is None else "lost" if known.comm == "lost" else "ok",
        "comm_since": None if known is None else known.comm_since,
        "last_event_at": None if known is None else known.last_event_at,
        "last_event_type": None if known is None else known.last_event_type,
        "open_work_orders": open_count,
        "state": device_state(None if known is None else known.comm, open_count),
    }


# Devices per page: what a console shows at once; a whole city's register is tens of thousands.
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@router.get("/devices", response_model=DevicePagePublic)
async def list_devices(
    engine: EngineDep,
    database: DatabaseWorkDep,
    sites: SitesDep,
    user: PrincipalDep,
    site: Annotated[str | None, Query(max_length=64, description="only this site")] = None,
    building: Annotated[str | None, Query(max_length=64, description="only this building")] = None,
    kind: Annotated[DeviceKind | None, Query(description="only this kind of device")] = None,
    state: Annotated[
        list[DeviceState] | None,
        Query(description="only devices in any of these states (repeatable): ok, fault, comm_lost, unknown"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Response:
    """The devices of the site files (technicians: of their sites) with comm status and open work orders, a page
    at a time in the site files' order. The filters are decided from the site files and the status tables; only
    the page's devices are read with their asset updates and built into answers."""
    query = _DeviceQuery(site, building, kind, frozenset(state or ()), limit, offset)
    # One hop to the thread pool for the queries and the body together (see read_work_orders).
    body = await database.run(_device_page, engine, sites, user, query)
    return Response(body, media_type="application/json")


@dataclass(frozen=True)
class _DeviceQuery:
    site: str | None
    building: str | None
    kind: DeviceKind | None
    states: frozenset[DeviceState]
    limit: int
    offset: int


def _device_page(engine: Engine, sites: Sequence[Site], user: Principal, query: _DeviceQuery) -> bytes:
    """DevicePagePublic's JSON. The values are the site files' (checked when loaded) and the status tables', so
    they are written as they are, by pydantic-core's serializer, without building the models (as page_json does
    for work orders; tests/api/test_device_list_json.py compares the two)."""
    with Session(engine) as session:
        # With a state filter every device's state decides what matches: their comm and open work orders are
        # read for all; without one only the page's devices are read.
        comm = comms(session, query.site) if query.states else {}
        open_counts = open_work_order_counts(session, site=query.site) if query.states else {}
        page, total = _matching_page(sites, user, query, comm, open_counts)
        page_sites = sorted({each.id for each, _, _ in page})
        page_devices = {device.id for _, _, device in page}
        statuses = heard(session, page_sites, page_devices)
        if not query.states:
            open_counts = open_work_order_counts(session, sites=page_sites, devices=page_devices)
        updates = {site_id: stored_updates(session, site_id) for site_id in page_sites}
    items = []
    for each, bldg, device in page:
        shown = effective(device, updates[each.id].get(device.id)).device
        key = (each.id, device.id)
        items.append(_public(each, bldg, shown, statuses.get(key), open_counts.get(key, 0)))
    return to_json({"items": items, "total": total, "limit": query.limit, "offset": query.offset})


def _matching_page(
    sites: Sequence[Site],
    user: Principal,
    query: _DeviceQuery,
    comm: Mapping[tuple[str, str], str],
    open_counts: Mapping[tuple[str, str], int],
) -> tuple[list[tuple[Site, Building, Device]], int]:
    """The page of the devices matching the query, in the site files' order, and how many match in all. A building
    at a time: only the page's devices are taken out, the others only counted."""
    page: list[tuple[Site, Building, Device]] = []
    total, start, stop = 0, query.offset, query.offset + query.limit
    for each in sites:
        site_id = each.id
        if (query.site is not None and site_id != query.site) or not user.sees_site(site_id):
            continue
        for bldg in each.buildings:
            if query.building is not None and bldg.id != query.building:
                continue
            devices = bldg.devices if query.kind is None else [d for d in bldg.devices if d.kind == query.kind]
            if query.states:
                devices = [
                    d
                    for d in devices
                    if device_state(comm.get((site_id, d.id)), open_counts.get((site_id, d.id), 0)) in query.states
                ]
            if total < stop and total + len(devices) > start:
                page += [(each, bldg, d) for d in devices[max(0, start - total) : stop - total]]
            total += len(devices)
    return page, total


def last_heard(fields: dict[str, Any], latest_readings: LatestPublic | None) -> datetime | None:
    """The newer of the latest reading's time and the latest event's, leaving out a comm_lost (that is us noticing
    the silence, not the device speaking)."""
    times: list[datetime] = [] if latest_readings is None else [latest_readings.at]
    if fields["last_event_at"] is not None and fields["last_event_type"] != EventType.COMM_LOST.value:
        times.append(fields["last_event_at"])
    return max(times, default=None)


def _find(sites: Sequence[Site], user: Principal, site_id: str, device_id: str) -> tuple[Site, Building, Device]:
    site = next((s for s in sites if s.id == site_id), None)
    if site is None:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Device not found", f"no site {site_id!r}")
    if not user.sees_site(site.id):
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not yours to see", f"{user.username} does not work at {site_id}")
    for building, device in site.devices():
        if device.id == device_id:
            return site, building, device
    raise ProblemError(status.HTTP_404_NOT_FOUND, "Device not found", f"no device {device_id!r} at site {site_id!r}")


def _database_part(
    engine: Engine, site: Site, building: Building, device: Device, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The device's fields and its open work orders (WorkOrderSummaryPublic's fields), read as rows."""
    with Session(engine) as session:
        known = session.get(DeviceStatus, (site.id, device.id))
        device = effective_device(session, site.id, device).device
        page = list_work_order_rows(
            session,
            statuses=[s.value for s in OPEN_STATUSES],
            site=site.id,
            device=device.id,
            now=now,
            sort="urgency",
            limit=500,
        )
        fields = _public(site, building, device, known, page.total)
    summaries = [
        {name: row._mapping[name] for name in _SUMMARY_COLUMNS}
        | {"next_deadline": earliest_running(page.clocks[row.id], now)}
        for row in page.items
    ]
    return fields, summaries


_SUMMARY_COLUMNS = tuple(name for name in WorkOrderSummaryPublic.model_fields if name != "next_deadline")


@router.get("/devices/{site}/{device}", responses=_NOT_FOUND)
async def read_device(
    engine: EngineDep,
    database: DatabaseWorkDep,
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    influx: InfluxDep,
    site: SiteId,
    device: DeviceId,
) -> DeviceDetailPublic:
    """One device: the site file's data, comm status, open work orders and the latest value of each reading."""
    the_site, building, the_device = _find(sites, user, site, device)
    now = clock.now()
    # The queries run in a thread (one hop for all of them), so the event loop keeps serving.
    fields, work_orders = await database.run(_database_part, engine, the_site, building, the_device, now)
    latest_public: LatestPublic | None = None
    latest_error: str | None = None
    if influx is None:
        latest_error = "the API is not connected to InfluxDB"
    else:
        try:
            found = await latest(influx, the_device.kind.value, the_site.id, the_device.id)
        except InfluxUnavailable as exc:
            latest_error = str(exc)
        else:
            if found is None:
                latest_error = "no readings from this device in InfluxDB"
            else:
                latest_public = LatestPublic(
                    at=found.at,
                    fields={k: LatestValuePublic(value=v.value, at=v.at) for k, v in found.fields.items()},
                )
    return DeviceDetailPublic.model_validate(
        fields
        | {
            "description": the_device.description,
            "last_heard_at": last_heard(fields, latest_public),
            "work_orders": work_orders,
            "latest": latest_public,
            "latest_error": latest_error,
        }
    )


def _invalid(field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}])


def _time_range(from_: datetime | None, to: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    for name, value in (("from", from_), ("to", to)):
        if value is not None and not EARLIEST <= value < LATEST:
            raise _invalid(name, f"must be between {EARLIEST.year} and {LATEST.year}", str(value))
    end = to if to is not None else now
    start = from_ if from_ is not None else end - DEFAULT_RANGE
    if start >= end:
        if to is None:
            raise _invalid("from", "'from' must be before 'to' (default: now)", str(from_))
        raise _invalid("to", "'to' must be after 'from'", str(to))
    if end - start > MAX_RANGE:
        raise _invalid("from", f"the range may be at most {MAX_RANGE.days} days", str(from_))
    return start, end


@router.get(
    "/devices/{site}/{device}/history",
    responses={
        **_NOT_FOUND,
        status.HTTP_503_SERVICE_UNAVAILABLE: problem_response("InfluxDB is not configured or does not answer"),
    },
    response_model_by_alias=True,
)
async def read_device_history(
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    influx: InfluxDep,
    site: SiteId,
    device: DeviceId,
    field: Annotated[str, Query(min_length=1, max_length=64, description="a field of the device kind's readings")],
    from_: Annotated[Moment | None, Query(alias="from", description="default: 24 h before `to`")] = None,
    to: Annotated[Moment | None, Query(description="default: now")] = None,
    points: Annotated[int, Query(ge=1, le=2000, description="at most this many values")] = 300,
) -> HistoryPublic:
    """One field of the device over [from, to) (at most 90 days), downsampled to at most `points` buckets of
    whole seconds: numbers as mean, min and max per bucket; booleans and strings as the readings themselves
    when there are no more than `points`, else the last value per bucket."""
    the_site, _, the_device = _find(sites, user, site, device)
    start, end = _time_range(from_, to, clock.now())
    if influx is None:
        raise ProblemError(status.HTTP_503_SERVICE_UNAVAILABLE, "No InfluxDB", "the API is not connected to InfluxDB")
    measurement = the_device.kind.value
    try:
        types = await field_types(influx, measurement)
        if field not in types:
            known = ", ".join(sorted(types)) or "none yet"
            raise _invalid("field", f"{measurement} readings have no field {field!r}; fields: {known}", field)
        found = await history(influx, measurement, the_site.id, the_device.id, field, types[field], start, end, points)
    except InfluxUnavailable as exc:
        raise ProblemError(status.HTTP_503_SERVICE_UNAVAILABLE, "InfluxDB unavailable", str(exc)) from exc
    return HistoryPublic(
        site=the_site.id,
        device=the_device.id,
        field=field,
        type=found.type,
        from_=start,
        to=end,
        aggregation=found.aggregation,
        interval_s=found.interval_s,
        points=[HistoryPointPublic(at=p.at, value=p.value, min=p.min, max=p.max) for p in found.points],
    )
