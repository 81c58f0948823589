"""The elevator insurance report (DOMAIN.md "Elevator insurance report"): every elevator in service for the
threshold or longer (default 10 years) on the as-of date, with what an insurer asks for.

The "last 12 months" are the twelve months that end with the as-of day (site time). Where the figures come from:

- registration, certificate, variety, usage, installation, maintenance contract, inspection, major repair, policy:
  the site file (facmon.estate.assets) with the updates made through the API laid over it (facmon.estate.asset_store),
  so a
  policy added through the API counts from the next report; the notes say which fields came from the API;
- faults: the elevator's repair work orders detected in the 12 months, not cancelled (a cancellation is a false
  alarm), without `comm_lost` and `main_power_lost` (our link and the building's supply, not the lift);
  entrapments are those of fault `entrapment`. Response = acknowledged - detected, arrival = on site - detected;
- downtime: the time those work orders were open (detection to resolution, or, while still open, to the end of the
  period or now, whichever is earlier: a report only counts the past), overlaps counted once. The availability
  KPI's reading-based downtime needs a year of 1 s readings per car from InfluxDB, too heavy for this report;
- maintenance visits: the visits facmon records (rules.maintenance_visits: the car in inspection mode for long
  enough, or entered through the API) that started in the 12 months. The gaps run from the last visit before the 12
  months (else from their start) through each visit to the end of the as-of day (or now, when that is earlier); the
  longest is held against the 15-day cycle (a gap of exactly 15 days is in time), and the cycles missed are the
  visits lacking for every gap to be at most 15 days;
- open defects: the elevator's work orders (any category) detected by the end of the as-of day (or now) and neither
  resolved nor cancelled by then.

Elevators without a policy in force on the as-of date come first (no policy, then an expired one), then the oldest.
The report's models are in facmon.reports.insurance_models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from facmon.estate.asset_store import Effective, effective_site
from facmon.estate.assets import VARIETIES
from facmon.estate.entries import Building, Device
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from facmon.reports.availability import intersect, merge, seconds
from facmon.reports.common import completed_years, local_midnight, minutes, months_between, years_before
from facmon.reports.insurance_models import (
    ElevatorEntry,
    Incident,
    InspectionStatus,
    InsuranceReport,
    InsuranceStatus,
    InsuranceSummary,
    MonthFaults,
    OpenDefect,
)
from facmon.workorders.tables import Category, WorkOrder, WorkOrderStatus
from rules.maintenance_models import MaintenanceVisit

DEFAULT_THRESHOLD_YEARS = 10
MAINTENANCE_CYCLE_DAYS = 15
MAINTENANCE_CYCLE = timedelta(days=MAINTENANCE_CYCLE_DAYS)
ENTRAPMENT = "entrapment"
# Work orders on an elevator that are not the lift's own faults.
NOT_LIFT_FAULTS = frozenset({"comm_lost", "main_power_lost"})
VISITS_BASIS = (
    "maintenance visits: those recorded by facmon (the car in inspection mode for long enough, 10 min by default, "
    "or entered through the API) that started in the 12 months; gaps run from the last visit before them (else their "
    "start) to the end of the as-of day, or now when earlier; cycles missed: visits lacking for no gap to exceed "
    f"{MAINTENANCE_CYCLE_DAYS} days"
)
DOWNTIME_BASIS = (
    "downtime: time the elevator's fault work orders were open (detection to resolution; one still open counts up "
    "to the end of the as-of day or now, whichever is earlier)"
)


def _insurance(device: Device, as_of: date) -> InsuranceStatus:
    if device.insurance is None:
        return "uninsured"
    return "insured" if device.insurance.in_force(as_of) else "expired"


def _inspection(device: Device, as_of: date) -> tuple[InspectionStatus, int | None]:
    if device.inspection is None:
        return "not given", None
    days_left = (device.inspection.valid_until - as_of).days
    return ("valid" if days_left >= 0 else "expired"), days_left


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


@dataclass(frozen=True)
class VisitFigures:
    visits: int
    longest_gap: timedelta
    cycles_missed: int
    last: datetime | None


def visit_figures(visits: Sequence[datetime], before: datetime | None, start: datetime, end: datetime) -> VisitFigures:
    """The visits that started in [start, end), the longest gap and the cycles missed, counting from `before` (the last
    visit before the period) or else from `start`, to `end`. Pure."""
    inside = sorted(t for t in visits if start <= t < end)
    marks = [before if before is not None else start, *inside, end]
    gaps = [b - a for a, b in pairwise(marks)]
    # A gap of up to one cycle needs no visit inside it; up to two cycles, one; and so on.
    missed = sum(max(0, -(-gap // MAINTENANCE_CYCLE) - 1) for gap in gaps)
    last = inside[-1] if inside else before
    return VisitFigures(visits=len(inside), longest_gap=max(gaps), cycles_missed=missed, last=last)


def _incident(wo: WorkOrder) -> Incident:
    return Incident(
        work_order_id=wo.id,
        fault=wo.fault,
        title=wo.title,
        entrapment=wo.fault == ENTRAPMENT,
        status=wo.status,
        detected_at=wo.detected_at,
        response_min=minutes(wo.acknowledged_at, wo.detected_at),
        arrival_min=minutes(wo.on_site_at, wo.detected_at),
        resolved_at=wo.resolved_at,
    )


def _fault_fields(orders: Sequence[WorkOrder], start: datetime, end: datetime) -> dict[str, Any]:
    """The lift's faults detected in [start, end): incidents, entrapments, response, arrival and downtime."""
    faults = [
        wo
        for wo in orders
        if wo.category == Category.REPAIR
        and wo.fault not in NOT_LIFT_FAULTS
        and wo.status != WorkOrderStatus.CANCELLED
        and start <= wo.detected_at < end
    ]
    faults.sort(key=lambda wo: (wo.detected_at, wo.id))
    incidents = [_incident(wo) for wo in faults]
    responses = [i.response_min for i in incidents if i.response_min is not None]
    arrivals = [i.arrival_min for i in incidents if i.arrival_min is not None]
    down = intersect([(wo.detected_at, wo.resolved_at or end) for wo in faults], [(start, end)])
    return {
        "faults": len(incidents),
        "entrapments": sum(i.entrapment for i in incidents),
        "response_mean_min": _mean(responses),
        "response_max_min": max(responses, default=None),
        "arrival_mean_min": _mean(arrivals),
        "arrival_max_min": max(arrivals, default=None),
        "arrivals_within_20_min": sum(a <= 20 for a in arrivals),
        "arrivals_within_30_min": sum(a <= 30 for a in arrivals),
        "downtime_hours": round(seconds(merge(down)) / 3600.0, 2),
        "incidents": incidents,
    }


