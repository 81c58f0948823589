"""Carrying out the state rules in the database: device state, holds, window openings and grouped work orders.

`ApplyStateRules` (a handler of rules.pipeline) folds an event into its device's stored state and carries out what
`evaluate_change` decides, in the event's transaction; `apply_state_event` runs it alone, under a claim of its own.

`tick` is the timer: holds whose time has come are deleted and acted on in the same transaction (a hold fires
once, across restarts and workers), and window openings since the last tick (`rule_watermarks`) are checked for
conditions already true. A worker that was down over a hold's due time fires it on its first tick.

Several workers: an event's transaction holds its device's lock (rules.pipeline), and folding it locks the stored
states of the device's building (in the order of their devices, so two folds never deadlock), since the state
rules decide on the whole building: two workers changing devices of one building at the same moment take turns, the
second deciding on what the first wrote. Each aspect of a state is decided by the newest event about it
(`next_state`), so the order the workers apply a device's events in does not change the state they leave. Known
limit: a device's first event creates its row, so the first events of two new devices of one building, applied at
the same moment, do not see each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine, delete, select, tuple_, update
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.kernel.ticking import tick_forever
from facmon.workorders.tables import TERMINAL_STATUSES, WorkOrder, WorkOrderMember
from rules.engine import OpenWorkOrder
from rules.pipeline import Step, run_handlers, upsert
from rules.state_engine import (
    GROUP_KIND,
    CancelHold,
    DeviceState,
    JoinGroup,
    StartHold,
    StateAction,
    evaluate_change,
    evaluate_due_hold,
    evaluate_window_open,
    group_key,
    next_state,
)
from rules.state_rules import StateRules
from rules.store import open_or_recur
from rules.tables import Comm, DeviceStateRow, RuleHold, RuleWatermark

log = structlog.get_logger(__name__)

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
WINDOWS_WATERMARK = "windows"


@dataclass
class StateResult:
    opened: list[int]
    recurred: list[int]
    holds_started: int = 0
    holds_cancelled: int = 0
    holds_fired: int = 0
    duplicate: bool = False


def _state(row: DeviceStateRow) -> DeviceState:
    return DeviceState(
        site=row.site,
        building=row.building,
        device=row.device,
        kind=row.kind,
        role=row.role,
        service_mode=row.service_mode,
        power_source=row.power_source,
        comm=Comm(row.comm),
        faults=frozenset(row.faults),
        updated_at=row.updated_at,
        seen=_seen(row),
    )


def _seen(row: DeviceStateRow) -> dict[str, datetime]:
    """The times of the row's aspects; a row stored before they were kept knows its latest event's time only, which
    then stands for each aspect it holds."""
    if row.seen:
        return {aspect: datetime.fromisoformat(at) for aspect, at in row.seen.items()}
    if row.updated_at is None:
        return {}
    aspects = ["comm", "service_mode", "power_source", *(f"fault:{code}" for code in row.faults)]
    return dict.fromkeys(aspects, row.updated_at)


def _building(session: Session, site: str, building: str, *, lock: bool = False) -> dict[str, DeviceState]:
    """The stored states of a building's devices; with `lock`, held until the transaction ends."""
    query = select(DeviceStateRow).where(DeviceStateRow.site == site, DeviceStateRow.building == building)
    if lock:
        query = query.order_by(DeviceStateRow.device).with_for_update()
    rows = session.execute(query).scalars()
    return {row.device: _state(row) for row in rows}


def _save(session: Session, state: DeviceState) -> None:
    values = {
        "building": state.building,
        "kind": state.kind,
        "role": state.role,
        "service_mode": state.service_mode,
        "power_source": state.power_source,
        "comm": state.comm.value,
        "faults": sorted(state.faults),
        "updated_at": state.updated_at,
        "seen": {aspect: at.isoformat() for aspect, at in sorted(state.seen.items())},
    }
    stmt = upsert(session, DeviceStateRow).values(site=state.site, device=state.device, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["site", "device"], set_=values))


def _role(sites: Mapping[str, Site], ref: DeviceRef) -> str | None:
    # The site file is the authority on roles; the role an event carries is the gateway's copy of it.
    site = sites.get(ref.site)
    if site is not None:
        try:
            return site.device(ref.device).role
        except KeyError:
            pass
    return ref.role


def _tz(sites: Mapping[str, Site], site: str) -> ZoneInfo:
    return sites[site].tz if site in sites else DEFAULT_TZ


