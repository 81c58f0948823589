"""An elevator's asset data (installation, registration, certificate, maintainer and contract, inspection, major
repair, insurance): read it, and change it without editing the site file.

The site file is the baseline; changes made here are stored in the database (facmon.estate.asset_store) and laid over it
field by field: a PATCH changes only the fields it sends, and null clears one (insurance null: uninsured). The reports
use the result. Reading shows where each field came from: the site file, or the API with who and when.

Readable by everyone who reads the device register (technicians: at their sites); changed by admins and engineers,
each change in the audit log (`device.assets`, before and after).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.auth import ENGINEERING, AuditorDep, Principal, PrincipalDep
from api.deps import ClockDep, EngineDep, SitesDep
from api.routes.devices import DeviceId, SiteId
from api.schemas import ProblemError, _Public, problem_response
from facmon.estate.asset_store import ASSET_FIELDS, AssetData, AssetError, Effective, effective_device, update_assets
from facmon.estate.entries import Building, Device
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind

router = APIRouter(tags=["assets"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_403_FORBIDDEN: problem_response("not a site of the technician's, or a role that may not change it"),
    status.HTTP_404_NOT_FOUND: problem_response("no such site or device"),
}


class AssetSourcePublic(_Public):
    source: Literal["site_file", "api"]
    updated_by: str | None = None
    updated_at: datetime | None = None


class DeviceAssetsPublic(_Public):
    site: str
    building: str
    device: str
    assets: AssetData
    variety_code: str | None
    sources: dict[str, AssetSourcePublic]
    updated_at: datetime | None
    updated_by: str | None
    conflict: str | None


def _find(sites: Sequence[Site], user: Principal, site_id: str, device_id: str) -> tuple[Site, Building, Device]:
    site = next((s for s in sites if s.id == site_id), None)
    if site is None:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Device not found", f"no site {site_id!r}")
    if not user.sees_site(site.id):
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not yours to see", f"{user.username} does not work at {site_id}")
    for building, device in site.devices():
        if device.id == device_id:
            if device.kind != DeviceKind.ELEVATOR:
                raise _invalid(
                    ("path", "device"),
                    f"{device_id} is a {device.kind.value}; asset data is kept for elevators only",
                    device_id,
                )
            return site, building, device
    raise ProblemError(status.HTTP_404_NOT_FOUND, "Device not found", f"no device {device_id!r} at site {site_id!r}")


def _invalid(loc: tuple[str, ...], message: str, value: object) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message, "input": value}])


def _public(site: Site, building: Building, found: Effective) -> DeviceAssetsPublic:
    return DeviceAssetsPublic(
        site=site.id,
        building=building.id,
        device=found.device.id,
        assets=found.assets,
        variety_code=found.device.variety_code,
        sources={
            name: AssetSourcePublic(source=source.origin, updated_by=source.by, updated_at=source.at)
            for name, source in ((name, found.sources[name]) for name in ASSET_FIELDS)
        },
        updated_at=found.updated_at,
        updated_by=found.updated_by,
        conflict=found.conflict,
    )


@router.get("/devices/{site}/{device}/assets", responses=_RESPONSES)
def read_assets(
    engine: EngineDep, sites: SitesDep, user: PrincipalDep, site: SiteId, device: DeviceId
) -> DeviceAssetsPublic:
    """The elevator's effective asset data (the site file's with the API's changes over it) and each field's source."""
    the_site, building, the_device = _find(sites, user, site, device)
    with Session(engine) as session:
        return _public(the_site, building, effective_device(session, the_site.id, the_device))


@router.patch("/devices/{site}/{device}/assets", responses=_RESPONSES)
def change_assets(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    user: PrincipalDep,
    auditor: AuditorDep,
    site: SiteId,
    device: DeviceId,
    body: AssetData,
) -> DeviceAssetsPublic:
    """Change the fields sent (null clears one; the others keep their values), checked with the site file's rules:
    the variety agrees with the registration code, periods end after they start, the last major repair is not
    before the installation; and installation, inspection and repair are not in the future."""
    if user.role not in ENGINEERING:  # the router's policy says so too; asset data feeds the insurer's report
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Forbidden", f"{user.username} may not change asset data")
    the_site, building, the_device = _find(sites, user, site, device)
    now = clock.now()
    with Session(engine) as session:
        try:
            before, after = update_assets(
                session,
                the_site.id,
                the_device,
                body,
                body.model_fields_set,
                actor=user.actor,
                now=now,
                today=now.astimezone(the_site.tz).date(),
            )
        except AssetError as exc:
            loc = ("body", *exc.field.split(".")) if exc.field else ("body",)
            raise _invalid(loc, exc.message, body.model_dump(mode="json", include=body.model_fields_set)) from exc
        if body.model_fields_set:
            auditor.record(
                session,
                "device.assets",
                "device",
                f"{the_site.id}/{the_device.id}",
                before=before.assets.model_dump(mode="json"),
                after=after.assets.model_dump(mode="json"),
            )
            session.commit()
        return _public(the_site, building, after)
