"""Elevator maintenance visits (半月保养, TSG T5002: at least every 15 days): record one by hand, list an elevator's.

The rules worker records visits from the site itself (the car in inspection mode for long enough,
rules.maintenance_visits); this is for the visits it could not see (a controller without service-mode reporting, a
link down). A visit recorded here moves the elevator's 15-day cycle on and resolves its open `maintenance_overdue`
work order, as one seen from the site does.

Admins, engineers and technicians (at their sites) record; the principal is the visit's actor, and a technician
recording one is its technician unless they name another of the site's. Every recorded visit is in the audit log
(`maintenance_visit.create`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field, StringConstraints
from sqlalchemy.orm import Session

from api.auth import FIELD_WORK, AuditorDep, Principal, PrincipalDep
from api.deps import ClockDep, EngineDep, SitesDep
from api.routes.devices import DeviceId, SiteId
from api.routes.devices import _find as find_device
from api.schemas import Moment, Note, Offset, ProblemError, _Create, _Public, problem_response
from facmon.estate.entries import Building, Device
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from rules.maintenance_models import VisitSource
from rules.maintenance_visits import list_visits, record_visit

router = APIRouter(tags=["maintenance"])

# A visit entered by hand longer than this is a typing mistake.
MAX_VISIT = timedelta(hours=24)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_403_FORBIDDEN: problem_response("not a site of the technician's"),
    status.HTTP_404_NOT_FOUND: problem_response("no such site or device"),
}

TechnicianId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class MaintenanceVisitCreate(_Create):
    started_at: Moment = Field(description="when the maintenance began (the car put in inspection)")
    ended_at: Moment | None = Field(default=None, description="when it ended; default now")
    technician: TechnicianId | None = Field(
        default=None, description="the technician (id in the site file) who did it; default: the caller, if one"
    )
    note: Note | None = None


class MaintenanceVisitPublic(_Public):
    id: int
    site: str
    building: str
    device: str
    started_at: datetime
    ended_at: datetime
    technician: str | None
    source: VisitSource
    actor: str | None
    note: str | None
    recorded_at: datetime


def _invalid(field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}])


def _elevator(sites: Sequence[Site], user: Principal, site: str, device: str) -> tuple[Site, Building, Device]:
    the_site, building, the_device = find_device(sites, user, site, device)
    if the_device.kind != DeviceKind.ELEVATOR:
        error = {
            "type": "value_error",
            "loc": ("path", "device"),
            "msg": f"{device} is a {the_device.kind.value}; maintenance visits are kept for elevators only",
            "input": device,
        }
        raise RequestValidationError([error])
    return the_site, building, the_device


@router.post("/devices/{site}/{device}/maintenance-visits", status_code=status.HTTP_201_CREATED, responses=_RESPONSES)
def create_maintenance_visit(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    auditor: AuditorDep,
    site: SiteId,
    device: DeviceId,
    body: MaintenanceVisitCreate,
) -> MaintenanceVisitPublic:
    """Record a maintenance visit of the elevator by hand: it ends when given (default now), not in the future, after
    it starts and at most 24 h later. The technician must be one of the site's."""
    if user.role not in FIELD_WORK:  # the router's policy says so too
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Forbidden", f"{user.username} may not record visits")
    the_site, building, the_device = _elevator(sites, user, site, device)
    now = clock.now()
    ended = body.ended_at or now
    if ended > now:
        raise _invalid("ended_at", "a visit cannot end in the future", str(ended))
    if body.started_at > ended:
        raise _invalid("started_at", "a visit cannot start after it ends", str(body.started_at))
    if ended - body.started_at > MAX_VISIT:
        raise _invalid("started_at", "a visit lasts at most 24 hours", str(body.started_at))
    technician = body.technician or user.technician
    if technician is not None and not any(t.id == technician for t in the_site.technicians):
        raise _invalid("technician", f"{technician!r} is not a technician of {the_site.id}", technician)
    visit = record_visit(
        engine,
        site=the_site.id,
        building=building.id,
        device=the_device.id,
        started_at=body.started_at,
        ended_at=ended,
        technician=technician,
        source=VisitSource.API,
        actor=user.actor,
        note=body.note,
        now=now,
    )
    public = MaintenanceVisitPublic.model_validate(visit)
    auditor.record_now(
        engine,
        "maintenance_visit.create",
        "maintenance_visit",
        public.id,
        after=public.model_dump(mode="json"),
    )
    return public


@router.get("/devices/{site}/{device}/maintenance-visits", responses=_RESPONSES)
def read_maintenance_visits(
    engine: EngineDep,
    sites: SitesDep,
    user: PrincipalDep,
    site: SiteId,
    device: DeviceId,
    from_: Annotated[Moment | None, Query(alias="from", description="visits that started at or after")] = None,
    to: Annotated[Moment | None, Query(description="visits that started before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[MaintenanceVisitPublic]:
    """The elevator's maintenance visits, newest first: from inspection mode and entered by hand."""
    the_site, _, the_device = _elevator(sites, user, site, device)
    with Session(engine) as session:
        found = list_visits(
            session, site=the_site.id, device=the_device.id, since=from_, until=to, limit=limit, offset=offset
        )
        return [MaintenanceVisitPublic.model_validate(v) for v in found]
