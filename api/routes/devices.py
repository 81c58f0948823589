"""GET /devices: every device of the configured sites, with what the rules worker knows about it.

The device list comes from the site files (the source of truth for what exists); status and open work orders come
from the database, so a device that never sent an event still shows, with comm "unknown".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, SitesDep
from api.schemas import DevicePublic
from facmon.model import DeviceKind
from rules.store import device_statuses, open_work_order_counts

router = APIRouter(tags=["devices"])


@router.get("/devices")
def list_devices(
    session: SessionDep,
    sites: SitesDep,
    site: Annotated[str | None, Query(max_length=64, description="only this site")] = None,
    building: Annotated[str | None, Query(max_length=64, description="only this building")] = None,
    kind: Annotated[DeviceKind | None, Query(description="only this kind of device")] = None,
) -> list[DevicePublic]:
    statuses = device_statuses(session, site=site)
    open_counts = open_work_order_counts(session, site=site)
    devices: list[DevicePublic] = []
    for each in sites:
        if site is not None and each.id != site:
            continue
        for bldg, device in each.devices():
            if (building is not None and bldg.id != building) or (kind is not None and device.kind != kind):
                continue
            key = (each.id, device.id)
            known = statuses.get(key)
            devices.append(
                DevicePublic(
                    site=each.id,
                    building=bldg.id,
                    id=device.id,
                    kind=device.kind,
                    model=device.model,
                    role=device.role,
                    installed_on=device.installed_on,
                    registration_code=device.registration_code,
                    comm="unknown" if known is None else "lost" if known.comm == "lost" else "ok",
                    last_event_at=None if known is None else known.last_event_at,
                    last_event_type=None if known is None else known.last_event_type,
                    open_work_orders=open_counts.get(key, 0),
                )
            )
    return devices
