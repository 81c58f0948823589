"""The entries of a site file, each valid on its own: devices, buildings, technicians, the site's identity and its
vendor broker. The site as a whole, with its checks across entries, is facmon.estate.site."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from facmon.estate.assets import Inspection, Insurance, Maintainer, MajorRepair, Usage, VarietyCode, check_variety
from facmon.estate.fire_points import PointSpec, expand_all, point_list_problems
from facmon.kernel.datafile import (
    Problem,
    checks_deferred,
    raise_problems,
)
from facmon.kernel.model import MODBUS_KINDS, MQTT_KINDS, DeviceKind, Discipline, Identifier, ModbusAddress
from facmon.kernel.mqtt import MqttTls


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# One level of an MQTT topic: no separators or wildcards.
VendorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
# The use-registration code of special equipment (20 digits, the first four the variety) and certificate number;
# shared with the asset updates of the API (facmon.estate.asset_store), which follow the same rules.
RegistrationCode = Annotated[str, Field(pattern=r"^\d{20}$")]
CertificateNumber = Annotated[str, Field(min_length=1, max_length=64)]


class VendorTls(_Strict):
    """TLS to a vendor broker: the CA of its certificate (absent: the system's CAs), the gateway's own certificate
    and key when the broker asks for one, and `insecure: true` to skip the check that the certificate names `host`
    (an explicit opt-out; the chain is checked all the same)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False

    @field_validator("ca", "cert", "key")
    @classmethod
    def _exists(cls, path: Path | None) -> Path | None:
        return _existing(path)

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together (the gateway's certificate and its key)")
        return self


class VendorBroker(_Strict):
    """The broker MQTT devices publish to, when it is not the backbone broker the gateway publishes to."""

    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    # Put in front of every vendor topic: where one broker carries several estates' devices (a bridge or
    # mount point per estate), the prefix keeps each estate's barriers and cameras apart.
    topic_prefix: str = Field(default="", pattern=r"^$|^[^/+#]+(/[^/+#]+)*$")
    # The gateway's login there: a user name and a file holding its password (kept out of the site file), and TLS.
    username: str | None = Field(default=None, min_length=1)
    password_file: Path | None = None
    tls: VendorTls | None = None

    @field_validator("password_file")
    @classmethod
    def _exists(cls, path: Path | None) -> Path | None:
        return _existing(path)

    def password(self) -> str | None:
        """The password from `password_file` (read when asked, so a changed password needs no new site file)."""
        if self.password_file is None:
            return None
        return self.password_file.read_text().strip()

    def mqtt_tls(self) -> MqttTls | None:
        t = self.tls
        if t is None:
            return None
        return MqttTls(_path(t.ca), _path(t.cert), _path(t.key), t.insecure)


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _existing(path: Path | None) -> Path | None:
    # Checked when the site file is loaded (and by check-config), not when the gateway first connects.
    if path is not None and not path.is_file():
        raise ValueError(f"no such file {path}")
    return path


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
    # Modbus kinds: how long one request may take before the poll counts as failed (default 1 s). A device whose
    # answers take over half of it, a few polls in a row, is reported slow (status event `comm_slow`).
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    # Fire panels: the commissioned points ("1-001..1-120", "3-007"): they count in the intact rate even while the
    # panel does not report them (facmon.estate.fire_points). Optional: without it, the points the panel reports.
    points: list[PointSpec] = Field(default_factory=list, max_length=256)
    installed_on: date | None = None
    registration_code: RegistrationCode | None = None
    description: str = ""
    # Elevators: the ledger's and the insurer's data (facmon.estate.assets); all optional.
    certificate: CertificateNumber | None = None  # use-registration certificate
    variety: VarietyCode | None = None
    usage: Usage | None = None
    maintainer: Maintainer | None = None
    inspection: Inspection | None = None
    major_repair: MajorRepair | None = None
    insurance: Insurance | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Device:
        if not checks_deferred(info):
            raise_problems(self.problems())
        return self

    def problems(self) -> list[Problem]:
        """What does not fit together within the device, each with the field it is about (none: the device)."""
        problems: list[Problem] = []
        if self.kind in MODBUS_KINDS and self.address is None:
            problems.append(((), f"a {self.kind.value} is read over Modbus TCP and needs an address"))
        if self.kind in MQTT_KINDS and self.address is not None:
            problems.append((("address",), f"a {self.kind.value} publishes over MQTT and takes no Modbus address"))
        if self.kind in MQTT_KINDS and self.timeout_s is not None:
            problems.append((("timeout_s",), "only for devices read over Modbus TCP (elevator, fire panel)"))
        if self.kind not in MQTT_KINDS and self.vendor_id is not None:
            problems.append((("vendor_id",), "only for devices that publish over MQTT (gate, camera)"))
        if self.points and self.kind != DeviceKind.FIRE_PANEL:
            problems.append((("points",), "only for fire panels"))
        problems += [(("points", *where), what) for where, what in point_list_problems(self.points)]
        if self.kind != DeviceKind.ELEVATOR:
            given = [name for name in ELEVATOR_ASSET_FIELDS if getattr(self, name) is not None]
            problems += [((name,), "only for elevators") for name in given]
        try:
            check_variety(self.variety, self.registration_code)
        except ValueError as exc:
            problems.append((("variety",), str(exc)))
        if self.major_repair and self.installed_on and self.major_repair.done_on < self.installed_on:
            problems.append(
                (
                    ("major_repair", "done_on"),
                    f"{self.major_repair.done_on} is before the installation ({self.installed_on})",
                )
            )
        return problems

    @property
    def variety_code(self) -> str | None:
        """The variety as given, else the one the registration code starts with."""
        return self.variety or (self.registration_code[:4] if self.registration_code else None)

    @property
    def fire_points(self) -> list[str]:
        """The points `points` lists, each once, in the order given."""
        return expand_all(self.points)

    @property
    def request_timeout_s(self) -> float:
        """How long one Modbus request may take: `timeout_s` as given, else 1 s."""
        return DEFAULT_TIMEOUT_S if self.timeout_s is None else self.timeout_s

    @property
    def mqtt_id(self) -> str:
        """The device's id in its vendor's MQTT topics."""
        return self.vendor_id or self.id


DEFAULT_TIMEOUT_S = 1.0
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
