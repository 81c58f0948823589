"""Security middleware (api.security_headers): headers on every answer, CORS for configured origins only, and the
request body limit, declared (Content-Length) and streamed (chunked) against a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import Engine

from api import create_app
from api.routes.docs import docs_page
from api.security_headers import CSP, DOCS_CSP, BodyLimitMiddleware
from facmon.kernel.httpserve import embedded
from tests.api.test_api import SITE

PROBLEM = "application/problem+json"
ALLOWED = "https://ops.example.com"
MiB = 1024 * 1024

uploads = APIRouter(prefix="/test")


@uploads.post("/json")
def take_json(body: dict[str, Any]) -> dict[str, int]:
    return {"keys": len(body)}


@uploads.post("/stream")
async def take_stream(request: Request) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


def make_app(engine: Engine, **options: Any) -> FastAPI:
    app = create_app(sites=[SITE], engine=engine, **options)
    app.include_router(uploads)
    return app


def client_for(app: FastAPI, base_url: str = "http://facmon.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/nothing-here", "/openapi.json"])
async def test_every_answer_carries_the_security_headers(engine: Engine, path: str) -> None:
    async with client_for(make_app(engine)) as client:
        response = await client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    assert headers.get("cache-control") == ("no-store" if path.startswith("/api/") else None)
    assert "strict-transport-security" not in headers  # plain http


async def test_hsts_only_over_https(engine: Engine) -> None:
    async with client_for(make_app(engine), "https://facmon.test") as client:
        response = await client.get("/api/v1/health")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_the_docs_page_allows_this_origin_only_and_nothing_inline(engine: Engine) -> None:
    async with client_for(make_app(engine)) as client:
        response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert csp == DOCS_CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives == {
        "default-src": "'self'",
        "img-src": "'self' data:",  # Swagger UI's stylesheet draws some icons as data: SVG images
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
    }
    # Scripts from files only: no inline script for the policy to make an exception for.
    scripts = re.findall(rb"<script\b([^>]*)>(.*?)</script>", response.content, re.DOTALL)
    assert [(b"src=" in attributes, body.strip()) for attributes, body in scripts] == [(True, b"")] * 2


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/docs/static/swagger-ui-bundle.js", 200),
        ("/docs/static/swagger-ui.css", 200),
        ("/docs/static/swagger-init.js", 200),
        ("/docs/static/favicon.png", 200),
        # The bundle of ReDoc ships beside Swagger UI's but draws its logo from another host: not served, no page.
        ("/docs/static/redoc.standalone.js", 404),
        ("/redoc", 404),
        ("/docs/oauth2-redirect", 404),  # bearer tokens only: no OAuth2 flow comes back to a redirect page
    ],
)
async def test_the_docs_files_are_served_from_here(engine: Engine, path: str, status: int) -> None:
    async with client_for(make_app(engine)) as client:
        response = await client.get(path)
    assert response.status_code == status
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"


def test_behind_a_path_prefix_the_docs_page_names_its_files_under_it() -> None:
    page = docs_page("facmon", "/facmon", "/openapi.json")
    assert 'data-openapi-url="/facmon/openapi.json"' in page
    assert re.findall(r'(?:src|href)="([^"]+)"', page) == [
        "/facmon/docs/static/favicon.png",
        "/facmon/docs/static/swagger-ui.css",
        "/facmon/docs/static/swagger-ui-bundle.js",
        "/facmon/docs/static/swagger-init.js",
    ]


async def test_cors_preflight_from_an_allowed_origin_only(engine: Engine) -> None:
    app = make_app(engine, cors_origins=[ALLOWED])
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with client_for(app) as client:
        allowed = await client.options("/api/v1/work-orders/1/transitions", headers={"Origin": ALLOWED, **preflight})
        other = await client.options(
            "/api/v1/work-orders/1/transitions", headers={"Origin": "https://evil.example", **preflight}
        )
        simple_allowed = await client.get("/api/v1/health", headers={"Origin": ALLOWED})
        simple_other = await client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert {h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")} >= {
        "authorization",
        "content-type",
    }
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert allowed.headers["x-frame-options"] == "DENY"
    assert other.status_code == 400
    assert other.headers["content-type"] == PROBLEM
    assert "access-control-allow-origin" not in other.headers
    assert simple_allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-origin" not in simple_other.headers


async def test_no_cors_by_default(engine: Engine) -> None:
    async with client_for(make_app(engine)) as client:
        response = await client.options(
            "/api/v1/health", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
        )
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert not [h for h in response.headers if h.startswith("access-control-")]


async def test_the_limit_stops_reading_a_stream_at_the_limit() -> None:
    """The middleware counts while the body streams in: it stops after the chunk that passes the limit."""
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}  # never ends

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            await receive()

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await BodyLimitMiddleware(app, max_body_bytes=10_000)(scope, receive, send)
    assert reads == 11
    assert sent[0]["status"] == 413
    assert (b"content-type", PROBLEM.encode()) in sent[0]["headers"]


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[str]:
    """The app behind a real uvicorn on a free port (the in-process transport would hand over the body whole)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = embedded(make_app(engine), "127.0.0.1", port)
    task = asyncio.create_task(served.serve_until_cancelled())
    async with asyncio.timeout(10):
        while not served.started:
            if task.done():
                raise RuntimeError(f"the API could not start on port {port}")
            await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", ["/test/json", "/test/stream", "/api/v1/work-orders/1/transitions"])
async def test_bodies_over_the_limit_are_413_and_the_server_keeps_serving(server: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10) as client:
        declared = await client.post(path, content=b"x" * (2 * MiB), headers={"content-type": "application/json"})
        chunked = await client.post(path, content=_chunks(2 * MiB), headers={"content-type": "application/json"})
        within = await client.post("/test/stream", content=_chunks(MiB // 2))
        health = await client.get("/api/v1/health")
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["detail"] == f"the request body is larger than the limit of {MiB} bytes"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-length" in declared.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert (within.status_code, within.json()) == (200, {"size": MiB // 2})
    assert health.status_code == 200
