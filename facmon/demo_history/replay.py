"""Carrying a history plan out as the live system would have, on a clock that jumps from one moment to the next.

- every event goes through the rules worker's own steps, in its order (rules.worker.RulesWorker._apply): the rules
  (rules.engine.evaluate), fire alarms (rules.fire.record_fire_signals), the event with the site's evidence
  (rules.arrival.apply_with_site_evidence: work orders, card reads, inspection mode, maintenance visits) and the
  state rules (rules.state_store.apply_state_event), one second after the device saw it;
- the periodic monitors act at the moments their ticks would have: SLA breaches one second after a deadline that is
  not met (facmon.workorders.breaches.record_breaches), overdue maintenance and fire checks half a minute after they
  fall
  due (rules.maintenance_visits, rules.fire_checks), the state rules' timer when a hold runs out or a peak window
  opens on a car out of service (rules.state_store.tick);
- people's steps (facmon.demo_history.steps) go through facmon.workorders.workflow, fire checks through
rules.fire_checks,
  fire alarm verdicts through rules.fire.

Nothing is inserted by hand: the rows are the ones those functions write.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.demo_history.model import LATENCY, AlarmOutcome, CheckPlan, HistoryPlan, TimedEvent
from facmon.demo_history.profile import HistoryProfile, Period
from facmon.demo_history.steps import Steps
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, EventType
from facmon.notifier.fire_alerts import alert_fire_alarms
from facmon.notifier.recipients import SiteResolver
from facmon.workorders.breaches import record_breaches
from rules.arrival import INSPECTION, apply_with_site_evidence, service_mode_of
from rules.engine import FireAlarmSignal, evaluate, load_rules
from rules.fire import record_fire_signals, set_outcome
from rules.fire_checks import DEFAULT_PERIOD as CHECK_PERIOD
from rules.fire_checks import PROFILE as CHECK_PROFILE
from rules.fire_checks import open_overdue as checks_overdue
from rules.fire_checks import record_check, register_panel
from rules.maintenance_visits import DEFAULT_CYCLE, DEFAULT_MIN_INSPECTION, register_elevators, settle_overdue
from rules.maintenance_visits import PROFILE as VISIT_PROFILE
from rules.maintenance_visits import open_overdue as visits_overdue
from rules.state_rules import load_state_rules
from rules.state_store import apply_state_event
from rules.state_store import tick as state_tick
from rules.tables import RuleHold

# The monitors of overdue checks tick every minute: on average half a minute after something falls due.
MONITOR_DELAY = timedelta(seconds=30)
# The SLA monitor and the state rules' timer tick every second.
TICK = timedelta(seconds=1)
Action = Callable[[datetime], None]


class Replay:
    def __init__(self, engine: Engine, site: Site, plan: HistoryPlan, period: Period, profile: HistoryProfile) -> None:
        self.engine = engine
        self.site = site
        self.plan = plan
        self.period = period
        self.clock = FakeClock(period.start)
        self.rules = load_rules()
        self.state_rules = load_state_rules()
        self.sites = {site.id: site}
        self.metrics = Counters()
        self._resolver = SiteResolver([site])
        self.steps = Steps(engine, site, plan, profile, self.at, self.breach_check)
        self._queue: list[tuple[datetime, int, Action]] = []
        self._seq = 0
        self._holds: set[datetime] = set()
        self._inspection_since: dict[str, datetime] = {}
        # Each elevator's last visit (the start of its last long enough inspection), as the schedule keeps it.
        self._visited: dict[str, datetime] = {}
        self._alarms: dict[str, int] = {}

    def at(self, when: datetime, action: Action) -> None:
        """Do `action` at `when` (actions at the same moment in the order they were asked for)."""
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, action))

    def run(self) -> None:
        self._start(self.period.start)
        for timed in self.plan.events:
            self.at(timed.event.ts + LATENCY, partial(self._event, timed))
        self.steps.schedule()
        for check in self.plan.checks:
            self.at(check.at + timedelta(minutes=2), partial(self._check, check))
        for outcome in self.plan.outcomes:
            self.at(outcome.at, partial(self._verdict, outcome))
        for opens in self.plan.window_checks:
            self.at(opens, self._state_tick)
        self.at(self.period.until, self._state_tick)
        while self._queue:
            when, _, action = heapq.heappop(self._queue)
            if when > self.period.until:
                break
            self.clock.advance(when - self.clock.now())
            action(when)

    # --- the start: what the rules worker does when it first runs --------------------------------------------------

    def _start(self, now: datetime) -> None:
        register_elevators(self.engine, [self.site], now)
        for building, device in self.site.devices():
            if device.kind == DeviceKind.FIRE_PANEL:
                # The fire intact writer puts a panel on the check schedule when its first reading comes.
                register_panel(self.engine, self.site.id, building.id, device.id, now)
        state_tick(self.engine, self.state_rules, self.sites, now)
        self.at(now + DEFAULT_CYCLE + MONITOR_DELAY, self._maintenance_tick)
        self.at(now + CHECK_PERIOD + MONITOR_DELAY, self._checks_tick)

    # --- events ----------------------------------------------------------------------------------------------------

    def _event(self, timed: TimedEvent, now: datetime) -> None:
        event = timed.event
        actions = evaluate(self.rules, event, now)
        signals = [a for a in actions if isinstance(a, FireAlarmSignal)]
        if signals:
            for alarm_id in record_fire_signals(self.engine, signals, now):
                self._alarms[event.id] = alarm_id
                self.at(now + TICK, self._alerted)
        result = apply_with_site_evidence(
            self.engine, event, actions, now, technicians=self.site.technicians, metrics=self.metrics
        )
        state = apply_state_event(self.engine, event, self.state_rules, self.sites, now)
        if timed.incident is not None and event.type is not EventType.CARD_READ:
            self.steps.started(timed.incident, event.ref.device)
        for work_order_id in (*result.opened, *state.opened):
            self.steps.bind(work_order_id, timed.incident, now)
        if state.holds_started:
            self._schedule_holds()
        self._inspection(timed, now)

    def _inspection(self, timed: TimedEvent, now: datetime) -> None:
        """After a maintenance visit (inspection ended), the overdue monitor looks again one cycle on."""
        mode = service_mode_of(timed.event)
        device = timed.event.ref.device
        if mode == INSPECTION:
            self._inspection_since.setdefault(device, timed.event.ts)
        elif mode is not None and device in self._inspection_since:
            began = self._inspection_since.pop(device)
            if timed.event.ts - began >= DEFAULT_MIN_INSPECTION:
                self._visited[device] = began
                self.at(began + DEFAULT_CYCLE + MONITOR_DELAY, partial(self._visit_due, device, began))

    def _schedule_holds(self) -> None:
        with Session(self.engine) as session:
            dues = set(session.execute(select(RuleHold.due_at)).scalars())
        for due in dues - self._holds:
            self._holds.add(due)
            self.at(due + TICK, self._state_tick)

    # --- monitors --------------------------------------------------------------------------------------------------

    def breach_check(self, due: datetime) -> None:
        if due + TICK <= self.period.until:
            self.at(due + TICK, self._breaches)

    def _alerted(self, now: datetime) -> None:
        # The notifier takes a fire alarm at its next tick. The history replays no alerts (their deliveries would
        # be sent when the demo starts), so it queues to no channel: the alarm is marked alerted, as
        # the live one marks it, and nothing is queued.
        alert_fire_alarms(self.engine, self._resolver, (), Counters(), now)

    def _breaches(self, now: datetime) -> None:
        record_breaches(self.engine, now)

    def _state_tick(self, now: datetime) -> None:
        result = state_tick(self.engine, self.state_rules, self.sites, now)
        for work_order_id in result.opened:
            self.steps.bind(work_order_id, None, now)

    def _visit_due(self, device: str, visited: datetime, now: datetime) -> None:
        """A cycle after a visit: the monitor's tick can only find something if no visit came since."""
        if self._visited.get(device) == visited:
            self._maintenance_tick(now)

    def _maintenance_tick(self, now: datetime) -> None:
        for item in visits_overdue(self.engine, DEFAULT_CYCLE, now):
            self.breach_check(item.due_at + VISIT_PROFILE.clocks[0].within)
            self.at(item.due_at + DEFAULT_CYCLE + MONITOR_DELAY, self._maintenance_tick)
        settle_overdue(self.engine)

    def _checks_tick(self, now: datetime) -> None:
        for item in checks_overdue(self.engine, CHECK_PERIOD, now):
            self.steps.overdue_check(item.subject, item.work_order_id)
            self.breach_check(item.due_at + CHECK_PROFILE.clocks[0].within)
            self.at(item.due_at + CHECK_PERIOD + MONITOR_DELAY, self._checks_tick)

    # --- fire checks and alarm verdicts, through the API's functions -----------------------------------------------

    def _check(self, check: CheckPlan, now: datetime) -> None:
        record_check(
            self.engine,
            site=self.site.id,
            device=check.panel,
            system=None,
            item=check.item,
            actor=check.actor,
            result=check.result,
            note=check.note,
            at=check.at,
            now=now,
        )
        if check.late:
            self.steps.settle_check(check, now)
        self.at(check.at + CHECK_PERIOD + MONITOR_DELAY, self._checks_tick)

    def _verdict(self, outcome: AlarmOutcome, now: datetime) -> None:
        alarm_id = self._alarms.get(outcome.event_id)
        if alarm_id is not None:
            set_outcome(self.engine, alarm_id, outcome.outcome, actor=outcome.actor, note=outcome.note, at=now)
