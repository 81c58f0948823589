"""The fire panels' commissioned points (rules.fire_point_store): list them with what each panel last reported, and
decommission one that is no longer there (or undo that), so that it leaves the fire equipment intact rate.

A point counts in the intact rate from when the site file lists it or its panel first reports it until a person
decommissions it (docs/kpis.md). Readable by everyone who reads operational data and reports (technicians: at their
sites); decommissioning and recommissioning are for engineers and admins, with a reason, each in the audit log
(`fire_point.decommission`, `fire_point.recommission`: who, when, the reason, before and after). The rules worker
reads the change back within seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import Field, StringConstraints
from sqlalchemy.orm import Session

from api.auth import ENGINEERING, Auditor, AuditorDep, Principal, PrincipalDep
from api.deps import ClockDep, EngineDep, SitesDep
from api.routes.devices import DeviceId, SiteId
from api.schemas import ProblemError, _Create, _Public, problem_response
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from rules.fire_point_store import (
    PointConflict,
    PointNotFound,
    add_listed_points,
    decommission,
    list_points,
    recommission,
)
from rules.tables import FirePoint, FirePointSource

router = APIRouter(prefix="/fire-points", tags=["fire points"])

PointId = Annotated[str, Path(pattern=r"^\d{1,2}-\d{3}$", description="loop-address, e.g. 1-023")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_403_FORBIDDEN: problem_response("not a site of the technician's, or a role that may not change it"),
    status.HTTP_404_NOT_FOUND: problem_response("no such site, fire panel or point"),
}
_CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_RESPONSES,
    status.HTTP_409_CONFLICT: problem_response("the point is decommissioned already, or commissioned already"),
}


class FirePointPublic(_Public):
    site: str
    device: str
    point: str
    source: FirePointSource = Field(
        description="site_file: listed in the site file; reported: first reported by the panel"
    )
    first_seen_at: datetime = Field(description="when the point entered the point table")
    reported_at: datetime | None = Field(description="the panel's first report of it; null: never reported")
    state: str | None = Field(
        description="what the panel last reported: normal, fire, supervisory, fault, disabled, active, or absent"
    )
    intact: bool | None = Field(description="that state is present and neither in fault nor disabled")
    state_since: datetime | None
    heard_at: datetime | None = Field(
        description="the latest reading of the point (the gateway repeats it each minute)"
    )
    commissioned: bool = Field(description="counts in the intact rate")
    decommissioned_at: datetime | None
    decommissioned_by: str | None
    decommission_reason: str | None


class FirePointsPublic(_Public):
    site: str
    device: str | None
    commissioned: int = Field(description="points counted in the intact rate (the denominator)")
    decommissioned: int
    items: list[FirePointPublic]


class CommissioningChange(_Create):
    reason: Reason = Field(description="why: e.g. 'detector removed with the kitchen refit, work order 812'")


def _public(row: FirePoint) -> FirePointPublic:
    return FirePointPublic.model_validate(
        {**{c: getattr(row, c) for c in FirePointPublic.model_fields if c != "commissioned"},
         "commissioned": row.decommissioned_at is None}
    )  # fmt: skip


def _site(sites: Sequence[Site], user: Principal, site_id: str) -> Site:
    site = next((s for s in sites if s.id == site_id), None)
    if site is None:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Site not found", f"no site {site_id!r}")
    if not user.sees_site(site.id):
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not yours to see", f"{user.username} does not work at {site_id}")
    return site


def _panel(site: Site, device_id: str) -> None:
    for _, device in site.devices():
        if device.id == device_id and device.kind == DeviceKind.FIRE_PANEL:
            return
    raise ProblemError(status.HTTP_404_NOT_FOUND, "Fire panel not found", f"no fire panel {device_id!r} at {site.id}")


def _engineering(user: Principal) -> None:
    if user.role not in ENGINEERING:  # the router's policy says so too
        raise ProblemError(
            status.HTTP_403_FORBIDDEN, "Forbidden", f"{user.username} may not change the commissioned fire points"
        )


@router.get("/{site}", responses=_RESPONSES)
def read_fire_points(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    site: SiteId,
    device: Annotated[str | None, Query(max_length=64, description="one fire panel")] = None,
    commissioned: Annotated[
        bool | None, Query(description="only commissioned (true) or decommissioned (false)")
    ] = None,
) -> FirePointsPublic:
    """The point table of the site's fire panels (or of one), with what each panel last reported of each point."""
    the_site = _site(sites, user, site)
    if device is not None:
        _panel(the_site, device)
    with Session(engine) as session:
        # The site file's points are in the table even before the rules worker has started with it.
        add_listed_points(session, the_site, clock.now())
        session.commit()
        rows = list_points(session, the_site.id, device)
    items = [_public(r) for r in rows]
    shown = [p for p in items if commissioned is None or p.commissioned == commissioned]
    counted = sum(p.commissioned for p in items)
    return FirePointsPublic(
        site=the_site.id, device=device, commissioned=counted, decommissioned=len(items) - counted, items=shown
    )