def _cause(state: DeviceState, fault: str, at: datetime, why: str) -> Event:
    """The event a timer-made work order is recorded as coming from (its timeline's detail)."""
    ref = DeviceRef(
        site=state.site, building=state.building, device=state.device, kind=DeviceKind(state.kind), model="-"
    )
    return Event(ref=ref, ts=at, type=EventType.STATUS, code=fault, message=why, id=f"{why}:{state.device}"[:64])


def _carry_out(
    session: Session, actions: Sequence[StateAction], cause: Event, now: datetime, result: StateResult
) -> None:
    for action in actions:
        if isinstance(action, OpenWorkOrder):
            work_order_id, is_new = open_or_recur(session, action, cause, now)
            (result.opened if is_new else result.recurred).append(work_order_id)
        elif isinstance(action, JoinGroup):
            work_order_id, is_new = open_or_recur(session, action.order, cause, now)
            (result.opened if is_new else result.recurred).append(work_order_id)
            member = upsert(session, WorkOrderMember).values(
                work_order_id=work_order_id,
                device=action.device,
                rule_id=action.order.rule_id,
                detected_at=action.order.detected_at,
                linked_at=now,
            )
            session.execute(member.on_conflict_do_nothing(index_elements=["work_order_id", "device"]))
        elif isinstance(action, StartHold):
            # A hold already pending keeps its earlier start: the condition has lasted since then.
            hold = upsert(session, RuleHold).values(
                site=action.site,
                device=action.device,
                rule_id=action.rule_id,
                building=action.building,
                detected_at=action.detected_at,
                due_at=action.due_at,
            )
            session.execute(hold.on_conflict_do_nothing(index_elements=["site", "device", "rule_id"]))
            result.holds_started += 1
        elif isinstance(action, CancelHold):
            gone = session.execute(
                delete(RuleHold)
                .where(
                    RuleHold.site == action.site, RuleHold.device == action.device, RuleHold.rule_id == action.rule_id
                )
                .returning(RuleHold.rule_id)
            ).all()
            result.holds_cancelled += len(gone)


def _fold(session: Session, event: Event, rules: StateRules, sites: Mapping[str, Site], now: datetime) -> StateResult:
    """Fold `event` into its device's state and carry out what the state rules make of the change."""
    result = StateResult(opened=[], recurred=[])
    ref = event.ref
    before = _building(session, ref.site, ref.building, lock=True)
    known = before.get(ref.device) or DeviceState(ref.site, ref.building, ref.device, ref.kind.value)
    current = replace(known, role=_role(sites, ref))
    after_state = next_state(current, event)
    if after_state == known and after_state.seen == known.seen:
        return result
    _save(session, after_state)
    after = {**before, ref.device: after_state}
    at = min(event.ts, now)
    actions = evaluate_change(rules.for_site(ref.site), before, after, _tz(sites, ref.site), at)
    _carry_out(session, actions, event, now, result)
    return result


class ApplyStateRules:
    """Handler: the event folded into its device's state, and the state rules acted on."""

    name = "state_rules"

    def __init__(self, rules: StateRules, sites: Mapping[str, Site]) -> None:
        self.rules = rules
        self.sites = sites

    def __call__(self, step: Step) -> None:
        result = _fold(step.session, step.event, self.rules, self.sites, step.now)
        step.outcome.state_opened += result.opened
        step.outcome.state_recurred += result.recurred
        step.outcome.holds_started += result.holds_started
        step.outcome.holds_cancelled += result.holds_cancelled


def apply_state_event(
    engine: Engine, event: Event, rules: StateRules, sites: Mapping[str, Site], now: datetime
) -> StateResult:
    """`ApplyStateRules` alone in a transaction of its own, once per event id (claimed under a key of its own, so the
    event rules' claim of the same event does not stop it)."""
    outcome = run_handlers(engine, event, [], now, [ApplyStateRules(rules, sites)], key=f"state:{event.id}"[:64])
    return StateResult(
        opened=outcome.state_opened,
        recurred=outcome.state_recurred,
        holds_started=outcome.holds_started,
        holds_cancelled=outcome.holds_cancelled,
        duplicate=outcome.duplicate,
    )


def _group_open(session: Session, site: str, building: str, fault: str) -> bool:
    query = select(WorkOrder.id).where(
        WorkOrder.site == site,
        WorkOrder.device == building,
        WorkOrder.kind == GROUP_KIND,
        WorkOrder.fault == fault,
        WorkOrder.status.not_in([s.value for s in TERMINAL_STATUSES]),
    )
    return session.execute(query).first() is not None


