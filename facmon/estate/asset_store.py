"""Elevator asset data changed through the API, laid over the site file's.

The site file stays the baseline (facmon.estate.site, facmon.estate.assets). What is changed through the API
(PATCH /api/v1/devices/{site}/{device}/assets) is stored here, one row per device: the fields sent, as JSON, and who
sent each one when. The effective data is the site file's, field by field replaced by the stored values; a stored
null clears the field (insurance null: the elevator is uninsured whatever the site file says). Installation date and
registration code are devices' fields in the site file; they are overlaid the same way.

Updates are checked with the site file's own rules (the same pydantic models, then the whole device again, so the
variety agrees with the registration code and the last major repair is not before the installation), and a few more
that only make sense against today: an installation, inspection or repair is not in the future.

A site file edited later can disagree with a stored update (a new registration code of another variety than the
stored one): the device's stored updates are then set aside, the site file's data used, and the conflict reported
(the API's answer, the insurance report's notes) until someone sends a correction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from facmon.estate.assets import Inspection, Insurance, Maintainer, MajorRepair, Usage, VarietyCode, check_variety
from facmon.estate.entries import ELEVATOR_ASSET_FIELDS, CertificateNumber, Device, RegistrationCode
from facmon.estate.site import Site
from facmon.kernel.db import Base
from facmon.kernel.model import DeviceKind

# Every field the API may change, in the order they are shown.
ASSET_FIELDS = ("installed_on", "registration_code", *ELEVATOR_ASSET_FIELDS)
# Dates outside these years are typing mistakes, not assets.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199


class AssetData(BaseModel):
    """An elevator's asset data: what the insurer and the equipment ledger ask for. Every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    installed_on: date | None = None
    registration_code: RegistrationCode | None = None
    certificate: CertificateNumber | None = None
    variety: VarietyCode | None = None
    usage: Usage | None = None
    maintainer: Maintainer | None = None
    inspection: Inspection | None = None
    major_repair: MajorRepair | None = None
    insurance: Insurance | None = None


class DeviceAssets(Base):
    """The asset fields of one device changed through the API (absent fields: the site file's)."""

    __tablename__ = "device_assets"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    # {field: value as JSON, null to clear}: only the fields changed through the API.
    assets: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {field: {"by": who, "at": ISO time}}: who last changed each of them.
    sources: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(128))


class AssetError(ValueError):
    """An update that breaks a rule; `field` names it as the request does ("inspection.last"; "" for the whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Source:
    origin: Literal["site_file", "api"]
    by: str | None = None
    at: datetime | None = None


SITE_FILE = Source("site_file")


@dataclass(frozen=True)
class Effective:
    """A device with its effective asset data, and where each field came from."""

    device: Device
    sources: Mapping[str, Source]
    updated_at: datetime | None = None
    updated_by: str | None = None
    # Why the stored updates were set aside (they no longer fit the site file), else None.
    conflict: str | None = None

    @property
    def assets(self) -> AssetData:
        return asset_data(self.device)

    @property
    def from_api(self) -> list[str]:
        return [name for name in ASSET_FIELDS if self.sources[name].origin == "api"]


def asset_data(device: Device) -> AssetData:
    return AssetData.model_validate({name: getattr(device, name) for name in ASSET_FIELDS})


def _error_text(exc: ValidationError) -> str:
    return "; ".join(
        (".".join(str(p) for p in err["loc"]) + ": " if err["loc"] else "") + err["msg"].removeprefix("Value error, ")
        for err in exc.errors()
    )


def _overlay(device: Device, stored: Mapping[str, Any]) -> Device:
    """The device with `stored` (JSON values) over its site-file fields, checked as the site file is."""
    return Device.model_validate(device.model_dump(mode="json") | dict(stored))


def effective(device: Device, row: DeviceAssets | None) -> Effective:
    if row is None or not row.assets:
        return Effective(device, dict.fromkeys(ASSET_FIELDS, SITE_FILE))
    try:
        AssetData.model_validate(row.assets)  # each stored value still valid on its own
        merged = _overlay(device, row.assets)
    except ValidationError as exc:
        return Effective(
            device,
            dict.fromkeys(ASSET_FIELDS, SITE_FILE),
            row.updated_at,
            row.updated_by,
            conflict=f"the updates made through the API do not fit the site file ({_error_text(exc)}); "
            "the site file's data is used until they are corrected",
        )
    sources = {
        name: Source("api", row.sources.get(name, {}).get("by"), _when(row.sources.get(name, {}).get("at")))
        if name in row.assets
        else SITE_FILE
        for name in ASSET_FIELDS
    }
    return Effective(merged, sources, row.updated_at, row.updated_by)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def stored_updates(session: Session, site_id: str) -> dict[str, DeviceAssets]:
    rows = session.scalars(select(DeviceAssets).where(DeviceAssets.site == site_id))
    return {row.device: row for row in rows}


def effective_device(session: Session, site_id: str, device: Device) -> Effective:
    return effective(device, session.get(DeviceAssets, (site_id, device.id)))


def effective_site(session: Session, site: Site) -> tuple[Site, dict[str, Effective]]:
    """The site with every device's effective asset data; and, for devices with stored updates, their Effective."""
    rows = stored_updates(session, site.id)
    if not rows:
        return site, {}
    found: dict[str, Effective] = {}
    buildings = []
    for building in site.buildings:
        devices = []
        for device in building.devices:
            row = rows.get(device.id)
            if row is not None:
                found[device.id] = effective(device, row)
                device = found[device.id].device
            devices.append(device)
        buildings.append(building.model_copy(update={"devices": devices}))
    return site.model_copy(update={"buildings": buildings}), found