@router.get("/{site}/{device}/{point}", responses=_RESPONSES)
def read_fire_point(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    site: SiteId,
    device: DeviceId,
    point: PointId,
) -> FirePointPublic:
    the_site = _site(sites, user, site)
    _panel(the_site, device)
    with Session(engine) as session:
        add_listed_points(session, the_site, clock.now())
        session.commit()
        row = session.get(FirePoint, (the_site.id, device, point))
        if row is None:
            raise ProblemError(status.HTTP_404_NOT_FOUND, "Point not found", f"no point {point} on {site}/{device}")
        return _public(row)


@router.post("/{site}/{device}/{point}/decommission", responses=_CHANGE_RESPONSES)
def decommission_point(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    auditor: AuditorDep,
    site: SiteId,
    device: DeviceId,
    point: PointId,
    body: CommissioningChange,
) -> FirePointPublic:
    """Take a point out of the intact rate from now on (it is gone for good: a detector removed, an address
    re-used); the audit log keeps who, when and why."""
    _engineering(user)
    the_site = _site(sites, user, site)
    _panel(the_site, device)
    now = clock.now()
    with Session(engine) as session:
        add_listed_points(session, the_site, now)
        try:
            row, change = decommission(
                session, the_site.id, device, point, actor=user.actor, reason=body.reason, now=now
            )
        except (PointNotFound, PointConflict) as exc:
            raise _refused(exc, "Decommissioned already") from exc
        return _recorded(session, auditor, "fire_point.decommission", row, change.before, change.after)


@router.post("/{site}/{device}/{point}/recommission", responses=_CHANGE_RESPONSES)
def recommission_point(
    engine: EngineDep,
    sites: SitesDep,
    user: PrincipalDep,
    auditor: AuditorDep,
    site: SiteId,
    device: DeviceId,
    point: PointId,
    body: CommissioningChange,
) -> FirePointPublic:
    """Count a decommissioned point again (undo); the audit log keeps who, when and why."""
    _engineering(user)
    the_site = _site(sites, user, site)
    _panel(the_site, device)
    with Session(engine) as session:
        try:
            row, change = recommission(session, the_site.id, device, point)
        except (PointNotFound, PointConflict) as exc:
            raise _refused(exc, "Commissioned already") from exc
        after = {**change.after, "reason": body.reason}
        return _recorded(session, auditor, "fire_point.recommission", row, change.before, after)


def _refused(exc: PointNotFound | PointConflict, conflict: str) -> ProblemError:
    """A change the point table refused: 404 for a point it does not have, 409 (titled `conflict`) for one already
    in the state asked for."""
    if isinstance(exc, PointNotFound):
        return ProblemError(status.HTTP_404_NOT_FOUND, "Point not found", str(exc))
    return ProblemError(status.HTTP_409_CONFLICT, conflict, str(exc))


def _recorded(
    session: Session, auditor: Auditor, action: str, row: FirePoint, before: dict[str, Any], after: dict[str, Any]
) -> FirePointPublic:
    """The change committed with its audit entry (one transaction), and the point as it now stands."""
    auditor.record(session, action, "fire_point", f"{row.site}/{row.device}/{row.point}", before=before, after=after)
    public = _public(row)
    session.commit()
    return public
