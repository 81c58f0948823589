"""The site file: one YAML file describes one estate — buildings and their devices, and the technicians who work there.

Everything is validated at load; an error names the file, the entry and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from facmon.assets import Inspection, Insurance, Maintainer, MajorRepair, Usage, VarietyCode, check_variety
from facmon.maintenance import Maintenance
from facmon.model import DeviceKind, DeviceRef, Discipline, Identifier
from facmon.rota import Contact, ContactRef, OnCallPlan, check_on_call


class SiteFileError(ValueError):
    """A site file that cannot be used; `problems` lists each one as 'file: entry: what is wrong'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusAddress(_Strict):
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=247)


# Devices read over Modbus TCP (need an address) and devices that push over MQTT (need none).
MODBUS_KINDS = frozenset({DeviceKind.ELEVATOR, DeviceKind.FIRE_PANEL})
MQTT_KINDS = frozenset({DeviceKind.GATE, DeviceKind.CAMERA})
# One level of an MQTT topic: no separators or wildcards.
VendorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
# The use-registration code of special equipment (20 digits, the first four the variety) and certificate number;
# shared with the asset updates of the API (facmon.asset_store), which follow the same rules.
RegistrationCode = Annotated[str, Field(pattern=r"^\d{20}$")]
CertificateNumber = Annotated[str, Field(min_length=1, max_length=64)]


class VendorBroker(_Strict):
    """The broker MQTT devices publish to, when it is not the backbone broker the gateway publishes to."""

    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    # Put in front of every vendor topic: where one broker carries several estates' devices (a bridge or
    # mount point per estate), the prefix keeps each estate's barriers and cameras apart.
    topic_prefix: str = Field(default="", pattern=r"^$|^[^/+#]+(/[^/+#]+)*$")


class Device(_Strict):
    id: Identifier
    kind: DeviceKind
    model: Identifier
    role: Literal["main", "peak", "backup"] | None = None
    address: ModbusAddress | None = None
    # MQTT kinds: the device's id in the vendor's topics (e.g. the barrier's serial number); default: `id`.
    vendor_id: VendorId | None = None
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    # How long a device may stay silent before it is reported comm_lost. MQTT kinds: default three heartbeat
    # intervals of their driver (collectors.mqtt.collector.grace_s).
    comm_grace_s: float = Field(default=3.0, ge=0, le=3600)
    installed_on: date | None = None
    registration_code: RegistrationCode | None = None
    description: str = ""
    # Elevators: the ledger's and the insurer's data (facmon.assets); all optional.
    certificate: CertificateNumber | None = None  # use-registration certificate
    variety: VarietyCode | None = None
    usage: Usage | None = None
    maintainer: Maintainer | None = None
    inspection: Inspection | None = None
    major_repair: MajorRepair | None = None
    insurance: Insurance | None = None

    @model_validator(mode="after")
    def _address_fits_kind(self) -> Device:
        if self.kind in MODBUS_KINDS and self.address is None:
            raise ValueError(f"a {self.kind.value} is read over Modbus TCP and needs an address")
        if self.kind in MQTT_KINDS and self.address is not None:
            raise ValueError(f"a {self.kind.value} publishes over MQTT and takes no Modbus address")
        if self.kind not in MQTT_KINDS and self.vendor_id is not None:
            raise ValueError("vendor_id is only for devices that publish over MQTT (gate, camera)")
        return self

    @model_validator(mode="after")
    def _elevator_assets(self) -> Device:
        given = [name for name in ELEVATOR_ASSET_FIELDS if getattr(self, name) is not None]
        if given and self.kind != DeviceKind.ELEVATOR:
            raise ValueError(f"{', '.join(given)}: only for elevators")
        check_variety(self.variety, self.registration_code)
        if self.major_repair and self.installed_on and self.major_repair.done_on < self.installed_on:
            raise ValueError(
                f"major_repair.done_on ({self.major_repair.done_on}) is before the installation ({self.installed_on})"
            )
        return self

    @property
    def variety_code(self) -> str | None:
        """The variety as given, else the one the registration code starts with."""
        return self.variety or (self.registration_code[:4] if self.registration_code else None)

    @property
    def mqtt_id(self) -> str:
        """The device's id in its vendor's MQTT topics."""
        return self.vendor_id or self.id


ELEVATOR_ASSET_FIELDS = ("certificate", "variety", "usage", "maintainer", "inspection", "major_repair", "insurance")


class Building(_Strict):
    id: Identifier
    name: str = ""
    devices: list[Device] = Field(default_factory=list)


# The discipline a work order on a device of each kind needs.
DISCIPLINE_OF_KIND: Mapping[DeviceKind, Discipline] = {
    DeviceKind.ELEVATOR: Discipline.ELEVATOR,
    DeviceKind.FIRE_PANEL: Discipline.FIRE,
    DeviceKind.GATE: Discipline.SECURITY,
    DeviceKind.CAMERA: Discipline.SECURITY,
}
# A card number as the barrier reports it (collectors/mqtt/drivers/barrier_a: hexadecimal, 4..20 digits).
CardNumber = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{4,20}$"), AfterValidator(str.upper)]


