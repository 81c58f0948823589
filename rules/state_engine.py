"""A device's last known state, and the pure functions that apply state rules to it.

`next_state(state, event)` folds one event into a device's state. The decisions are pure functions of (rules,
states, now) and return actions, as `rules.engine.evaluate` does; `rules.state_store` reads and writes the
database and carries them out:

- `evaluate_change`: a device's state changed; a condition that became true starts a hold (or opens a work
  order at once, inside the rule's windows), one that stopped being true cancels its pending hold.
- `evaluate_window_open`: a rule's window has just opened; a condition already true is acted on now.
- `evaluate_due_hold`: a hold ran out without being cancelled; open the work order, or link the device to the
  building's grouped work order when enough devices of the building share the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from facmon.kernel.model import Event, EventType
from rules.engine import OpenWorkOrder
from rules.state_rules import Condition, StateRule
from rules.tables import Comm
from rules.windows import in_windows, window_opened

NORMAL = "normal"
MAIN_POWER = "main"
# What a status event means when it carries no status_point/status_value (GB/T 24476 event codes).
_SERVICE_BY_CODE = {
    "42": "out_of_service",
    "43": "inspection",
    "44": "fire_return",
    "45": "firefighter",
    "46": "emergency_power",
    "47": "earthquake",
}
# The kind of a grouped work order: the building, not one of its devices.
GROUP_KIND = "building"


@dataclass(frozen=True)
class DeviceState:
    site: str
    building: str
    device: str
    kind: str
    role: str | None = None
    # None until the device has said: an unknown mode is not taken for "out of service".
    service_mode: str | None = None
    power_source: str | None = None
    comm: Comm = Comm.OK
    faults: frozenset[str] = field(default_factory=frozenset)
    # The time of the newest event folded in.
    updated_at: datetime | None = None
    # Per aspect ("comm", "fault:<code>", "service_mode", "power_source"), the time of the newest event that decided
    # it (`next_state`). Not part of equality: two states that say the same of the device are equal.
    seen: Mapping[str, datetime] = field(default_factory=dict, compare=False)


def next_state(state: DeviceState, event: Event) -> DeviceState:
    """`state` after `event`. Each aspect of a device's state (its comm, each of its faults, its service mode, its
    power source) is decided by the newest event about it, whatever order the events come in: an event older than
    what the state knows of an aspect changes nothing of that aspect (a late replay, or an event another worker took
    and applied after a newer one), and still changes the aspects it is the newest news of. A fault or status event
    says the device answers, but loses a tie with a comm event of the same time."""
    new = replace(state, updated_at=event.ts if state.updated_at is None else max(state.updated_at, event.ts))
    if event.type in (EventType.COMM_LOST, EventType.COMM_RESTORED):
        return _aspect(new, "comm", event.ts, comm=Comm.LOST if event.type is EventType.COMM_LOST else Comm.OK)
    if event.type not in (EventType.FAULT_RAISED, EventType.FAULT_CLEARED, EventType.STATUS):
        return new
    new = _aspect(new, "comm", event.ts, strict=True, comm=Comm.OK)
    if event.type is EventType.STATUS:
        return _status(new, event)
    if not event.code or event.point is not None:
        return new
    raised = event.type is EventType.FAULT_RAISED
    faults = new.faults | {event.code} if raised else new.faults - {event.code}
    return _aspect(new, f"fault:{event.code}", event.ts, faults=faults)


def _aspect(state: DeviceState, aspect: str, at: datetime, *, strict: bool = False, **changes: object) -> DeviceState:
    """`state` with `changes` made by news of `aspect` at `at`, unless it knows newer news of it (or as new, with
    `strict`)."""
    last = state.seen.get(aspect)
    if last is not None and (at < last or (strict and at == last)):
        return state
    return replace(state, seen={**state.seen, aspect: at}, **changes)  # type: ignore[arg-type]


def _status(state: DeviceState, event: Event) -> DeviceState:
    point, value = event.data.get("status_point"), event.data.get("status_value")
    at = event.ts
    if point == "service_mode" and value is not None:
        return _aspect(state, "service_mode", at, service_mode=str(value))
    if point == "power_source" and value is not None:
        return _aspect(state, "power_source", at, power_source=str(value))
    if event.code == "41":
        return _aspect(state, "power_source", at, power_source="backup")
    if event.code in _SERVICE_BY_CODE:
        return _aspect(state, "service_mode", at, service_mode=_SERVICE_BY_CODE[event.code])
    return state


def _not_normal(state: DeviceState) -> bool:
    return state.service_mode is not None and state.service_mode != NORMAL


def condition_holds(condition: Condition, state: DeviceState, building: Mapping[str, DeviceState]) -> bool:
    """Whether `condition` is true of `state`, whose building's devices (itself included) are `building`."""
    match condition:
        case Condition.COMM_LOST:
            return state.comm is Comm.LOST
        case Condition.NOT_NORMAL:
            return _not_normal(state)
        case Condition.OUT_OF_SERVICE:
            return _not_normal(state) or bool(state.faults)
        case Condition.ON_BACKUP_POWER:
            return state.power_source is not None and state.power_source != MAIN_POWER
        case Condition.BACKUP_NEEDED:
            backups = [s for s in building.values() if s.role == "backup" and s.kind == state.kind]
            main_down = _not_normal(state) or bool(state.faults)
            return main_down and any(_not_normal(b) or b.comm is Comm.LOST for b in backups)


