"""GET /health: is the API up and can it reach the work-order database."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep, SitesDep
from api.schemas import HealthPublic
from facmon import __version__
from rules.db import WorkOrder

router = APIRouter(tags=["health"])
log = structlog.get_logger(__name__)


@router.get("/health", responses={503: {"model": HealthPublic, "description": "database unreachable"}})
def health(session: SessionDep, sites: SitesDep, response: Response) -> HealthPublic:
    try:
        # A real query on a real table, not SELECT 1: a database without the schema is not healthy either.
        session.execute(select(WorkOrder.id).limit(1))
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable", error=str(exc))
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthPublic(status="unavailable", database="unreachable", version=__version__, sites=len(sites))
    return HealthPublic(status="ok", database="ok", version=__version__, sites=len(sites))
