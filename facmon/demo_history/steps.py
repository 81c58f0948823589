"""What people did in the history, through facmon.workorders.workflow as the API does it: the responder acknowledges,
arrives
(unless a card read proved it), resolves or cancels; the office closes and calls back.

An incident's steps apply to every work order its events opened: the fault's own, and those state rules opened
because of it (a peak car out of service in a peak window, the backup needed, the building's power). A work order
that opens after a step was taken (a hold that ran out, a window that opened) gets that step a few minutes later,
as a technician on site would take it. A step a work order is past already (a card read of another incident's
technician put it on site) is skipped, as the API would refuse it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.demo_history.model import LATENCY, CheckPlan, HistoryPlan, Incident
from facmon.demo_history.profile import HistoryProfile
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from facmon.workorders.tables import Milestone, WorkOrder, WorkOrderClock, WorkOrderMember, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import add_follow_up, transition

API = "api"
S = WorkOrderStatus
Action = Callable[[datetime], None]
Schedule = Callable[[datetime, Action], None]
# A work order opened after a step was taken gets it this much later.
CATCH_UP = {"ack": timedelta(minutes=2), "arrive": timedelta(minutes=3), "resolve": timedelta(minutes=5)}


class Steps:
    def __init__(
        self,
        engine: Engine,
        site: Site,
        plan: HistoryPlan,
        profile: HistoryProfile,
        at: Schedule,
        breach_check: Callable[[datetime], None],
    ) -> None:
        self.engine = engine
        self.site = site
        self.plan = plan
        self.profile = profile
        self._at = at
        self._breach_check = breach_check
        self.bound: dict[str, list[int]] = {}
        self.done: dict[str, set[str]] = {}
        # The incident in progress on each device: work orders a timer opens there belong to it.
        self.active: dict[str, str] = {}
        self.overdue_checks: dict[str, int] = {}
        # Work orders known to be on site or further: the resolve step need not try to put them on site.
        self._past_arrival: set[int] = set()

    # --- scheduling --------------------------------------------------------------------------------------------------

    def schedule(self) -> None:
        for incident in list(self.plan.incidents.values()):
            self._schedule(incident)

    def _schedule(self, incident: Incident) -> None:
        key = incident.key
        if incident.ack_at is not None:
            self._at(incident.ack_at, lambda now: self._each(key, "ack", now))
        if incident.arrive_at is not None:
            # After the card read's event (LATENCY), for the work orders it could not move.
            delay = 2 * LATENCY if incident.arrive_by_card else timedelta(0)
            self._at(incident.arrive_at + delay, lambda now: self._each(key, "arrive", now))
        if incident.resolve_at is not None:
            self._at(incident.resolve_at, lambda now: self._each(key, "resolve", now))
        if incident.cancel_at is not None:
            self._at(incident.cancel_at, lambda now: self._each(key, "cancel", now))
        if incident.close_at is not None:
            self._at(incident.close_at, lambda now: self._each(key, "close", now))
        if incident.follow_up is not None:
            self._at(incident.follow_up.visited_at + timedelta(minutes=5), lambda now: self._follow_up(key, now))

    def started(self, key: str, device: str) -> None:
        self.active[device] = key

    # --- binding work orders to incidents ----------------------------------------------------------------------------

    def bind(self, work_order_id: int, key: str | None, now: datetime) -> None:
        key = key or self._incident_of(work_order_id)
        if key is None:
            key = self._orphan(work_order_id, now)
        self.bound.setdefault(key, []).append(work_order_id)
        done = self.done.get(key, set())
        for step in ("ack", "arrive", "resolve"):
            if step in done:
                self._at(now + CATCH_UP[step], partial(self._one, key, work_order_id, step))
        self._breach_checks(work_order_id, self.plan.incidents[key], done, now)

    def _incident_of(self, work_order_id: int) -> str | None:
        with Session(self.engine) as session:
            device = session.execute(select(WorkOrder.device).where(WorkOrder.id == work_order_id)).scalar_one()
            members = session.execute(
                select(WorkOrderMember.device).where(WorkOrderMember.work_order_id == work_order_id)
            ).scalars()
            devices = [*members, device]
        return next((self.active[d] for d in devices if d in self.active), None)

    def _orphan(self, work_order_id: int, now: datetime) -> str:
        """A work order no planned incident explains: the on-call technician deals with it in the ordinary way."""
        with Session(self.engine) as session:
            wo = session.get(WorkOrder, work_order_id)
            assert wo is not None
            device, kind = wo.device, wo.kind
        found = self.site.technicians[0] if self.site.technicians else None
        if kind in {k.value for k in DeviceKind}:
            from facmon.estate.entries import DISCIPLINE_OF_KIND
            from facmon.estate.on_call import on_call

            shift = on_call(self.site, DISCIPLINE_OF_KIND[DeviceKind(kind)], now)
            found = shift.technician if shift else found
        incident = Incident(
            key=f"other/{work_order_id}",
            device=device,
            responder=found.id if found else self.profile.office_actor,
            ack_at=now + timedelta(minutes=5),
            arrive_at=now + timedelta(minutes=30),
            resolve_at=now + timedelta(hours=2),
            resolve_note="checked on site",
        )
        self.plan.incidents[incident.key] = incident
        self._schedule(incident)
        return incident.key

    def _breach_checks(self, work_order_id: int, incident: Incident, done: set[str], now: datetime) -> None:
        """Ask the SLA monitor to look at every deadline the plan will not meet in time (only those can breach:
        another technician's card read can only bring an arrival forward)."""
        ack = now + CATCH_UP["ack"] if "ack" in done else incident.ack_at
        arrive = now + CATCH_UP["arrive"] if "arrive" in done else incident.arrive_at
        resolve = now + CATCH_UP["resolve"] if "resolve" in done else incident.resolve_at
        planned = {
            Milestone.ACKNOWLEDGED: min((t for t in (ack, arrive, resolve) if t is not None), default=None),
            Milestone.ON_SITE: arrive or resolve,
            Milestone.RESOLVED: resolve,
        }
        with Session(self.engine) as session:
            clocks = session.execute(
                select(WorkOrderClock.milestone, WorkOrderClock.due_at).where(
                    WorkOrderClock.work_order_id == work_order_id
                )
            ).all()
        for milestone, due in clocks:
            reached = incident.cancel_at or planned[Milestone(milestone)]
            if reached is None or reached > due:
                self._breach_check(due)

    # --- the steps ---------------------------------------------------------------------------------------------------

    def _each(self, key: str, step: str, now: datetime) -> None:
        self.done.setdefault(key, set()).add(step)
        for work_order_id in self.bound.get(key, []):
            self._one(key, work_order_id, step, now)
        if step in ("resolve", "cancel"):
            for device in [d for d, k in self.active.items() if k == key]:
                del self.active[device]

    def _one(self, key: str, work_order_id: int, step: str, now: datetime) -> None:
        incident = self.plan.incidents[key]
        who = incident.responder
        primary = self.bound[key][0] == work_order_id
        if step == "ack":
            self._move(work_order_id, S.ACKNOWLEDGED, who, now, note="on my way")
        elif step == "arrive":
            self._move(work_order_id, S.ON_SITE, who, now)
            self._past_arrival.add(work_order_id)
        elif step == "resolve":
            if work_order_id not in self._past_arrival:
                self._move(work_order_id, S.ON_SITE, who, now)
            self._move(work_order_id, S.RESOLVED, who, now, note=incident.resolve_note if primary else None)
        elif step == "cancel":
            self._move(work_order_id, S.CANCELLED, who, now, note=incident.cancel_note)
        elif step == "close":
            self._move(work_order_id, S.CLOSED, self.profile.office_actor, now)

    def _move(self, work_order_id: int, to: WorkOrderStatus, actor: str, at: datetime, note: str | None = None) -> None:
        # A technician who acknowledges or arrives at an unassigned work order takes it, as through the API.
        takes = to in (S.ACKNOWLEDGED, S.ON_SITE) and actor != self.profile.office_actor
        # Already past it (IllegalTransition): the API would have refused the step too.
        with contextlib.suppress(IllegalTransition):
            transition(
                self.engine, work_order_id, to, actor=actor, source=API, at=at, note=note, take=actor if takes else None
            )

    def _follow_up(self, key: str, now: datetime) -> None:
        incident = self.plan.incidents[key]
        bound = self.bound.get(key)
        if not bound or incident.follow_up is None:
            return
        with Session(self.engine) as session:
            status = session.execute(select(WorkOrder.status).where(WorkOrder.id == bound[0])).scalar_one()
        if status not in (S.RESOLVED, S.CLOSED):
            return
        plan = incident.follow_up
        add_follow_up(
            self.engine,
            bound[0],
            actor=self.profile.office_actor,
            outcome=plan.outcome,
            note=plan.note,
            visited_at=plan.visited_at,
            now=now,
            source=API,
        )

    # --- the overdue single-item checks ------------------------------------------------------------------------------

    def overdue_check(self, panel: str, work_order_id: int) -> None:
        self.overdue_checks[panel] = work_order_id

    def settle_check(self, check: CheckPlan, now: datetime) -> None:
        """The late check done: its work order on site when the check was done, resolved once it is recorded."""
        work_order_id = self.overdue_checks.pop(check.panel, None)
        if work_order_id is None:
            return
        self._move(work_order_id, S.ON_SITE, check.actor, check.at)
        self._move(work_order_id, S.RESOLVED, check.actor, now, note=f"single-item check done: {check.item}")