def _open_defects(orders: Sequence[WorkOrder], end: datetime) -> list[OpenDefect]:
    """Work orders (any category) detected before `end` and neither resolved nor cancelled by then."""
    return [
        OpenDefect(work_order_id=wo.id, title=wo.title, status=_status_at(wo, end), detected_at=wo.detected_at)
        for wo in sorted(orders, key=lambda wo: (wo.detected_at, wo.id))
        if wo.detected_at < end
        and (wo.resolved_at is None or wo.resolved_at >= end)
        and (wo.cancelled_at is None or wo.cancelled_at >= end)
    ]


def _visit_fields(visits: VisitFigures, start: datetime, end: datetime, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "maintenance_visits": visits.visits,
        "maintenance_visits_required": (end - start).days // MAINTENANCE_CYCLE_DAYS,
        "longest_visit_gap_days": round(visits.longest_gap / timedelta(days=1), 1),
        "maintenance_cycles_missed": visits.cycles_missed,
        "last_visit_on": None if visits.last is None else visits.last.astimezone(tz).date(),
        "maintenance_cycle_met": visits.longest_gap <= MAINTENANCE_CYCLE,
    }


def _asset_fields(building: Building, device: Device, installed_on: date, as_of: date) -> dict[str, Any]:
    """What the site file (with the updates made through the API) says of the elevator, as of `as_of`."""
    inspection_status, days_left = _inspection(device, as_of)
    maintainer, contract = device.maintainer, device.maintainer.contract if device.maintainer else None
    variety, inspection, repair, insurance = (
        device.variety_code,
        device.inspection,
        device.major_repair,
        device.insurance,
    )
    return {
        "device": device.id,
        "building": building.id,
        "building_name": building.name,
        "role": device.role,
        "registration_code": device.registration_code,
        "certificate": device.certificate,
        "variety_code": variety,
        "variety": VARIETIES.get(variety) if variety else None,
        "usage": device.usage.value if device.usage else None,
        "installed_on": installed_on,
        "age_years": completed_years(installed_on, as_of),
        "maintenance_company": maintainer.company if maintainer else None,
        "contract_number": contract.number if contract else None,
        "contract_start": contract.start if contract else None,
        "contract_end": contract.end if contract else None,
        "contract_in_force": contract.in_force(as_of) if contract else None,
        "inspection_last": inspection.last if inspection else None,
        "inspection_valid_until": inspection.valid_until if inspection else None,
        "inspection_status": inspection_status,
        "inspection_days_left": days_left,
        "major_repair_on": repair.done_on if repair else None,
        "major_repair": repair.description if repair else None,
        "insurance_status": _insurance(device, as_of),
        "insurer": insurance.insurer if insurance else None,
        "policy": insurance.policy if insurance else None,
        "policy_expires": insurance.expires if insurance else None,
    }


