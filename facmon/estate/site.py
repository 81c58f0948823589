"""The site file: one YAML file describes one estate — buildings and their devices, and the technicians who work there.

Everything is validated at load, and every problem of the file is reported at once, each as 'file:line: entry: what
is wrong'. Entries are validated one by one, so a wrong entry does not keep the checks across entries
(facmon.estate.site_checks) from looking at the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from facmon.estate.entries import Building, Device, SiteInfo, Technician, VendorBroker
from facmon.estate.maintenance import Maintenance
from facmon.estate.rota import Contact, ContactRef, OnCallPlan, Override, Rotation
from facmon.estate.site_checks import SiteEntries, site_problems
from facmon.kernel.datafile import (
    DEFER_CHECKS,
    DataFileError,
    checks_deferred,
    located,
    raise_problems,
    read_document,
    repeated_keys,
    validation_problems,
)
from facmon.kernel.model import DeviceRef, Discipline
from facmon.kernel.yaml_lines import Loc


class SiteFileError(ValueError):
    """A site file that cannot be used; `problems` lists each one as 'file:line: entry: what is wrong'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: SiteInfo
    # The broker the site's MQTT devices publish to; None: the backbone broker the gateway publishes to.
    mqtt: VendorBroker | None = None
    buildings: list[Building] = Field(min_length=1)
    technicians: list[Technician] = Field(default_factory=list)
    # The escalation chain behind whoever is on call (facmon.estate.rota).
    supervisor: ContactRef | None = None
    manager: ContactRef | None = None
    on_call: OnCallPlan = Field(default_factory=OnCallPlan)
    # Planned work that silences routine alerts (facmon.estate.maintenance).
    maintenance: list[Maintenance] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Site:
        if not checks_deferred(info):
            raise_problems(site_problems(self.entries()))
        return self

    def entries(self) -> SiteEntries:
        """The site's entries, each with its place in a site file, for the checks across them."""
        contacts: list[tuple[Loc, str | Contact | None]] = [
            (("supervisor",), self.supervisor),
            (("manager",), self.manager),
        ]
        return SiteEntries(
            devices=self.located_devices(),
            technicians=[(("technicians", i), t) for i, t in enumerate(self.technicians)],
            contacts=[(loc, ref) for loc, ref in contacts if ref is not None],
            rotations=[(("on_call", *loc), d, r) for loc, d, r in self.on_call.located_rotations()],
            overrides=[(("on_call", *loc), o) for loc, o in self.on_call.located_overrides()],
            maintenance=[(("maintenance", i), m) for i, m in enumerate(self.maintenance)],
            building_ids={b.id for b in self.buildings},
            building_of={d.id: b.id for b, d in self.devices()},
            technician_ids={t.id for t in self.technicians},
        )

    def located_devices(self) -> list[tuple[Loc, Device]]:
        """Each device with its place in a site file: ('buildings', 0, 'devices', 2)."""
        return [
            (("buildings", i, "devices", j), device)
            for i, building in enumerate(self.buildings)
            for j, device in enumerate(building.devices)
        ]

    @property
    def id(self) -> str:
        return self.site.id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)

    def devices(self) -> Iterator[tuple[Building, Device]]:
        for building in self.buildings:
            for device in building.devices:
                yield building, device

    def device(self, device_id: str) -> Device:
        for _, device in self.devices():
            if device.id == device_id:
                return device
        raise KeyError(device_id)

    def technician(self, technician_id: str) -> Technician:
        for technician in self.technicians:
            if technician.id == technician_id:
                return technician
        raise KeyError(technician_id)

    def technician_with_card(self, card: str) -> Technician | None:
        card = card.upper()
        return next((t for t in self.technicians if card in t.cards), None)

    def ref(self, device_id: str) -> DeviceRef:
        for building, device in self.devices():
            if device.id == device_id:
                return DeviceRef(
                    site=self.id,
                    building=building.id,
                    device=device.id,
                    kind=device.kind,
                    model=device.model,
                    role=device.role,
                )
        raise KeyError(device_id)


_CONTACT: TypeAdapter[Any] = TypeAdapter(ContactRef)


def _valid(model: type[BaseModel] | TypeAdapter[Any], value: Any) -> Any:
    """`value` validated on its own, or None; what is wrong with it is reported by validating the whole file."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(value, context=DEFER_CHECKS)
        return model.model_validate(value, context=DEFER_CHECKS)
    except ValidationError:
        return None


def _items(raw: Any, key: str) -> list[tuple[int, Any]]:
    section = raw.get(key) if isinstance(raw, dict) else None
    return list(enumerate(section)) if isinstance(section, list) else []


def _written_id(raw: Any) -> str | None:
    return raw["id"] if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None


def _entries_of(raw: dict[str, Any]) -> SiteEntries:
    """The file's entries, each validated on its own: a wrong one leaves the others to be checked across."""
    entries = SiteEntries()
    for i, building in _items(raw, "buildings"):
        building_id = _written_id(building)
        if building_id is not None:
            entries.building_ids.add(building_id)
        for j, item in _items(building, "devices"):
            if (device_id := _written_id(item)) is not None and building_id is not None:
                entries.building_of.setdefault(device_id, building_id)
            if (device := _valid(Device, item)) is not None:
                entries.devices.append((("buildings", i, "devices", j), device))
    for i, item in _items(raw, "technicians"):
        if (technician_id := _written_id(item)) is not None:
            entries.technician_ids.add(technician_id)
        if (technician := _valid(Technician, item)) is not None:
            entries.technicians.append((("technicians", i), technician))
    for name in ("supervisor", "manager"):
        if raw.get(name) is not None and (ref := _valid(_CONTACT, raw[name])) is not None:
            entries.contacts.append(((name,), ref))
    on_call = raw.get("on_call")
    for discipline in Discipline:
        if isinstance(on_call, dict) and (rotation := _valid(Rotation, on_call.get(discipline.value))) is not None:
            entries.rotations.append((("on_call", discipline.value), discipline, rotation))
    for i, item in _items(on_call, "overrides"):
        if (override := _valid(Override, item)) is not None:
            entries.overrides.append((("on_call", "overrides", i), override))
    for i, item in _items(raw, "maintenance"):
        if (plan := _valid(Maintenance, item)) is not None:
            entries.maintenance.append((("maintenance", i), plan))
    return entries


def load_site(path: str | Path) -> Site:
    """The site file at `path`; raises SiteFileError listing every problem, each with its line and entry."""
    path = Path(path)
    try:
        document = read_document(path)
    except DataFileError as exc:
        raise SiteFileError(path, exc.problems) from exc
    raw = document.data
    if not isinstance(raw, dict):
        raise SiteFileError(path, [f"{path}:1: expected a mapping with 'site' and 'buildings'"])
    from facmon.estate.site_checks import check_models  # the site may only name models we have drivers for

    problems = repeated_keys(document)
    site: Site | None = None
    try:
        # Every field of every entry, and each entry's own rules; the checks across entries are run below, over
        # the entries valid on their own, so that they run (and report) even when some entries are wrong.
        site = Site.model_validate(raw, context=DEFER_CHECKS)
    except ValidationError as exc:
        problems += validation_problems(exc)
    entries = site.entries() if site is not None else _entries_of(raw)
    problems += site_problems(entries) + check_models(entries.devices)
    if problems or site is None:
        raise SiteFileError(path, located(path, document, problems))
    return site
