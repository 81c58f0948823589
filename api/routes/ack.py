"""One-tap acknowledge from an alert: GET /ack/{token} (a tap), POST /ack/{token} (a button or a client).

A link, because it is opened from a text message or a chat bot on a phone, where nothing else is one tap. But chat
apps fetch links to preview them, and a preview must not acknowledge an alert nobody has read (escalation would
stop). So a GET acknowledges only when the browser says a person followed the link (`Sec-Fetch-User: ?1`, sent by
browsers on user-activated navigation only); any other GET gets a page with an "Acknowledge" button (or, for JSON
clients, outcome "confirm") and changes nothing. POST acknowledges.
The signed token (facmon.notifier.tokens) says which work order and who; the work order is acknowledged as that
recipient
with source "alert_link". Repeating the tap is harmless: a work order that is already acknowledged, or further
along, answers 200 "already acknowledged". A browser gets a tiny page, anything else JSON.

The link acts for its recipient only while they still may: a technician's link needs an active account of the
technician (`facmon users add NAME --role technician --technician ID`) with a role that changes work orders, and the
technician still in the site file of the work order's site; a supervisor's or manager's (a contact without a
technician id), that they are still the site's supervisor or manager. Otherwise 403 (account disabled, role
changed) or 410 (account or person gone), with the reason, whether the link is tapped or only previewed.

The key is handed to create_app as `ack_secret`; without one the route answers 503 (links are not configured).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.accounts.models import Role, User
from api.auth import FIELD_WORK, Auditor, AuditorDep
from api.deps import ClockDep, EngineDep, SitesDep
from api.schemas import ProblemError, problem_response
from facmon.estate.on_call import escalation_chain
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.model import Discipline
from facmon.notifier.tokens import AckClaim, TokenInvalid, verify
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import WorkOrderNotFound, transition

router = APIRouter(prefix="/ack", tags=["work orders"])

ALERT_LINK_SOURCE = "alert_link"
# Statuses that already include an acknowledgement: tapping the link again changes nothing.
_ACKNOWLEDGED_OR_LATER = frozenset(
    {WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.ON_SITE, WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED}
)


class AckPublic(BaseModel):
    work_order_id: int
    outcome: Literal["acknowledged", "already acknowledged", "confirm"] = Field(
        description="confirm: nothing changed yet (a GET that was not a person's tap); POST to acknowledge"
    )
    status: WorkOrderStatus
    actor: str


def get_ack_secret(request: Request) -> bytes:
    secret: bytes | None = getattr(request.app.state, "ack_secret", None)
    if secret is None:
        raise ProblemError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Acknowledge links are not configured",
            "the API runs without a secret key, so it cannot check acknowledge links (set FACMON_SECRET_KEY)",
        )
    return secret


AckSecretDep = Annotated[bytes, Depends(get_ack_secret)]


def _actor(sites: SitesDep, recipient_id: str) -> str:
    # The technician's name as the timeline shows everyone else's; the id when the site file does not know them.
    for site in sites:
        for technician in site.technicians:
            if technician.id == recipient_id:
                return technician.name
    return recipient_id


def _confirm_page(body: AckPublic) -> HTMLResponse:
    # A plain form: no script, so the strict Content-Security-Policy (form-action 'self') allows it.
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Acknowledge work order #{body.work_order_id}</title></head><body>"
        f"<h1>Work order #{body.work_order_id}</h1><p>It is {escape(body.status.value)}. "
        f"Acknowledge it as {escape(body.actor)}?</p>"
        '<form method="post"><button type="submit">Acknowledge</button></form></body></html>'
    )
    return HTMLResponse(page)


def _answer(body: AckPublic, accept: str | None) -> Response:
    if accept is not None and "text/html" in accept:
        if body.outcome == "confirm":
            return _confirm_page(body)
        title = "Acknowledged" if body.outcome == "acknowledged" else "Already acknowledged"
        page = (
            '<!doctype html><html><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>Work order #{body.work_order_id} is {escape(body.status.value)} ({escape(body.actor)}).</p>"
            "</body></html>"
        )
        return HTMLResponse(page)
    return JSONResponse(body.model_dump(mode="json"))


_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_200_OK: {"model": AckPublic, "description": "acknowledged, or already acknowledged"},
    status.HTTP_403_FORBIDDEN: problem_response(
        "the token is malformed, altered or expired, or its recipient's account is disabled or may not change work "
        "orders"
    ),
    status.HTTP_404_NOT_FOUND: problem_response("no such work order"),
    status.HTTP_410_GONE: problem_response("the recipient has no account, or is no longer at the work order's site"),
    status.HTTP_409_CONFLICT: problem_response("the work order was cancelled"),
    status.HTTP_503_SERVICE_UNAVAILABLE: problem_response("no secret key configured"),
}


Token = Annotated[str, Path(min_length=3, max_length=512, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get("/{token}", responses=_RESPONSES, response_model=None)
def open_link(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    secret: AckSecretDep,
    auditor: AuditorDep,
    # The alphabet of the tokens (URL-safe base64 and "."): anything else is a 422, not a crash in verify().
    token: Token,
    accept: Annotated[str | None, Header()] = None,
    sec_fetch_user: Annotated[str | None, Header(description="?1: a person followed the link")] = None,
) -> Response:
    """A person's tap acknowledges; a preview or any other fetch gets the button and changes nothing."""
    claim = _claim(secret, token, clock)
    _recipient_may_act(engine, sites, claim, clock.now())
    if sec_fetch_user == "?1":
        return _answer(_acknowledge(engine, sites, clock, auditor, claim), accept)
    with Session(engine) as session:
        work_order = session.get(WorkOrder, claim.work_order_id)
        if work_order is None:
            raise ProblemError(
                status.HTTP_404_NOT_FOUND, "Work order not found", f"no work order {claim.work_order_id}"
            )
        current = WorkOrderStatus(work_order.status)
    actor = _actor(sites, claim.recipient_id)
    outcome: Literal["already acknowledged", "confirm"] = (
        "already acknowledged" if current in _ACKNOWLEDGED_OR_LATER else "confirm"
    )
    return _answer(AckPublic(work_order_id=claim.work_order_id, outcome=outcome, status=current, actor=actor), accept)


