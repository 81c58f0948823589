"""GB 25201 single-item checks: record one, list them. An overdue check opens a work order (rules.fire_checks)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field, StringConstraints, model_validator

from api.auth import AuditorDep
from api.auth import PrincipalDep as CurrentUserDep
from api.deps import ClockDep, EngineDep, SessionDep
from api.schemas import Moment, Note, Offset, ProblemError, _Create, _Public
from rules.fire_checks import list_checks, record_check
from rules.tables import FireCheckResult

router = APIRouter(prefix="/fire-checks", tags=["fire checks"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
SystemName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=48, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class FireCheckCreate(_Create):
    site: Name
    device: Name | None = Field(default=None, description="the fire panel checked")
    system: SystemName | None = Field(default=None, description="or the fire system checked, e.g. sprinkler")
    item: Item = Field(description="what was checked, e.g. 'smoke detector function test, loop 1'")
    result: FireCheckResult
    note: Note | None = None
    at: Moment | None = Field(default=None, description="when the check was done; default now")

    @model_validator(mode="after")
    def _one_subject(self) -> FireCheckCreate:
        if (self.device is None) == (self.system is None):
            raise ValueError("give either device (a fire panel) or system, not both and not neither")
        return self


class FireCheckPublic(_Public):
    id: int
    site: str
    device: str | None
    system: str | None
    item: str
    actor: str
    result: FireCheckResult
    note: str | None
    at: datetime
    recorded_at: datetime


@router.post("", status_code=status.HTTP_201_CREATED)
def create_fire_check(
    engine: EngineDep, clock: ClockDep, user: CurrentUserDep, auditor: AuditorDep, body: FireCheckCreate
) -> FireCheckPublic:
    if not user.sees_site(body.site):
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not your site", f"{user.username} does not work at {body.site}")
    now = clock.now()
    at = body.at or now
    if at > now:
        error = {"type": "value_error", "loc": ("body", "at"), "msg": "a check cannot be in the future", "input": at}
        raise RequestValidationError([error])
    check = record_check(
        engine,
        site=body.site,
        device=body.device,
        system=body.system,
        item=body.item,
        actor=user.actor,
        result=body.result,
        note=body.note,
        at=at,
        now=now,
    )
    public = FireCheckPublic.model_validate(check)
    auditor.record_now(engine, "fire_check.create", "fire_check", public.id, after=public.model_dump())
    return public


@router.get("")
def read_fire_checks(
    session: SessionDep,
    user: CurrentUserDep,
    site: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[Moment | None, Query(alias="from")] = None,
    to: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[FireCheckPublic]:
    checks = list_checks(session, site=site, within=user.sites, since=from_, until=to, limit=limit, offset=offset)
    return [FireCheckPublic.model_validate(c) for c in checks]
