"""Escalation policies as data (facmon/notifier/library/escalation.yaml) and the pure function that reads them.

`due_steps(policy, state, now)` answers, for one work order, which notifications are due now and when the next one
will be: nothing in it reads a clock or a database, so the dispatcher, the tests and a replay agree by construction.

A step is one stage's n-th sending, keyed "<stage>#<n>". The dispatcher records each step it carried out (durably,
with the work order), and a recorded step is never due again. A repeating stage whose earlier repeats were missed
(the dispatcher was down) is due once, as its latest repeat, not once per missed repeat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facmon.kernel.datafile import DataFileError, read_entries, validated_entries
from facmon.workorders.sla import Duration
from facmon.workorders.tables import Milestone, Priority, WorkOrderStatus

DEFAULT_POLICY_FILE = Path(__file__).parent / "library" / "escalation.yaml"


class Role(StrEnum):
    """Who a stage tells, resolved at sending time (facmon.estate.on_call): the rota decides who `on_call` is."""

    ON_CALL = "on_call"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    kinds: frozenset[str] | None = None
    priorities: frozenset[Priority] | None = None

    def fits(self, kind: str, priority: str) -> bool:
        return (self.kinds is None or kind in self.kinds) and (
            self.priorities is None or priority in {p.value for p in self.priorities}
        )


class Stage(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    notify: Role
    at: Duration | None = None
    every: Duration | None = None
    times: int | None = Field(default=None, ge=1, le=1000)
    on_breach: str | None = None
    until: Milestone

    @model_validator(mode="after")
    def _one_trigger(self) -> Stage:
        if (self.at is None) == (self.on_breach is None):
            raise ValueError("give exactly one of `at` (a time after detection) and `on_breach` (an SLA clock)")
        if self.at is not None and not timedelta(0) <= self.at <= timedelta(days=7):
            raise ValueError("`at` must be between 0 and 7 days")
        if self.every is not None and (self.on_breach is not None or self.every < timedelta(minutes=1)):
            raise ValueError("`every` repeats an `at` stage, at least a minute apart")
        if self.times is not None and self.every is None:
            raise ValueError("`times` limits the repeats of `every`")
        return self


class Policy(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    match: Match
    # Routine alerts may be silenced, grouped and digested (facmon.notifier.storm); emergencies never are.
    routine: bool
    stages: tuple[Stage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        names = [s.name for s in self.stages]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"stage names used twice: {repeated}")
        if self.routine and self.match.priorities is not None and Priority.EMERGENCY in self.match.priorities:
            raise ValueError("a policy for emergencies cannot be routine (it would be silenced in maintenance)")
        return self


class PolicyFileError(DataFileError):
    """Policies that cannot be used; `problems` lists each one as 'file: policy <id>: what is wrong'."""


def load_policies(path: str | Path = DEFAULT_POLICY_FILE) -> tuple[Policy, ...]:
    """The policies in file order (the first that fits a work order is its policy); raises PolicyFileError."""
    path = Path(path)
    _, entries, problems = read_entries(path, "policies")
    if problems:
        raise PolicyFileError(problems)
    policies: list[Policy] = []
    for label, policy in validated_entries(path, "policy", entries, Policy):
        if isinstance(policy, list):
            problems.extend(policy)
            continue
        if any(p.id == policy.id for p in policies):
            problems.append(f"{path}: {label}: id used twice")
        policies.append(policy)
    if not problems and not any(p.match.kinds is None and p.match.priorities is None for p in policies):
        problems.append(f"{path}: no catch-all policy (match: {{}}), so some work orders would tell nobody")
    if problems:
        raise PolicyFileError(problems)
    return tuple(policies)


def select_policy(policies: Sequence[Policy], kind: str, priority: str) -> Policy:
    """The first policy that fits; load_policies guarantees a catch-all."""
    for policy in policies:
        if policy.match.fits(kind, priority):
            return policy
    raise LookupError(f"no policy fits kind {kind!r}, priority {priority!r}")


# How far along the lifecycle a status is; a stage runs while the work order is short of its `until` milestone.
_RANK = {
    WorkOrderStatus.OPEN: 0,
    WorkOrderStatus.ACKNOWLEDGED: 1,
    WorkOrderStatus.ON_SITE: 2,
    WorkOrderStatus.RESOLVED: 3,
    WorkOrderStatus.CLOSED: 4,
}
_MILESTONE_RANK = {Milestone.ACKNOWLEDGED: 1, Milestone.ON_SITE: 2, Milestone.RESOLVED: 3}


@dataclass(frozen=True)
class EscalationState:
    """What the function needs to know about a work order."""

    detected_at: datetime
    status: WorkOrderStatus
    # SLA clock name -> when its breach was recorded.
    breaches: Mapping[str, datetime]
    # Steps already carried out (sent, grouped, digested or silenced).
    done: frozenset[str]


@dataclass(frozen=True)
class Step:
    stage: Stage
    repeat: int
    due_at: datetime

    @property
    def key(self) -> str:
        return f"{self.stage.name}#{self.repeat}"

    @property
    def reason(self) -> str:
        """Notification.reason: "opened", "reminder", "escalation" or "breach"."""
        if self.stage.on_breach is not None:
            return "breach"
        if self.repeat > 0:
            return "reminder"
        return "opened" if self.stage.notify is Role.ON_CALL else "escalation"


@dataclass(frozen=True)
class Plan:
    due: tuple[Step, ...]
    # When the next step falls due by time alone; None when none will (a breach may still come).
    next_wake: datetime | None


def active(stage: Stage, status: WorkOrderStatus) -> bool:
    if status in (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED, WorkOrderStatus.CANCELLED):
        return False
    return _RANK[status] < _MILESTONE_RANK[stage.until]


def due_steps(policy: Policy, state: EscalationState, now: datetime) -> Plan:
    """The steps of `policy` due at `now` for a work order in `state`, and when the next falls due."""
    due: list[Step] = []
    wakes: list[datetime] = []
    for stage in policy.stages:
        if not active(stage, state.status):
            continue
        if stage.on_breach is not None:
            breached_at = state.breaches.get(stage.on_breach)
            if breached_at is not None and breached_at <= now:
                step = Step(stage, 0, breached_at)
                if step.key not in state.done:
                    due.append(step)
            continue
        assert stage.at is not None  # the model allows no third kind of stage
        first = state.detected_at + stage.at
        if now < first:
            wakes.append(first)
            continue
        repeat = 0
        if stage.every is not None:
            repeat = int((now - first) / stage.every)
            if stage.times is not None:
                repeat = min(repeat, stage.times - 1)
            if stage.times is None or repeat + 1 < stage.times:
                wakes.append(first + (repeat + 1) * stage.every)
        step = Step(stage, repeat, first + repeat * stage.every if stage.every else first)
        if step.key not in state.done:
            due.append(step)
    return Plan(tuple(due), min(wakes, default=None))