def _entry(
    building: Building,
    device: Device,
    installed_on: date,
    as_of: date,
    period: tuple[datetime, datetime, datetime],
    orders: Sequence[WorkOrder],
    visits: VisitFigures,
    tz: ZoneInfo,
) -> ElevatorEntry:
    """`period`: the 12 months' start and end, and `until`, the earlier of their end and now."""
    start, end, until = period
    return ElevatorEntry(
        **_asset_fields(building, device, installed_on, as_of),
        **_visit_fields(visits, start, end, tz),
        **_fault_fields(orders, start, until),
        open_defects=_open_defects(orders, until),
    )


def _visits(session: Session, site: str, ids: Sequence[str], start: datetime, end: datetime) -> dict[str, VisitFigures]:
    """Each elevator's visit figures, from the visits table."""
    inside: dict[str, list[datetime]] = {i: [] for i in ids}
    query = select(MaintenanceVisit.device, MaintenanceVisit.started_at).where(
        MaintenanceVisit.site == site,
        MaintenanceVisit.device.in_(ids),
        MaintenanceVisit.started_at >= start,
        MaintenanceVisit.started_at < end,
    )
    for device, started_at in session.execute(query):
        inside[device].append(started_at)
    last_before = (
        select(MaintenanceVisit.device, func.max(MaintenanceVisit.started_at))
        .where(MaintenanceVisit.site == site, MaintenanceVisit.device.in_(ids), MaintenanceVisit.started_at < start)
        .group_by(MaintenanceVisit.device)
    )
    # The aggregate comes back as the database's own type; on SQLite naive UTC text.
    before = {device: _utc(at) for device, at in session.execute(last_before)}
    return {i: visit_figures(inside[i], before.get(i), start, end) for i in ids}


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _status_at(wo: WorkOrder, end: datetime) -> str:
    """The work order's status at `end` (it may have moved on since)."""
    for status, at in (
        (WorkOrderStatus.ON_SITE, wo.on_site_at),
        (WorkOrderStatus.ACKNOWLEDGED, wo.acknowledged_at),
    ):
        if at is not None and at < end:
            return status.value
    return WorkOrderStatus.OPEN.value


_ORDER: dict[InsuranceStatus, int] = {"uninsured": 0, "expired": 1, "insured": 2}


def _orders(
    session: Session, site: str, ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[WorkOrder]]:
    """Each elevator's work orders detected in the period, or possibly still open at its end."""
    query = select(WorkOrder).where(
        WorkOrder.site == site,
        WorkOrder.device.in_(ids),
        WorkOrder.detected_at < end,
        or_(WorkOrder.detected_at >= start, WorkOrder.resolved_at.is_(None), WorkOrder.resolved_at >= end),
    )
    by_device: dict[str, list[WorkOrder]] = {i: [] for i in ids}
    for wo in session.execute(query).scalars():
        by_device[wo.device].append(wo)
    return by_device


