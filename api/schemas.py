"""What the API takes and returns: Create schemas for request bodies, Public schemas for answers.

They are separate from the ORM models on purpose: a column added to a table does not leak into the API, and the
API's shape is documented in OpenAPI from these classes alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from facmon.kernel.model import DeviceKind, Identifier
from facmon.workorders.sla import ClockState
from facmon.workorders.tables import Category, FollowUpOutcome, Milestone, Priority, WorkOrderStatus

# Every integer a request may carry has an upper bound, so a value the database cannot hold is a 422 naming the
# parameter, never an OverflowError in the driver: ids are signed 64-bit columns (SQLite's INTEGER, PostgreSQL's
# bigint), and paging stops at MAX_OFFSET (a page that deep would scan every row before it; filter instead).
MAX_ID = 2**63 - 1
MAX_OFFSET = 1_000_000
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, at most {MAX_OFFSET:,}")]
# Times too: year 1 or 9999 with a UTC offset cannot be turned into UTC (OverflowError), and InfluxDB's nanosecond
# timestamps end in 2262. Every time a request carries lies between these.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _within_bounds(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year}")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_within_bounds)]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class ServiceCheckPublic(_Public):
    ok: bool
    detail: str = ""


class HealthPublic(_Public):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    version: str
    sites: int
    # Beside the API in one process (`facmon up`): every other service's checks, e.g. "gateway.broker".
    services: dict[str, ServiceCheckPublic] | None = None


DeviceState = Literal["ok", "fault", "comm_lost", "unknown"]


class DevicePublic(_Public):
    site: str
    building: str
    id: str
    kind: DeviceKind
    model: str
    role: str | None
    installed_on: date | None
    registration_code: str | None
    comm: Literal["ok", "lost", "unknown"] = Field(
        description="ok: heard from since its gateway started (its first answer or message is reported at once) and "
        "not silent longer than its grace since; lost: silent longer than its grace; unknown: never heard from"
    )
    comm_since: datetime | None = Field(
        description="when comm was last set: the device's first answer since its gateway started, its loss or its "
        "restore; null when unknown"
    )
    last_event_at: datetime | None
    last_event_type: str | None
    open_work_orders: int
    state: DeviceState = Field(
        description="comm_lost (silent too long), else fault (an open work order), else unknown (never heard from), "
        "else ok"
    )


class ClockPublic(_Public):
    name: str
    milestone: Milestone
    state: ClockState
    due_at: datetime
    met_at: datetime | None
    time_left_s: float | None = Field(description="pending: seconds until the deadline")
    overdue_s: float | None = Field(description="breached: seconds past the deadline (until met, or until now)")


class SlaPublic(_Public):
    profile: str | None = Field(description="the SLA profile; null for work orders opened before profiles")
    state: ClockState | None = Field(description="the worst of the clocks (breached > pending > met > cancelled)")
    clocks: list[ClockPublic]


class NextDeadlinePublic(_Public):
    """The earliest deadline of the work order's SLA clocks still running (not met, not cancelled)."""

    name: str
    milestone: Milestone
    due_at: datetime
    time_left_s: float = Field(description="seconds until due_at; negative once it has passed (overdue)")


class WorkOrderPublic(_Public):
    id: int
    site: str
    building: str
    device: str
    kind: str
    fault: str
    title: str
    priority: Priority
    category: Category = Field(description="repair, task (asked for by the service plan) or check (periodic, due)")
    status: WorkOrderStatus
    detected_at: datetime
    due_at: datetime
    occurrences: int
    last_occurrence_at: datetime
    fault_cleared_at: datetime | None
    created_at: datetime
    updated_at: datetime
    previous_id: int | None = Field(description="the work order this device and fault had before this one")
    acknowledged_at: datetime | None
    on_site_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    assignee: str | None = Field(description="the technician (id in the site file) it is assigned to; null: nobody")
    next_deadline: NextDeadlinePublic | None = Field(
        description="the earliest running SLA deadline, for a countdown; null when no clock is running"
    )
    sla: SlaPublic
    next_statuses: list[WorkOrderStatus] = Field(description="the statuses a transition can go to from here")


class TimelineEntryPublic(_Public):
    at: datetime
    type: str = Field(
        description="opened, recurred, fault_cleared, transition, sla_breached, breach_withdrawn (late evidence "
        "proved the clock met in time; detail: clock, due_at, met_at, breached_at, evidence), late_evidence (arrival "
        "evidence applied at its own, earlier time; detail: evidence), follow_up, notified, escalated, silenced, "
        "assigned (detail: from, to) or note"
    )
    status: WorkOrderStatus | None = Field(description="the work order's status after this entry")
    actor: str | None
    source: str | None = Field(description="api, card_read, inspection_mode, rules, ...")
    note: str | None
    detail: dict[str, Any]


class FollowUpPublic(_Public):
    id: int
    visited_at: datetime
    actor: str
    outcome: FollowUpOutcome
    note: str | None
    recorded_at: datetime


class PersonRefPublic(_Public):
    id: str = Field(description="the technician's id in the site file")
    name: str | None = Field(description="null when the site file no longer lists the technician")
    phone: str | None