@router.post("/{token}", responses=_RESPONSES, response_model=None)
def acknowledge_by_link(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    secret: AckSecretDep,
    auditor: AuditorDep,
    token: Token,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    claim = _claim(secret, token, clock)
    _recipient_may_act(engine, sites, claim, clock.now())
    return _answer(_acknowledge(engine, sites, clock, auditor, claim), accept)


def _claim(secret: bytes, token: str, clock: Clock) -> AckClaim:
    try:
        return verify(secret, token, now=clock.now())
    except TokenInvalid as exc:
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Acknowledge link refused", str(exc), reason=exc.reason) from exc


CONTACT_PREFIX = "contact:"  # a supervisor or manager without a technician id (facmon.notifier.recipients)


def _refused(status_code: int, reason: str, detail: str) -> ProblemError:
    return ProblemError(status_code, "Acknowledge link refused", detail, reason=reason)


def _recipient_may_act(engine: Engine, sites: tuple[Site, ...], claim: AckClaim, now: datetime) -> None:
    """Raise 403/410 unless the link's recipient still may act on the work order (see the module's docstring)."""
    with Session(engine) as session:
        work_order = session.get(WorkOrder, claim.work_order_id)
        if work_order is None:
            raise ProblemError(
                status.HTTP_404_NOT_FOUND, "Work order not found", f"no work order {claim.work_order_id}"
            )
        site = next((s for s in sites if s.id == work_order.site), None)
        recipient = claim.recipient_id
        if recipient.startswith(CONTACT_PREFIX):
            _contact_still_there(site, work_order.site, recipient, now)
            return
        if site is None or not any(t.id == recipient for t in site.technicians):
            detail = f"{recipient} is no longer a technician of site {work_order.site}"
            raise _refused(status.HTTP_410_GONE, "recipient_gone", detail)
        accounts = list(session.scalars(select(User).where(User.technician == recipient)))
    if not accounts:
        raise _refused(status.HTTP_410_GONE, "no_account", f"{recipient} has no account (it was removed)")
    active = [u for u in accounts if u.active]
    if not active:
        raise _refused(status.HTTP_403_FORBIDDEN, "account_disabled", f"the account of {recipient} is disabled")
    if not any(Role(u.role) in FIELD_WORK for u in active):
        roles = ", ".join(sorted({u.role for u in active}))
        detail = f"{recipient} is now {roles}, which does not change work orders"
        raise _refused(status.HTTP_403_FORBIDDEN, "role_changed", detail)


def _contact_still_there(site: Site | None, site_id: str, recipient: str, now: datetime) -> None:
    digits = recipient.removeprefix(CONTACT_PREFIX)
    if site is not None:
        chain = escalation_chain(site, next(iter(Discipline)), now)  # supervisor and manager: any discipline
        for person in (chain.supervisor, chain.manager):
            if person is not None and "".join(ch for ch in person.phone if ch.isdigit()) == digits:
                return
    detail = f"{recipient} is no longer the supervisor or manager of site {site_id}"
    raise _refused(status.HTTP_410_GONE, "recipient_gone", detail)


def _acknowledge(engine: Engine, sites: tuple[Site, ...], clock: Clock, auditor: Auditor, claim: AckClaim) -> AckPublic:
    now = clock.now()
    actor = _actor(sites, claim.recipient_id)
    wo_id = claim.work_order_id
    try:
        transition(engine, wo_id, WorkOrderStatus.ACKNOWLEDGED, actor=actor, source=ALERT_LINK_SOURCE, at=now)
    except WorkOrderNotFound as exc:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Work order not found", str(exc)) from exc
    except IllegalTransition as exc:
        if exc.current in _ACKNOWLEDGED_OR_LATER:
            return AckPublic(work_order_id=wo_id, outcome="already acknowledged", status=exc.current, actor=actor)
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            "Work order cannot be acknowledged",
            f"work order {wo_id} is {exc.current.value}",
            current_status=exc.current.value,
        ) from exc
    auditor.record_now(
        engine,
        "work_order.acknowledged",
        "work_order",
        wo_id,
        actor=actor,
        after={"status": WorkOrderStatus.ACKNOWLEDGED, "source": ALERT_LINK_SOURCE, "recipient": claim.recipient_id},
    )
    return AckPublic(work_order_id=wo_id, outcome="acknowledged", status=WorkOrderStatus.ACKNOWLEDGED, actor=actor)