def applies(rule: StateRule, state: DeviceState) -> bool:
    d = rule.definition
    return state.kind in d.kinds and (d.roles is None or state.role in d.roles)


def _true(rule: StateRule, state: DeviceState, building: Mapping[str, DeviceState]) -> bool:
    return applies(rule, state) and condition_holds(rule.definition.condition, state, building)


# --- actions --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartHold:
    rule_id: str
    site: str
    building: str
    device: str
    # When the condition began; the work order's detection time if the hold runs out.
    detected_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class CancelHold:
    rule_id: str
    site: str
    device: str


@dataclass(frozen=True)
class JoinGroup:
    """Open (or count one more device on) the building's grouped work order, and link `device` to it."""

    order: OpenWorkOrder
    device: str


StateAction = OpenWorkOrder | StartHold | CancelHold | JoinGroup


def open_for(rule: StateRule, state: DeviceState, detected_at: datetime) -> OpenWorkOrder:
    then = rule.definition.then
    title = then.title.format(
        site=state.site,
        building=state.building,
        device=state.device,
        kind=state.kind,
        fault_name=then.fault_name,
        role=state.role or "",
    )
    clocks = rule.profile.deadlines(detected_at)
    return OpenWorkOrder(
        rule_id=rule.id,
        site=state.site,
        building=state.building,
        device=state.device,
        kind=state.kind,
        fault=then.fault,
        title=title[:200],
        priority=then.priority,
        detected_at=detected_at,
        due_at=next(c.due_at for c in clocks if c.name == rule.profile.main_clock),
        sla_profile=rule.profile.id,
        clocks=clocks,
        category=then.category,
    )


def group_key(rule: StateRule) -> str:
    return f"group/{rule.definition.then.fault}"


def _group_order(rule: StateRule, state: DeviceState, detected_at: datetime) -> OpenWorkOrder:
    single = open_for(rule, state, detected_at)
    title = f"Building {state.building}: {rule.definition.then.fault_name} on several {state.kind}s"
    return replace(single, device=state.building, kind=GROUP_KIND, fault=group_key(rule), title=title[:200])


def _act(rule: StateRule, state: DeviceState, at: datetime) -> StateAction:
    hold = rule.definition.hold
    if hold:
        return StartHold(rule.id, state.site, state.building, state.device, detected_at=at, due_at=at + hold)
    return open_for(rule, state, at)


def evaluate_change(
    rules: Iterable[StateRule],
    before: Mapping[str, DeviceState],
    after: Mapping[str, DeviceState],
    tz: ZoneInfo,
    at: datetime,
) -> list[StateAction]:
    """What a change in one building calls for: `before` and `after` are its devices' states by device id."""
    actions: list[StateAction] = []
    for rule in rules:
        for device, state in after.items():
            was = device in before and _true(rule, before[device], before)
            now_true = _true(rule, state, after)
            if now_true and not was and in_windows(rule.definition.window, at, tz):
                actions.append(_act(rule, state, at))
            elif was and not now_true and rule.definition.hold:
                actions.append(CancelHold(rule.id, state.site, device))
    return actions


def by_building(states: Iterable[DeviceState]) -> dict[str, dict[str, DeviceState]]:
    buildings: dict[str, dict[str, DeviceState]] = {}
    for state in states:
        buildings.setdefault(state.building, {})[state.device] = state
    return buildings


def evaluate_window_open(
    rules: Iterable[StateRule], states: Iterable[DeviceState], tz: ZoneInfo, after: datetime, now: datetime
) -> list[StateAction]:
    """What the windows that opened in (after, now] call for, for one site's devices `states`."""
    opened = [r for r in rules if r.definition.window and window_opened(r.definition.window, after, now, tz)]
    if not opened:
        return []
    buildings = by_building(states)
    return [
        _act(rule, state, now)
        for rule in opened
        for building in buildings.values()
        for state in building.values()
        if _true(rule, state, building)
    ]


def evaluate_due_hold(
    rule: StateRule,
    device: str,
    detected_at: datetime,
    building: Mapping[str, DeviceState],
    group_open: bool,
) -> list[StateAction]:
    """A hold of `rule` on `device` ran out; `group_open` says whether the building's grouped work order for this
    cause is open already."""
    state = building.get(device)
    if state is None or not _true(rule, state, building):
        return []  # the clear was missed (e.g. the state moved on without an event for this rule); nothing is owed
    group = rule.definition.group
    if group is not None:
        sharing = sum(1 for s in building.values() if _true(rule, s, building))
        if group_open or sharing >= group.min_devices:
            return [JoinGroup(_group_order(rule, state, detected_at), device)]
    return [open_for(rule, state, detected_at)]
