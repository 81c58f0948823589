"""`facmon probe URL`, the health check of the compose file: exit 0 on 2xx, 1 on anything else, saying why."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from facmon.kernel.daemons import free_port
from tests.shell.ops.support import run
from tests.support import serving_in_thread


async def _healthy(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "checks": {"mqtt": "ok"}})


async def _failing(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "failing", "failing": ["mqtt"]}, status_code=503)


def test_probe_answers_with_the_health_it_got(tmp_path: Path) -> None:
    app = Starlette(routes=[Route("/health", _healthy), Route("/failing", _failing)])
    with serving_in_thread(app) as base:
        ok = run("probe", f"{base}/health", state=tmp_path)
        assert ok.exit_code == 0
        assert f"{base}/health: 200 OK: " in ok.stdout
        failing = run("probe", f"{base}/failing", state=tmp_path)
        assert failing.exit_code == 1
        assert '503 Service Unavailable: {"status":"failing","failing":["mqtt"]}' in failing.stderr
        missing = run("probe", f"{base}/nothing-here", state=tmp_path)
        assert missing.exit_code == 1
        assert "404 Not Found" in missing.stderr
    closed = run("probe", "--timeout", "2", f"http://127.0.0.1:{free_port()}/health", state=tmp_path)
    assert closed.exit_code == 1
    assert "no answer: " in closed.stderr
    assert "refused" in closed.stderr.lower()
