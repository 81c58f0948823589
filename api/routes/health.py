"""GET /health: is the API up and can it reach the work-order database."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep, SitesDep
from api.schemas import HealthPublic, ServiceCheckPublic
from facmon import __version__
from facmon.workorders.tables import WorkOrder

router = APIRouter(tags=["health"])
log = structlog.get_logger(__name__)


@router.get(
    "/health",
    responses={503: {"model": HealthPublic, "description": "database unreachable, or a service failing"}},
    response_model_exclude_none=True,
)
def health(request: Request, session: SessionDep, sites: SitesDep, response: Response) -> HealthPublic:
    services = None
    services_ok = True
    if request.app.state.services_health is not None:
        report = request.app.state.services_health()
        services_ok = report.ok
        services = {c.name: ServiceCheckPublic(ok=c.ok, detail=c.detail) for c in report.checks}
    try:
        # A real query on a real table, not SELECT 1: a database without the schema is not healthy either.
        session.execute(select(WorkOrder.id).limit(1))
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable", error=str(exc))
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthPublic(
            status="unavailable", database="unreachable", version=__version__, sites=len(sites), services=services
        )
    if not services_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthPublic(
        status="ok" if services_ok else "unavailable",
        database="ok",
        version=__version__,
        sites=len(sites),
        services=services,
    )
