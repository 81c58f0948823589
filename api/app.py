"""The FastAPI application: `create_app(sites=..., engine=...)`.

The caller builds the settings, the engine and the site list (in main or a lifespan) and hands them in, so the app
is importable without side effects and tests run it over their own database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import Engine

from api.accounts.models import Role
from api.accounts.throttle import LoginThrottle
from api.auth import ADMINS, ENGINEERING, FIELD_WORK, OPERATIONS, REPORTING, policy
from api.deps import DatabaseWork
from api.errors import install_error_handlers
from api.nul_check import refuse_nul
from api.routes import (
    ack,
    assets,
    audit,
    deliveries,
    devices,
    docs,
    fire_alarms,
    fire_checks,
    fire_points,
    health,
    kpis,
    maintenance,
    on_call,
    reports,
    tech,
    users,
    work_order_actions,
    work_orders,
)
from api.routes import auth as auth_routes
from api.routes import metrics as metrics_route
from api.security_headers import install_security
from facmon import __version__
from facmon.estate.site import Site
from facmon.kernel.health import Health
from facmon.kernel.metrics import Counters
from facmon.notifier.tokens import check_secret
from facmon.reports.kpi_data import InfluxReader

API_PREFIX = "/api/v1"


def create_app(
    *,
    sites: Sequence[Site],
    engine: Engine,
    metrics: Counters | None = None,
    influx: InfluxReader | None = None,
    ack_secret: bytes | None = None,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = 1_048_576,
    services_health: Callable[[], Health] | None = None,
    database_concurrency: int = 1,
) -> FastAPI:
    """`database_concurrency`: how many of the busiest reads run at once (api.deps.DatabaseWork)."""
    ids = [site.id for site in sites]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"site ids used by more than one site file: {duplicates}")
    app = FastAPI(
        title="facmon",
        version=__version__,
        description="Devices, their status and the work orders opened for their faults.",
        openapi_url="/openapi.json",
        docs_url=None,  # FastAPI's /docs and /redoc load from a CDN; ours (api.routes.docs) from files shipped here
        redoc_url=None,
    )
    app.state.sites = tuple(sites)
    app.state.engine = engine
    app.state.database_work = DatabaseWork(database_concurrency)
    app.state.metrics = metrics if metrics is not None else Counters()
    # Where the API runs beside other services (`facmon up`), their health is part of its own.
    app.state.services_health = services_health
    # InfluxDB for the fire intact KPI; without it that KPI says it is unavailable.
    app.state.influx = influx
    # Signs and checks one-tap acknowledge links (facmon.notifier.tokens); an empty or default key is refused here.
    app.state.ack_secret = None if ack_secret is None else check_secret(ack_secret)
    # Every error as problem+json (api.errors); then headers, CORS and the body limit around it (api.security_headers).
    install_error_handlers(app)
    install_security(app, cors_origins=cors_origins, max_body_bytes=max_body_bytes)
    app.state.login_throttle = LoginThrottle()
    app.include_router(_v1())
    tech.install(app)  # the technician's phone page: /tech, its files under /tech/static
    docs.install(app)  # Swagger UI: /docs, its files under /docs/static
    return app


def _v1() -> APIRouter:
    """The routes under /api/v1. Who may read and who may change, per router (api.auth.policy); finer rules are the
    routes' own."""
    v1 = APIRouter(prefix=API_PREFIX)
    # No NUL characters in a path, query or body, checked after the access policy (api.nul_check): PostgreSQL
    # cannot store them.
    no_nul = Depends(refuse_nul)
    # Open: health for probes, login, and the one-tap acknowledge links, whose signed token is the credential.
    for module in (health, ack):
        v1.include_router(module.router, dependencies=[no_nul])
    v1.include_router(auth_routes.router)  # login is open; the rest of it asks for the principal itself
    for router, access in (
        (devices.router, policy(read=OPERATIONS | REPORTING, write=ENGINEERING)),
        (assets.router, policy(read=OPERATIONS | REPORTING, write=ENGINEERING)),
        (maintenance.router, policy(read=OPERATIONS | REPORTING, write=FIELD_WORK)),
        (work_orders.router, policy(read=OPERATIONS, write=FIELD_WORK)),
        (work_order_actions.router, policy(read=OPERATIONS, write=FIELD_WORK)),
        (deliveries.router, policy(read=OPERATIONS)),
        (on_call.router, policy(read=OPERATIONS)),
        (fire_alarms.router, policy(read=OPERATIONS, write=FIELD_WORK)),
        (fire_checks.router, policy(read=OPERATIONS, write=FIELD_WORK)),
        (fire_points.router, policy(read=OPERATIONS | REPORTING, write=ENGINEERING)),
        (kpis.router, policy(read=OPERATIONS | REPORTING)),
        (reports.router, policy(read=REPORTING)),
        (metrics_route.router, policy(read=ENGINEERING | {Role.VIEWER})),
        (users.router, policy(read=ADMINS, write=ADMINS)),
        (audit.router, policy(read=ADMINS)),
    ):
        v1.include_router(router, dependencies=[access, no_nul])
    return v1
