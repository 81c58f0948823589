"""Who is on call: for a site and discipline at a time, and for a work order now (facmon.estate.on_call).

The answer carries the escalation chain (the site's supervisor and manager) so that escalation, when it comes, calls
the same people this endpoint shows. Times are answered in UTC; rotas are evaluated on the site's wall clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import Field

from api.auth import PrincipalDep
from api.deps import ClockDep, SessionDep, SitesDep
from api.routes.work_orders import WorkOrderId, visible
from api.schemas import Moment, ProblemError, _Public, problem_response
from facmon.estate.on_call import OnCall, Person, escalation_chain, on_call_for_work_order
from facmon.estate.site import Site
from facmon.kernel.clock import utc
from facmon.kernel.model import Discipline

router = APIRouter(tags=["on call"])


class TechnicianPublic(_Public):
    id: str
    name: str
    phone: str
    email: str | None
    disciplines: list[Discipline]


class OnCallPublic(_Public):
    technician: TechnicianPublic
    from_: datetime = Field(serialization_alias="from", description="when they took over")
    until: datetime = Field(description="the next change of hands: the next handoff, or an override's start or end")
    source: Literal["rota", "override"]


class PersonPublic(_Public):
    name: str
    phone: str
    email: str | None
    technician: str | None = Field(description="the technician's id when the person is one of the site's technicians")


class OnCallAnswerPublic(_Public):
    site: str
    discipline: Discipline
    at: datetime
    on_call: OnCallPublic | None = Field(description="null: no rota for the discipline covers this time")
    supervisor: PersonPublic | None
    manager: PersonPublic | None


class WorkOrderOnCallPublic(OnCallAnswerPublic):
    work_order_id: int


def _on_call(value: OnCall | None) -> OnCallPublic | None:
    if value is None:
        return None
    t = value.technician
    technician = TechnicianPublic(
        id=t.id,
        name=t.name,
        phone=t.phone,
        email=t.email,
        disciplines=sorted(t.disciplines, key=list(Discipline).index),
    )
    return OnCallPublic(technician=technician, from_=value.start, until=value.until, source=value.source)


def _person(value: Person | None) -> PersonPublic | None:
    if value is None:
        return None
    return PersonPublic(name=value.name, phone=value.phone, email=value.email, technician=value.technician)


def _site(sites: tuple[Site, ...], site_id: str) -> Site:
    site = next((s for s in sites if s.id == site_id), None)
    if site is None:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Site not found", f"no site file for site {site_id!r}")
    return site


_SITE_NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: problem_response("no such site")}


@router.get("/on-call", responses=_SITE_NOT_FOUND)
def read_on_call(
    sites: SitesDep,
    clock: ClockDep,
    site: Annotated[str, Query(min_length=1, max_length=64)],
    discipline: Discipline,
    at: Annotated[Moment | None, Query(description="with its UTC offset; default now")] = None,
) -> OnCallAnswerPublic:
    """Who is on call for `discipline` at `site` at `at`, and the supervisor and manager behind them."""
    the_site = _site(sites, site)
    when = utc(at) if at is not None else clock.now()
    chain = escalation_chain(the_site, discipline, when)
    return OnCallAnswerPublic(
        site=the_site.id,
        discipline=discipline,
        at=when,
        on_call=_on_call(chain.on_call),
        supervisor=_person(chain.supervisor),
        manager=_person(chain.manager),
    )


@router.get(
    "/work-orders/{work_order_id}/on-call",
    responses={
        status.HTTP_403_FORBIDDEN: problem_response("a technician asking about another site's work order"),
        status.HTTP_404_NOT_FOUND: problem_response("no such work order, or no site file for its site"),
        status.HTTP_409_CONFLICT: problem_response("no discipline covers the work order's kind"),
    },
)
def read_work_order_on_call(
    session: SessionDep, sites: SitesDep, clock: ClockDep, user: PrincipalDep, work_order_id: WorkOrderId
) -> WorkOrderOnCallPublic:
    """Who is on call now for the work order's discipline at its site, and the supervisor and manager; technicians
    only for work orders of their sites."""
    work_order = visible(session, user, work_order_id)
    site = _site(sites, work_order.site)
    now = clock.now()
    try:
        chain = on_call_for_work_order(site, work_order.kind, now)
    except ValueError as exc:
        raise ProblemError(status.HTTP_409_CONFLICT, "No discipline", f"work order {work_order_id}: {exc}") from exc
    return WorkOrderOnCallPublic(
        work_order_id=work_order_id,
        site=site.id,
        discipline=chain.discipline,
        at=now,
        on_call=_on_call(chain.on_call),
        supervisor=_person(chain.supervisor),
        manager=_person(chain.manager),
    )
