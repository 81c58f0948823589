"""One-tap acknowledge from an alert: GET /ack/{token}.

A GET because it is a link opened from a text message or a chat bot on a phone, where nothing else is one tap.
The signed token (notifier.tokens) says which work order and who; the work order is acknowledged as that recipient
with source "alert_link". Repeating the tap (or a link preview fetching it) is harmless: a work order that is already
acknowledged, or further along, answers 200 "already acknowledged". A browser gets a tiny page, anything else JSON.

The key is handed to create_app as `ack_secret`; without one the route answers 503 (links are not configured).
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from api.deps import EngineDep, SitesDep
from api.routes.work_orders import ClockDep
from api.schemas import ProblemError, problem_response
from notifier.tokens import TokenInvalid, verify
from rules.db import WorkOrderStatus
from rules.transitions import IllegalTransition
from rules.workflow import WorkOrderNotFound, transition

router = APIRouter(prefix="/ack", tags=["work orders"])

ALERT_LINK_SOURCE = "alert_link"
# Statuses that already include an acknowledgement: tapping the link again changes nothing.
_ACKNOWLEDGED_OR_LATER = frozenset(
    {WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.ON_SITE, WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED}
)


class AckPublic(BaseModel):
    work_order_id: int
    outcome: Literal["acknowledged", "already acknowledged"]
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


def _answer(body: AckPublic, accept: str | None) -> Response:
    if accept is not None and "text/html" in accept:
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


@router.get("/{token}", responses=_RESPONSES, response_model=None)
def acknowledge_by_link(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    secret: AckSecretDep,
    token: Annotated[str, Path(min_length=3, max_length=512)],
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    now = clock.now()
    try:
        claim = verify(secret, token, now=now)
    except TokenInvalid as exc:
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Acknowledge link refused", str(exc), reason=exc.reason) from exc
    actor = _actor(sites, claim.recipient_id)
    wo_id = claim.work_order_id
    try:
        transition(engine, wo_id, WorkOrderStatus.ACKNOWLEDGED, actor=actor, source=ALERT_LINK_SOURCE, at=now)
    except WorkOrderNotFound as exc:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Work order not found", str(exc)) from exc
    except IllegalTransition as exc:
        if exc.current in _ACKNOWLEDGED_OR_LATER:
            body = AckPublic(work_order_id=wo_id, outcome="already acknowledged", status=exc.current, actor=actor)
            return _answer(body, accept)
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            "Work order cannot be acknowledged",
            f"work order {wo_id} is {exc.current.value}",
            current_status=exc.current.value,
        ) from exc
    body = AckPublic(work_order_id=wo_id, outcome="acknowledged", status=WorkOrderStatus.ACKNOWLEDGED, actor=actor)
    return _answer(body, accept)
