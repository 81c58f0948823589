"""The FastAPI application: `create_app(sites=..., engine=...)`.

The caller builds the settings, the engine and the site list (in main or a lifespan) and hands them in, so the app
is importable without side effects and tests run it over their own database.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from api.routes import ack, deliveries, devices, fire_alarms, fire_checks, health, kpis, on_call, work_orders
from api.routes import metrics as metrics_route
from api.schemas import PROBLEM_MEDIA_TYPE, ProblemError
from facmon import __version__
from facmon.metrics import METRICS, Counters
from facmon.site import Site
from notifier.tokens import check_secret
from rules.kpi_data import InfluxReader

API_PREFIX = "/api/v1"


async def _problem(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ProblemError):  # registered for ProblemError only; keeps mypy and -O honest
        raise exc
    problem = exc.problem
    return JSONResponse(problem.model_dump(), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE)


def create_app(
    *,
    sites: Sequence[Site],
    engine: Engine,
    metrics: Counters = METRICS,
    influx: InfluxReader | None = None,
    ack_secret: bytes | None = None,
) -> FastAPI:
    ids = [site.id for site in sites]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"site ids used by more than one site file: {duplicates}")
    app = FastAPI(
        title="facmon",
        version=__version__,
        description="Devices, their status and the work orders opened for their faults.",
        openapi_url="/openapi.json",
    )
    app.state.sites = tuple(sites)
    app.state.engine = engine
    app.state.metrics = metrics
    # InfluxDB for the fire intact KPI; without it that KPI says it is unavailable.
    app.state.influx = influx
    # Signs and checks one-tap acknowledge links (notifier.tokens); an empty or default key is refused here.
    app.state.ack_secret = None if ack_secret is None else check_secret(ack_secret)
    app.add_exception_handler(ProblemError, _problem)
    v1 = APIRouter(prefix=API_PREFIX)
    for module in (
        health,
        devices,
        work_orders,
        deliveries,
        ack,
        on_call,
        fire_alarms,
        fire_checks,
        kpis,
        metrics_route,
    ):
        v1.include_router(module.router)
    app.include_router(v1)
    return app