def _fire_due_holds(session: Session, rules: StateRules, now: datetime, result: StateResult) -> None:
    # Locked as read, skipping holds another worker's tick has locked (it fires them): no two ticks wait on each
    # other, and the DELETE makes each hold fire once.
    key = (RuleHold.site, RuleHold.device, RuleHold.rule_id)
    locked = select(*key).where(RuleHold.due_at <= now).with_for_update(skip_locked=True)
    due = session.execute(
        delete(RuleHold)
        .where(tuple_(*key).in_(locked))
        .returning(RuleHold.site, RuleHold.device, RuleHold.rule_id, RuleHold.building, RuleHold.detected_at)
    ).all()
    for site, device, rule_id, building_id, detected_at in sorted(due, key=lambda r: (r.detected_at, r.device)):
        result.holds_fired += 1
        rule = rules.get(site, rule_id)
        if rule is None:
            continue  # the rule was removed from the library since the hold started
        building = _building(session, site, building_id)
        group_open = _group_open(session, site, building_id, group_key(rule))
        actions = evaluate_due_hold(rule, device, detected_at, building, group_open)
        if actions and device in building:
            cause = _cause(building[device], rule.definition.then.fault, detected_at, f"hold:{rule_id}")
            _carry_out(session, actions, cause, now, result)


def _check_windows(
    session: Session, rules: StateRules, sites: Mapping[str, Site], now: datetime, result: StateResult
) -> None:
    last = session.get(RuleWatermark, WINDOWS_WATERMARK)
    if last is None:
        # First tick on this database: nothing to catch up on; from now on every opening is seen. Of several
        # workers' first ticks, one inserts it; the others change nothing (a plain INSERT would fail their tick).
        first = upsert(session, RuleWatermark).values(name=WINDOWS_WATERMARK, at=now)
        session.execute(first.on_conflict_do_nothing(index_elements=[RuleWatermark.name]))
        return
    after = last.at
    if now <= after:
        return
    # Compare-and-set: of several workers, the one that moves the watermark acts on the openings.
    moved = session.execute(
        update(RuleWatermark)
        .where(RuleWatermark.name == WINDOWS_WATERMARK, RuleWatermark.at == after)
        .values(at=now)
        .returning(RuleWatermark.name)
        .execution_options(synchronize_session=False)
    ).first()
    if not moved:
        return
    site_ids = set(session.execute(select(DeviceStateRow.site).distinct()).scalars())
    for site in sorted(site_ids):
        site_rules = [rule for rule in rules.for_site(site) if rule.definition.window]
        if not site_rules:
            continue
        rows = session.execute(select(DeviceStateRow).where(DeviceStateRow.site == site)).scalars()
        states = [_state(row) for row in rows]
        actions = evaluate_window_open(site_rules, states, _tz(sites, site), after, now)
        by_device = {state.device: state for state in states}
        for action in actions:
            device = action.device if isinstance(action, OpenWorkOrder | StartHold) else ""
            cause = _cause(by_device[device], "window", now, "window")
            _carry_out(session, [action], cause, now, result)


def tick(engine: Engine, rules: StateRules, sites: Mapping[str, Site], now: datetime) -> StateResult:
    """Fire the holds due by `now` and act on the windows opened since the last tick, in one transaction."""
    result = StateResult(opened=[], recurred=[])
    with Session(engine) as session, session.begin():
        _fire_due_holds(session, rules, now, result)
        _check_windows(session, rules, sites, now, result)
    return result


class StateTicker:
    """Runs `tick` on the injected clock's time, every `interval_s` (the rules worker: every second)."""

    def __init__(
        self,
        engine: Engine,
        rules: StateRules,
        sites: Mapping[str, Site],
        clock: Clock,
        *,
        metrics: Counters | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.sites = sites
        self.clock = clock
        self.metrics = metrics or Counters()
        # Ticks completed; tests and health checks wait on it.
        self.ticks = 0

    async def tick(self) -> StateResult:
        result = await asyncio.to_thread(tick, self.engine, self.rules, self.sites, self.clock.now())
        if result.holds_fired:
            self.metrics.inc("rules_holds_fired", result.holds_fired)
        if result.opened:
            self.metrics.inc("rules_work_orders_opened", len(result.opened))
            log.info("work order opened by a state rule", ids=result.opened)
        self.ticks += 1
        return result

    async def run(self, interval_s: float = 1.0) -> NoReturn:
        await tick_forever(self.tick, interval_s, clock=self.clock, metrics=self.metrics, name="state_tick")