def _per_month(entries: Sequence[ElevatorEntry], start: datetime, end: datetime, tz: ZoneInfo) -> list[MonthFaults]:
    faults: Counter[str] = Counter()
    entrapments: Counter[str] = Counter()
    for entry in entries:
        for incident in entry.incidents:
            month = incident.detected_at.astimezone(tz).strftime("%Y-%m")
            faults[month] += 1
            entrapments[month] += incident.entrapment
    return [MonthFaults(month=m, faults=faults[m], entrapments=entrapments[m]) for m in months_between(start, end, tz)]


def _summary(elevators: int, entries: Sequence[ElevatorEntry]) -> InsuranceSummary:
    return InsuranceSummary(
        elevators=elevators,
        over_threshold=len(entries),
        uninsured=sum(e.insurance_status != "insured" for e in entries),
        inspection_expired=sum(e.inspection_status == "expired" for e in entries),
        faults=sum(e.faults for e in entries),
        entrapments=sum(e.entrapments for e in entries),
    )


def _notes(site: Site, as_of: date, threshold_years: int, start: datetime, end: datetime) -> list[str]:
    tz = site.tz
    return [
        f"last 12 months: {start.astimezone(tz):%Y-%m-%d %H:%M} to {end.astimezone(tz):%Y-%m-%d %H:%M} "
        f"({site.site.timezone})",
        f"age in completed years on {as_of}, from the installation date; threshold {threshold_years} years",
        "faults: repair work orders not cancelled, without comm_lost and main_power_lost; entrapments: fault "
        "'entrapment'; response = acknowledged - detected, arrival = on site - detected",
        DOWNTIME_BASIS,
        VISITS_BASIS,
        "uninsured: no policy (in the site file or the updates made through the API), or the policy expired "
        "before the as-of date",
    ]


def insurance_report(
    session: Session,
    site: Site,
    as_of: date,
    now: datetime,
    threshold_years: int = DEFAULT_THRESHOLD_YEARS,
) -> InsuranceReport:
    if threshold_years < 0:
        raise ValueError("the age threshold cannot be negative")
    site, updated = effective_site(session, site)
    tz = site.tz
    end = local_midnight(as_of + timedelta(days=1), tz)
    start = local_midnight(years_before(as_of + timedelta(days=1), 1), tz)
    elevators = [(b, d) for b, d in site.devices() if d.kind == DeviceKind.ELEVATOR]
    chosen = [
        (b, d, d.installed_on)
        for b, d in elevators
        if d.installed_on is not None and completed_years(d.installed_on, as_of) >= threshold_years
    ]
    ids = [d.id for _, d, _ in chosen]
    # A report only counts the past: what is still open is counted up to now when the as-of day has not ended.
    until = max(start, min(end, now))
    by_device = _orders(session, site.id, ids, start, until)
    visits = _visits(session, site.id, ids, start, until)
    entries = [
        _entry(b, d, installed, as_of, (start, end, until), by_device[d.id], visits[d.id], tz)
        for b, d, installed in chosen
    ]
    entries.sort(key=lambda e: (_ORDER[e.insurance_status], -e.age_years, e.device))
    return InsuranceReport(
        site=site.id,
        site_name=site.site.name or site.id,
        timezone=site.site.timezone,
        as_of=as_of,
        threshold_years=threshold_years,
        period_start=start,
        period_end=end,
        generated_at=now,
        summary=_summary(len(elevators), entries),
        elevators=entries,
        no_installation_date=[d.id for _, d in elevators if d.installed_on is None],
        faults_per_month=_per_month(entries, start, end, tz),
        notes=[*_notes(site, as_of, threshold_years, start, end), *_update_notes(updated)],
    )


def _update_notes(updated: dict[str, Effective]) -> list[str]:
    """Which elevators' asset data came from the API rather than the site file, by whom and when."""
    notes: list[str] = []
    for device_id, found in sorted(updated.items()):
        if found.conflict is not None:
            notes.append(f"{device_id}: {found.conflict}")
            continue
        fields = [
            f"{name} ({source.by}, {source.at:%Y-%m-%d})" if source.by and source.at else name
            for name, source in found.sources.items()
            if source.origin == "api"
        ]
        if fields:
            notes.append(f"{device_id}: asset data updated through the API: {', '.join(fields)}")
    return notes
