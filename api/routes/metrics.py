"""GET /metrics: the process's own counters (readings, rejections by device and reason, outbox, historian) as
Prometheus text. In `facmon up` every component shares one process, so this page shows the gateway's counters too."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from facmon.kernel.metrics import Counters

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    counters: Counters = request.app.state.metrics
    return PlainTextResponse(counters.prometheus(), media_type="text/plain; version=0.0.4")