def _dates(prefix: str, value: Any) -> Iterable[tuple[str, date]]:
    if isinstance(value, date):
        yield prefix, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _dates(f"{prefix}.{name}", getattr(value, name))


# Things that happened: not after today.
_PAST = ("installed_on", "inspection.last", "major_repair.done_on")


def check_update(device: Device, changes: AssetData, sent: Iterable[str], today: date) -> Device:
    """The device with `changes` (only the fields in `sent`) over it, checked; AssetError names what is wrong."""
    sent = [name for name in ASSET_FIELDS if name in set(sent)]
    for name in sent:
        for where, day in _dates(name, getattr(changes, name)):
            if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
                raise AssetError(where, f"{day} is not a plausible date (years {EARLIEST_YEAR} to {LATEST_YEAR})")
            if where in _PAST and day > today:
                raise AssetError(where, f"{day} is in the future (today is {today})")
    values = {name: getattr(device, name) for name in ASSET_FIELDS} | {name: getattr(changes, name) for name in sent}
    try:
        check_variety(values["variety"], values["registration_code"])
    except ValueError as exc:
        blamed = "registration_code" if "registration_code" in sent and "variety" not in sent else "variety"
        raise AssetError(blamed, str(exc)) from exc
    repair, installed = values["major_repair"], values["installed_on"]
    if repair is not None and installed is not None and repair.done_on < installed:
        blamed = "installed_on" if "installed_on" in sent and "major_repair" not in sent else "major_repair.done_on"
        raise AssetError(blamed, f"the major repair ({repair.done_on}) is before the installation ({installed})")
    try:
        return _overlay(device, changes.model_dump(mode="json", include=set(sent)))
    except ValidationError as exc:  # a rule of the site file's not checked above
        raise AssetError("", _error_text(exc)) from exc


def update_assets(
    session: Session,
    site_id: str,
    device: Device,
    changes: AssetData,
    sent: Iterable[str],
    *,
    actor: str,
    now: datetime,
    today: date,
) -> tuple[Effective, Effective]:
    """Store the `sent` fields of `changes` for the device (in the caller's transaction); before and after.

    Checked against the effective data as it stands, so a partial update keeps the other fields and must agree with
    them. Raises AssetError (with the field) when the result would not be accepted in a site file, and for devices
    that are not elevators.
    """
    if device.kind != DeviceKind.ELEVATOR:
        raise AssetError("", f"{device.id} is a {device.kind.value}; asset data is kept for elevators only")
    sent = [name for name in ASSET_FIELDS if name in set(sent)]
    row = session.get(DeviceAssets, (site_id, device.id), with_for_update=True)
    before = effective(device, row)
    if not sent:
        return before, before
    # Over the stored updates when they fit the site file; over the site file alone when they no longer do.
    base = before.device if before.conflict is None else device
    check_update(base, changes, sent, today)
    stored = dict(row.assets) if row is not None and before.conflict is None else {}
    sources = dict(row.sources) if row is not None and before.conflict is None else {}
    stored |= changes.model_dump(mode="json", include=set(sent))
    sources |= {name: {"by": actor, "at": now.isoformat()} for name in sent}
    if row is None:
        row = DeviceAssets(site=site_id, device=device.id)
        session.add(row)
    row.assets, row.sources, row.updated_at, row.updated_by = stored, sources, now, actor
    return before, effective(device, row)
