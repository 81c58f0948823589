"""State rules as data: a condition on a device's last known state, held for a time, inside time windows.

The event rules (`rules.engine`) answer one event. A state rule answers a *condition*: "comm lost for 10 minutes",
"a peak elevator not in normal service between 06:00 and 08:00 site time", "a main elevator down while its backup
is not in service either". Its shape (`rules/library/elevator_service.yaml`, `comm.yaml`):

- `kinds`, optional `roles`: which devices (roles come from the site file);
- `condition`: one of `Condition`, read from the device's state (and its building's, for `backup_needed`);
- `hold`: the condition must last this long; the pending hold is stored, and it is cancelled when the condition
  stops being true (the clear: comm restored, back in normal service, back on main power);
- `window`: a list of local-time windows (`rules.windows`) in which the rule acts; outside them it is quiet, and
  when a window opens a condition already true is acted on then;
- `group`: with `min_devices: N`, when the held condition is true on N or more devices of one building as a hold
  expires, one work order for the building (and the cause) is opened and each device is linked to it;
- `then`: the work order (its own fault key, SLA profile, priority, title).

A site may change a rule's window, hold, group size, SLA profile or priority in an overrides file
(`load_overrides`); every change states its reason. Everything is validated at load and an error names the file,
the rule id and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from string import Formatter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from facmon.kernel.datafile import DataFileError, entry_label, read_entries, validation_reasons
from facmon.kernel.model import DeviceKind
from facmon.workorders.sla import Duration, SlaProfile, load_sla_profiles
from facmon.workorders.tables import Category, Priority
from rules.windows import Window

LIBRARY = Path(__file__).parent / "library"
# Registered explicitly, like the event rules: a new family is a file plus one line here.
DEFAULT_STATE_RULE_FILES: tuple[Path, ...] = (LIBRARY / "elevator_service.yaml", LIBRARY / "comm.yaml")

STATE_TITLE_FIELDS = frozenset({"site", "building", "device", "kind", "fault_name", "role"})
MAX_HOLD = timedelta(days=1)


class Condition(StrEnum):
    COMM_LOST = "comm_lost"
    # The controller reports a service mode other than normal (out of service, inspection, fire return, ...).
    NOT_NORMAL = "not_normal"
    # Not in normal service, or with a fault open.
    OUT_OF_SERVICE = "out_of_service"
    # Running on the backup supply: main power lost (status event 41).
    ON_BACKUP_POWER = "on_backup_power"
    # A main elevator out of service while a backup of the same building is not in normal service either.
    BACKUP_NEEDED = "backup_needed"


# Conditions read from an elevator controller's status; other kinds never report them.
ELEVATOR_CONDITIONS = frozenset(
    {Condition.NOT_NORMAL, Condition.OUT_OF_SERVICE, Condition.ON_BACKUP_POWER, Condition.BACKUP_NEEDED}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupSpec(_Strict):
    by: str = Field(default="building", pattern=r"^building$")
    min_devices: int = Field(ge=2, le=10_000)


class StateThen(_Strict):
    # The work order's fault key on the device ("comm_lost", "backup_needed"); not a controller code.
    fault: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    fault_name: str = Field(min_length=1, max_length=100)
    sla: str = Field(min_length=1, max_length=64)
    priority: Priority
    category: Category = Category.REPAIR
    title: str = Field(default="{kind} {device} ({building}): {fault_name}", min_length=1, max_length=200)

    @model_validator(mode="after")
    def _known_title_fields(self) -> StateThen:
        used = {name for _, name, _, _ in Formatter().parse(self.title) if name is not None}
        unknown = used - STATE_TITLE_FIELDS
        if unknown:
            raise ValueError(f"title uses unknown fields {sorted(unknown)}; known: {sorted(STATE_TITLE_FIELDS)}")
        return self


class StateRuleDef(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    description: str = ""
    kinds: frozenset[DeviceKind] = Field(min_length=1)
    roles: frozenset[str] | None = None
    condition: Condition
    hold: Duration = timedelta(0)
    window: tuple[Window, ...] = ()
    group: GroupSpec | None = None
    then: StateThen

    @model_validator(mode="after")
    def _consistent(self) -> StateRuleDef:
        if not timedelta(0) <= self.hold <= MAX_HOLD:
            raise ValueError(f"hold must be between 0 and {MAX_HOLD}, not {self.hold}")
        if self.condition in ELEVATOR_CONDITIONS and self.kinds != frozenset({DeviceKind.ELEVATOR}):
            raise ValueError(f"condition {self.condition.value!r} is an elevator's; kinds must be [elevator]")
        if self.condition is Condition.BACKUP_NEEDED and self.roles != frozenset({"main"}):
            raise ValueError("condition 'backup_needed' is about main elevators; roles must be [main]")
        if self.group is not None and self.hold <= timedelta(0):
            # The hold is the time in which a building-wide cause collects its devices.
            raise ValueError("group needs a hold (the time in which the devices of one cause are collected)")
        return self


@dataclass(frozen=True)
class StateRule:
    definition: StateRuleDef
    source: str
    profile: SlaProfile
    # The rule as written, so an override can be validated as a whole rule again.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class StateRules:
    """The rules for every site, and the rules of the sites that override some."""

    rules: tuple[StateRule, ...] = ()
    by_site: Mapping[str, tuple[StateRule, ...]] = field(default_factory=dict)

    def for_site(self, site: str) -> tuple[StateRule, ...]:
        return self.by_site.get(site, self.rules)

    def get(self, site: str, rule_id: str) -> StateRule | None:
        return next((rule for rule in self.for_site(site) if rule.id == rule_id), None)


class StateRuleFileError(DataFileError):
    """Rules or overrides that cannot be used; `problems` lists each as 'file: rule <id>: what is wrong'."""


def _build(
    item: object, source: str, label: str, profiles: Mapping[str, SlaProfile]
) -> tuple[StateRule | None, list[str]]:
    try:
        definition = StateRuleDef.model_validate(item)
    except ValidationError as exc:
        return None, [f"{source}: {label}: {reason}" for reason in validation_reasons(exc)]
    profile = profiles.get(definition.then.sla)
    if profile is None:
        unknown = f"then.sla: unknown SLA profile {definition.then.sla!r}; known: {sorted(profiles)}"
        return None, [f"{source}: {label}: {unknown}"]
    raw = item if isinstance(item, dict) else {}
    return StateRule(definition=definition, source=Path(source).name, profile=profile, raw=raw), []


def _read(path: Path, key: str) -> tuple[list[Any], list[str]]:
    _, items, problems = read_entries(path, key, non_empty=True)
    return items, problems


def load_state_rules(
    paths: Iterable[str | Path] = DEFAULT_STATE_RULE_FILES,
    *,
    overrides: Iterable[str | Path] = (),
    sla_profiles: Mapping[str, SlaProfile] | None = None,
) -> StateRules:
    """Load and validate state rules and per-site overrides; raises StateRuleFileError listing every problem."""
    profiles = load_sla_profiles() if sla_profiles is None else sla_profiles
    rules: list[StateRule] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in map(Path, paths):
        items, file_problems = _read(path, "rules")
        problems.extend(file_problems)
        for index, item in enumerate(items):
            label = entry_label("rule", item, index)
            rule, rule_problems = _build(item, str(path), label, profiles)
            problems.extend(rule_problems)
            if rule is None:
                continue
            if rule.id in seen:
                problems.append(f"{path}: {label}: id already used in {seen[rule.id]}")
                continue
            seen[rule.id] = rule.source
            rules.append(rule)
    by_site: dict[str, tuple[StateRule, ...]] = {}
    for path in map(Path, overrides):
        site_rules, file_problems = _apply_overrides(path, tuple(rules), by_site, profiles)
        problems.extend(file_problems)
        by_site.update(site_rules)
    if problems:
        raise StateRuleFileError(problems)
    return StateRules(rules=tuple(rules), by_site=by_site)


# What an override may change: `then` only its SLA profile and priority.
OVERRIDABLE = frozenset({"hold", "window", "group", "then"})
OVERRIDABLE_THEN = frozenset({"sla", "priority"})


def _apply_overrides(
    path: Path,
    base: tuple[StateRule, ...],
    done: Mapping[str, tuple[StateRule, ...]],
    profiles: Mapping[str, SlaProfile],
) -> tuple[dict[str, tuple[StateRule, ...]], list[str]]:
    """An overrides file: `overrides: [{site, rule, reason, set: {hold, window, group, then: {sla, priority}}}]`."""
    items, problems = _read(path, "overrides")
    by_site: dict[str, list[StateRule]] = {}
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        rule_id = item.get("rule") if isinstance(item, dict) else None
        label = f"rule {rule_id}" if isinstance(rule_id, str) else f"override #{index + 1}"
        if not isinstance(item, dict) or set(item) != {"site", "rule", "reason", "set"}:
            problems.append(f"{path}: {label}: an override has exactly: site, rule, reason, set")
            continue
        site, reason, changes = item["site"], item["reason"], item["set"]
        if not isinstance(site, str) or not site:
            problems.append(f"{path}: {label}: site: expected a site id")
            continue
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{path}: {label}: reason: say why this site differs")
            continue
        if (site, str(rule_id)) in seen:
            problems.append(f"{path}: {label}: overridden twice for site {site!r}")
            continue
        seen.add((site, str(rule_id)))
        current = by_site.setdefault(site, list(done.get(site, base)))
        position = next((i for i, rule in enumerate(current) if rule.id == rule_id), None)
        if position is None:
            problems.append(f"{path}: {label}: no such rule; known: {sorted(rule.id for rule in base)}")
            continue
        if not isinstance(changes, dict) or not changes or set(changes) - OVERRIDABLE:
            problems.append(f"{path}: {label}: set: expected some of {sorted(OVERRIDABLE)}")
            continue
        then_changes = changes.get("then", {})
        if not isinstance(then_changes, dict) or set(then_changes) - OVERRIDABLE_THEN:
            problems.append(f"{path}: {label}: set.then: only {sorted(OVERRIDABLE_THEN)} may change")
            continue
        original = current[position]
        merged = {**original.raw, **changes, "then": {**original.raw.get("then", {}), **then_changes}}
        rule, rule_problems = _build(merged, str(path), f"{label} (site {site})", profiles)
        problems.extend(rule_problems)
        if rule is not None:
            current[position] = rule
    return {site: tuple(rules) for site, rules in by_site.items()}, problems