class ActorPublic(_Public):
    actor: str = Field(description="as the timeline records it: a technician id, or a user name")
    technician: PersonRefPublic | None = Field(description="when the actor is one of the site's technicians")
    last_at: datetime = Field(description="their latest timeline entry")


class PeoplePublic(_Public):
    """Who else is on it: the assignee, who is on call for it now, and everyone who acted on it."""

    assignee: PersonRefPublic | None
    on_call: list[PersonRefPublic] = Field(description="the technicians on call now for its discipline at its site")
    acted: list[ActorPublic] = Field(
        description="distinct people on its timeline (transitions, notes, assignments, follow-ups, card reads); "
        "not the rules engine or the notifier"
    )


class WorkOrderDetailPublic(WorkOrderPublic):
    timeline: list[TimelineEntryPublic]
    follow_ups: list[FollowUpPublic]
    people: PeoplePublic


class WorkOrderSummaryPublic(_Public):
    id: int
    title: str
    fault: str
    priority: Priority
    category: Category
    status: WorkOrderStatus
    detected_at: datetime
    assignee: str | None
    next_deadline: NextDeadlinePublic | None


ReadingValue = bool | int | float | str


class LatestValuePublic(_Public):
    value: ReadingValue
    at: datetime


class LatestPublic(_Public):
    at: datetime = Field(description="the newest of the fields' times")
    fields: dict[str, LatestValuePublic] = Field(description="the last value of each field, each with its own time")


class DeviceDetailPublic(DevicePublic):
    description: str
    last_heard_at: datetime | None = Field(
        description="the last time the device was heard from, as far as known: its latest reading in InfluxDB or "
        "its latest event, whichever is newer (a comm_lost event is not the device speaking); null when neither"
    )
    work_orders: list[WorkOrderSummaryPublic] = Field(description="its open work orders, most urgent first")
    latest: LatestPublic | None = Field(description="the latest readings from InfluxDB; null: see latest_error")
    latest_error: str | None = Field(description="why there is no latest state (no InfluxDB, unreachable, no data)")


class HistoryPointPublic(_Public):
    at: datetime = Field(description="the bucket's start (mean, last) or the reading's time (raw)")
    value: ReadingValue
    min: int | float | None = Field(default=None, description="numbers: the bucket's lowest reading")
    max: int | float | None = Field(default=None, description="numbers: the bucket's highest reading")


class HistoryPublic(_Public):
    site: str
    device: str
    field: str
    type: Literal["float", "integer", "boolean", "string"]
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    aggregation: Literal["mean", "last", "raw"] = Field(
        description="mean (with min and max) per bucket for numbers; for booleans and strings the readings "
        "themselves (raw) when there are no more than `points`, else the last value per bucket"
    )
    interval_s: int | None = Field(description="the bucket width; buckets without readings are left out")
    points: list[HistoryPointPublic]


# --- request bodies --------------------------------------------------------------------------------------------------

Actor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
TransitionTarget = Literal["acknowledged", "on_site", "resolved", "closed", "cancelled"]


class _Create(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransitionCreate(_Create):
    to: TransitionTarget
    note: Note | None = Field(default=None, validate_default=True)
    on_behalf_of: Identifier | None = Field(
        default=None,
        description="on_site entered by an engineer or admin: the site-file id of the qualified technician who arrived",
    )

    @field_validator("note")
    @classmethod
    def _cancel_says_why(cls, note: str | None, info: ValidationInfo) -> str | None:
        # A cancelled work order drops out of the repair figures, so the reason has to be on record.
        if note is None and info.data.get("to") == "cancelled":
            raise ValueError("say why the work order is cancelled (e.g. false alarm)")
        return note


class FollowUpCreate(_Create):
    outcome: FollowUpOutcome
    note: Note | None = None
    visited_at: Moment | None = Field(default=None, description="when the visit or call was; default now")


class AssignCreate(_Create):
    technician: Identifier | None = Field(description="the technician's id in the site file; null: nobody")


class NoteCreate(_Create):
    note: Note


class DevicePagePublic(_Public):
    items: list[DevicePublic]
    total: int = Field(description="devices matching the filters, across all pages")
    limit: int
    offset: int


class WorkOrderPagePublic(_Public):
    items: list[WorkOrderPublic]
    total: int = Field(description="work orders matching the filters, across all pages")
    limit: int
    offset: int


class Problem(_Public):
    """An error, as RFC 9457 problem details (served as application/problem+json); extension members allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class TransitionProblem(Problem):
    """A transition the work order's status does not allow: where it is and where it can go."""

    current_status: WorkOrderStatus
    allowed: list[WorkOrderStatus]


class ProblemError(Exception):
    """Raised by a route to answer with a problem document; api.app turns it into the response."""

    def __init__(self, status: int, title: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, **extensions)


PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    """An OpenAPI `responses` entry for a problem document."""
    # `model` registers the schema (FastAPI files it under application/json); the media type actually served
    # refers to it too.
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"model": model, "description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
