"""Rules as data, and the pure function that applies them to one event.

A rule file (`rules/library/*.yaml`) says *when* (device kind, event type, optionally which codes) and *then* (one
action with its parameters). `evaluate(rules, event, now)` turns an event into a list of actions; it reads no clock,
touches no database and keeps no state, so every decision can be tested as a table of inputs and outputs. The store
(`rules/store.py`) carries the actions out.

A rule that opens work orders names an SLA profile (`facmon/workorders/library/sla.yaml`, `facmon.workorders.sla`);
the action carries the
deadlines of every clock of that profile, computed from the detection time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from facmon.kernel.datafile import DataFileError, read_entries, validated_entries
from facmon.kernel.model import DeviceKind, Event, EventType
from facmon.workorders.sla import ClockDeadline, SlaProfile, load_sla_profiles
from facmon.workorders.tables import Category, Priority
from rules.tables import Comm

LIBRARY = Path(__file__).parent / "library"
# Registered explicitly, like drivers: a new rule family is a file plus one line here, never a folder scan.
DEFAULT_RULE_FILES: tuple[Path, ...] = (
    LIBRARY / "elevator.yaml",
    LIBRARY / "fire.yaml",
    LIBRARY / "gate.yaml",
    LIBRARY / "camera.yaml",
)

TITLE_FIELDS = frozenset({"site", "building", "device", "kind", "code", "fault_name", "point"})
FAULT_EVENTS = frozenset({EventType.FAULT_RAISED, EventType.FAULT_CLEARED})
# Width of the work order's fault column (facmon.workorders.tables).
FAULT_KEY_MAX = 64


def fault_key(code: str, point: str | None) -> str:
    """What a work order is about on its device: the code, or "<point>/<code>" for one point of a many-point device
    (a fire panel's detector 1-023 in fault is not its neighbour 1-024 in fault)."""
    return code if point is None else f"{point}/{code}"


# --- actions: what the engine decides, as plain immutable values ---------------------------------------------------


@dataclass(frozen=True)
class OpenWorkOrder:
    """Open a work order for (site, device, fault), or count one more occurrence of the open one."""

    rule_id: str
    site: str
    building: str
    device: str
    kind: str
    fault: str
    title: str
    priority: Priority
    detected_at: datetime
    # The main on-site deadline (the profile's main clock), kept as the work order's due_at.
    due_at: datetime
    sla_profile: str
    clocks: tuple[ClockDeadline, ...]
    category: Category = Category.REPAIR


@dataclass(frozen=True)
class FaultCleared:
    """The device reports the fault gone; the open work order records it and stays open."""

    rule_id: str
    site: str
    device: str
    fault: str
    cleared_at: datetime


@dataclass(frozen=True)
class SetComm:
    rule_id: str
    site: str
    device: str
    comm: Comm
    at: datetime


@dataclass(frozen=True)
class FireAlarmSignal:
    """A fire point's fire alarm raised (or cleared): recorded as a fire alarm (rules.fire), not as a work order."""

    rule_id: str
    event_id: str
    site: str
    building: str
    device: str
    point: str | None
    point_type: str | None
    raised: bool
    at: datetime


Action = OpenWorkOrder | FaultCleared | SetComm | FireAlarmSignal


# --- rule definitions: the YAML, typed and validated at load --------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _code_text(value: object) -> object:
    # Codes are text on the wire ("2"), but YAML reads an unquoted 2 as a number; accept both spellings.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Code = Annotated[str, BeforeValidator(_code_text)]


class When(_Strict):
    kind: DeviceKind
    event: EventType
    # Only these event codes; None matches every code.
    codes: frozenset[Code] | None = None


class OpenWorkOrderSpec(_Strict):
    action: Literal["open_work_order"]
    # SLA profile ids (facmon/workorders/library/sla.yaml); checked against the loaded profiles by load_rules.
    sla: str = Field(min_length=1, max_length=64)
    sla_by_code: dict[Code, str] = Field(default_factory=dict)
    priority: Priority
    priority_by_code: dict[Code, Priority] = Field(default_factory=dict)
    category: Category = Category.REPAIR
    title: str = Field(default="{kind} {device}: {fault_name}", min_length=1, max_length=200)

    @model_validator(mode="after")
    def _known_title_fields(self) -> OpenWorkOrderSpec:
        used = {name for _, name, _, _ in Formatter().parse(self.title) if name is not None}
        unknown = used - TITLE_FIELDS
        if unknown:
            raise ValueError(f"title uses unknown fields {sorted(unknown)}; known: {sorted(TITLE_FIELDS)}")
        return self


class FaultClearedSpec(_Strict):
    action: Literal["fault_cleared"]


class SetCommSpec(_Strict):
    action: Literal["set_comm"]
    comm: Comm


class FireAlarmSpec(_Strict):
    action: Literal["fire_alarm"]


ThenSpec = Annotated[OpenWorkOrderSpec | FaultClearedSpec | SetCommSpec | FireAlarmSpec, Field(discriminator="action")]

# The event each action makes sense for; a rule that pairs them otherwise is a mistake in the file.
_ACTION_EVENTS: dict[str, frozenset[EventType]] = {
    "open_work_order": frozenset({EventType.FAULT_RAISED}),
    "fault_cleared": frozenset({EventType.FAULT_CLEARED}),
    "set_comm": frozenset({EventType.COMM_LOST, EventType.COMM_RESTORED}),
    "fire_alarm": frozenset({EventType.FAULT_RAISED, EventType.FAULT_CLEARED}),
}


class RuleDef(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    description: str = ""
    when: When
    then: ThenSpec

    @model_validator(mode="after")
    def _action_fits_event(self) -> RuleDef:
        allowed = _ACTION_EVENTS[self.then.action]
        if self.when.event not in allowed:
            wanted = " or ".join(sorted(e.value for e in allowed))
            raise ValueError(f"action {self.then.action!r} needs event {wanted}, not {self.when.event.value!r}")
        return self


@dataclass(frozen=True)
class Rule:
    """One loaded rule, with the file it came from and that file's code names."""

    definition: RuleDef
    source: str
    fault_names: Mapping[str, str] = field(default_factory=dict)
    # The SLA profiles the rule can open work orders with, by id.
    profiles: Mapping[str, SlaProfile] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.definition.id


class RuleFileError(DataFileError):
    """Rules that cannot be used; `problems` lists each one as 'file: rule <id>: what is wrong'."""


def _unknown_profiles(definition: RuleDef, profiles: Mapping[str, SlaProfile]) -> list[str]:
    spec = definition.then
    if not isinstance(spec, OpenWorkOrderSpec):
        return []
    named = [("then.sla", spec.sla)] + [(f"then.sla_by_code.{c}", p) for c, p in spec.sla_by_code.items()]
    known = sorted(profiles)
    return [f"{where}: unknown SLA profile {name!r}; known: {known}" for where, name in named if name not in profiles]


def _load_file(path: Path, profiles: Mapping[str, SlaProfile]) -> tuple[list[Rule], list[str]]:
    raw, items, problems = read_entries(path, "rules", non_empty=True, also={"fault_names"})
    if not items:
        return [], problems
    names: Any = raw.get("fault_names") or {}
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        problems.append(f"{path}: fault_names: expected a mapping of code to text")
        names = {}
    fault_names = {str(code): text for code, text in names.items()}
    rules: list[Rule] = []
    for label, definition in validated_entries(path, "rule", items, RuleDef):
        if isinstance(definition, list):
            problems.extend(definition)
            continue
        unknown = _unknown_profiles(definition, profiles)
        if unknown:
            problems.extend(f"{path}: {label}: {reason}" for reason in unknown)
            continue
        rules.append(Rule(definition=definition, source=path.name, fault_names=fault_names, profiles=profiles))
    return rules, problems


def load_rules(
    paths: Iterable[str | Path] = DEFAULT_RULE_FILES, *, sla_profiles: Mapping[str, SlaProfile] | None = None
) -> tuple[Rule, ...]:
    """Load and validate rule files; raises RuleFileError listing every problem found, not only the first.

    `sla_profiles` defaults to the library's sla.yaml (whose own problems raise facmon.workorders.sla.SlaFileError).
    """
    profiles = load_sla_profiles() if sla_profiles is None else sla_profiles
    rules: list[Rule] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in map(Path, paths):
        loaded, file_problems = _load_file(path, profiles)
        problems.extend(file_problems)
        for rule in loaded:
            if rule.id in seen:
                problems.append(f"{path}: rule {rule.id}: id already used in {seen[rule.id]}")
            seen[rule.id] = rule.source
            rules.append(rule)
    if problems:
        raise RuleFileError(problems)
    return tuple(rules)


# --- evaluation -----------------------------------------------------------------------------------------------------


def _matches(when: When, event: Event) -> bool:
    if when.kind != event.ref.kind or when.event != event.type:
        return False
    if event.type in FAULT_EVENTS and event.code is None:
        return False  # a fault without a code cannot key a work order; the worker rejects such events earlier
    return when.codes is None or event.code in when.codes


def _open_work_order(rule: Rule, spec: OpenWorkOrderSpec, event: Event, now: datetime) -> OpenWorkOrder:
    code = event.code or ""
    # The SLA runs from when the device saw the fault, so an event replayed after an outage keeps its deadline;
    # a device clock running ahead of ours must not push the deadline later, hence the min.
    detected_at = min(event.ts, now)
    title = spec.title.format(
        site=event.ref.site,
        building=event.ref.building,
        device=event.ref.device,
        kind=event.ref.kind.value,
        code=code,
        fault_name=rule.fault_names.get(code, f"fault {code}"),
        point=event.point or "",
    )
    profile = rule.profiles[spec.sla_by_code.get(code, spec.sla)]
    clocks = profile.deadlines(detected_at)
    return OpenWorkOrder(
        rule_id=rule.id,
        site=event.ref.site,
        building=event.ref.building,
        device=event.ref.device,
        kind=event.ref.kind.value,
        fault=fault_key(code, event.point),
        title=title[:200],
        priority=spec.priority_by_code.get(code, spec.priority),
        detected_at=detected_at,
        due_at=next(c.due_at for c in clocks if c.name == profile.main_clock),
        sla_profile=profile.id,
        clocks=clocks,
        category=spec.category,
    )


def _action(rule: Rule, event: Event, now: datetime) -> Action:
    spec = rule.definition.then
    ref = event.ref
    if isinstance(spec, OpenWorkOrderSpec):
        return _open_work_order(rule, spec, event, now)
    if isinstance(spec, FaultClearedSpec):
        return FaultCleared(
            rule_id=rule.id,
            site=ref.site,
            device=ref.device,
            fault=fault_key(event.code or "", event.point),
            cleared_at=min(event.ts, now),
        )
    if isinstance(spec, FireAlarmSpec):
        point_type = event.data.get("point_type")
        return FireAlarmSignal(
            rule_id=rule.id,
            event_id=event.id,
            site=ref.site,
            building=ref.building,
            device=ref.device,
            point=event.point,
            point_type=point_type if isinstance(point_type, str) else None,
            raised=event.type == EventType.FAULT_RAISED,
            at=min(event.ts, now),
        )
    return SetComm(rule_id=rule.id, site=ref.site, device=ref.device, comm=spec.comm, at=min(event.ts, now))


def evaluate(rules: Sequence[Rule], event: Event, now: datetime) -> list[Action]:
    """The actions `event` calls for under `rules`, in rule order. Pure: same inputs, same answer."""
    return [_action(rule, event, now) for rule in rules if _matches(rule.definition.when, event)]
