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

The key is handed to create_app as `ack_secret`; without one the route answers 503 (links are not configured).
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.auth import Auditor, AuditorDep
from api.deps import ClockDep, EngineDep, SitesDep
from api.schemas import ProblemError, problem_response
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
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
    status.HTTP_403_FORBIDDEN: problem_response("the token is malformed, altered or expired"),
    status.HTTP_404_NOT_FOUND: problem_response("no such work order"),
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
    return _answer(_acknowledge(engine, sites, clock, auditor, _claim(secret, token, clock)), accept)


def _claim(secret: bytes, token: str, clock: Clock) -> AckClaim:
    try:
        return verify(secret, token, now=clock.now())
    except TokenInvalid as exc:
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Acknowledge link refused", str(exc), reason=exc.reason) from exc


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