class Technician(_Strict):
    """A person who works on the estate's devices; their access cards prove them on site.

    The id is the key other sections refer to (on-call rotas name technicians by it), so it stays stable when a
    name or phone number changes.
    """

    id: Identifier
    name: str = Field(min_length=1, max_length=128)
    phone: str = Field(pattern=r"^\+?[0-9][0-9 -]{2,31}$")
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    # Upper case whatever the file says: readers differ in how they print hex digits.
    cards: list[CardNumber] = Field(default_factory=list)
    disciplines: frozenset[Discipline] = Field(min_length=1)

    def covers(self, kind: DeviceKind) -> bool:
        return DISCIPLINE_OF_KIND[kind] in self.disciplines


class SiteInfo(_Strict):
    id: Identifier
    name: str = ""
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Site(_Strict):
    site: SiteInfo
    # The broker the site's MQTT devices publish to; None: the backbone broker the gateway publishes to.
    mqtt: VendorBroker | None = None
    buildings: list[Building] = Field(min_length=1)
    technicians: list[Technician] = Field(default_factory=list)
    # The escalation chain behind whoever is on call (facmon.rota).
    supervisor: ContactRef | None = None
    manager: ContactRef | None = None
    on_call: OnCallPlan = Field(default_factory=OnCallPlan)
    # Planned work that silences routine alerts (facmon.maintenance).
    maintenance: list[Maintenance] = Field(default_factory=list)

    @field_validator("supervisor", "manager")
    @classmethod
    def _known_contact(cls, value: str | Contact | None, info: ValidationInfo) -> str | Contact | None:
        technicians: list[Technician] | None = info.data.get("technicians")
        if isinstance(value, str) and technicians is not None and all(t.id != value for t in technicians):
            raise ValueError(f"{value!r} is not one of the site's technicians (or give name and phone)")
        return value

    @field_validator("on_call")
    @classmethod
    def _rotas_name_qualified_technicians(cls, plan: OnCallPlan, info: ValidationInfo) -> OnCallPlan:
        technicians: list[Technician] | None = info.data.get("technicians")
        if technicians is None:  # the technicians section is wrong itself, and reported
            return plan
        problems = check_on_call(plan, {t.id: t.disciplines for t in technicians})
        if problems:
            raise ValueError("; ".join(problems))
        return plan

    @field_validator("technicians")
    @classmethod
    def _one_holder_per_card(cls, technicians: list[Technician]) -> list[Technician]:
        ids: set[str] = set()
        holders: dict[str, str] = {}
        for technician in technicians:
            if technician.id in ids:
                raise ValueError(f"technician id {technician.id!r} is used twice")
            ids.add(technician.id)
            for card in technician.cards:
                holder = holders.setdefault(card, technician.id)
                if holder == technician.id and technician.cards.count(card) > 1:
                    raise ValueError(f"card {card!r} is listed twice for technician {technician.id}")
                if holder != technician.id:
                    # A card read must prove one person on site, never either of two.
                    raise ValueError(
                        f"card {card!r} is given to both technician {holder} and technician {technician.id}"
                    )
        return technicians

    @model_validator(mode="after")
    def _unique_ids(self) -> Site:
        seen: set[str] = set()
        for building in self.buildings:
            for device in building.devices:
                if device.id in seen:
                    raise ValueError(f"device id {device.id!r} is used twice")
                seen.add(device.id)
        buildings = {b.id: {d.id for d in b.devices} for b in self.buildings}
        for n, plan in enumerate(self.maintenance):
            if plan.building is not None and plan.building not in buildings:
                raise ValueError(f"maintenance[{n}]: unknown building {plan.building!r}")
            if plan.device is not None and plan.device not in seen:
                raise ValueError(f"maintenance[{n}]: unknown device {plan.device!r}")
            if plan.building and plan.device and plan.device not in buildings[plan.building]:
                raise ValueError(f"maintenance[{n}]: device {plan.device!r} is not in building {plan.building!r}")
        return self

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


def _entry_name(raw: Any, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into words a person finds in the file: buildings[0].devices[2] -> b1/e3."""
    words: list[str] = []
    node = raw
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            label = node.get("id") if isinstance(node, dict) else None
            if words:
                words[-1] += f"[{label}]" if label else f"[{part}]"
        elif isinstance(node, dict) and part in node:
            node = node[part]
            words.append(str(part))
        else:
            words.append(str(part))
    return ".".join(words) or "(top level)"


def load_site(path: str | Path) -> Site:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SiteFileError(path, [f"{path}: cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise SiteFileError(path, [f"{path}: not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise SiteFileError(path, [f"{path}: expected a mapping with 'site' and 'buildings'"])
    try:
        site = Site.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{path}: {_entry_name(raw, err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise SiteFileError(path, problems) from exc
    from collectors.registry import check_models  # the site may only name models we have drivers for

    unknown = check_models(site)
    if unknown:
        raise SiteFileError(path, [f"{path}: {entry}: {msg}" for entry, msg in unknown])
    return site
