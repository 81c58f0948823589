"""What each service says about itself: a health report, and the small HTTP page that serves it with the metrics.

Every service (gateway, historian, rules, notifier) answers `health()` from the state of its own loops (connected
to the broker, the last write or tick succeeded), so asking costs nothing and never touches a device or a database.
`facmon <service> --metrics-port N` serves `GET /health` (200 when every check passes, 503 naming the ones that do
not) and `GET /metrics` (Prometheus) for probes, systemd watchdogs, container health checks and scrapers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from facmon.kernel.metrics import CONTENT_TYPE, Counters


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Health:
    service: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": "ok" if self.ok else "failing",
            "checks": {c.name: {"ok": c.ok, **({"detail": c.detail} if c.detail else {})} for c in self.checks},
        }


class Service(Protocol):
    """One long-running part of facmon: runs until cancelled, and says how it is."""

    name: str

    async def run(self) -> None: ...

    def health(self) -> Health: ...


def combined(healths: Sequence[Health], service: str = "facmon") -> Health:
    """Several services' reports as one (for `facmon up`), each check named after its service."""
    return Health(service, tuple(Check(f"{h.service}.{c.name}", c.ok, c.detail) for h in healths for c in h.checks))


def probe_app(metrics: Counters, health: Callable[[], Health]) -> Starlette:
    """GET /health and GET /metrics of one service process."""

    async def health_page(_request: Request) -> Response:
        report = health()
        return JSONResponse(report.as_json(), status_code=200 if report.ok else 503)

    async def metrics_page(_request: Request) -> Response:
        return Response(await metrics.prometheus_off_loop(), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/health", health_page), Route("/metrics", metrics_page)])
