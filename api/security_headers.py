"""Security middleware: response headers, CORS and a request body limit (`install_security`).

- Headers on every response: nosniff, no framing, no referrer, a strict Content-Security-Policy (same-origin scripts
  and styles only, nothing inline), `Cache-Control: no-store` on /api answers (work orders and phone numbers have no
  business in a shared cache), and Strict-Transport-Security when the request came over https (behind a proxy:
  uvicorn's --proxy-headers sets the scheme from X-Forwarded-Proto). A header a route sets itself is kept.
- The API docs page (/docs, api.routes.docs) sets its own policy, DOCS_CSP: the same, plus the data: images of
  Swagger UI's stylesheet.
- CORS through Starlette's CORSMiddleware, only for the configured origins (none: same-origin only, no middleware);
  a refused preflight is a problem document like every other error.
- Request bodies over `max_body_bytes` are refused with 413: up front when Content-Length says so, and while a
  chunked body streams in (counted chunk by chunk, never buffered here). The connection is kept: the server reads
  and drops the rest of the body after the answer, so a client still sending sees the 413 (closing instead would
  reset the connection under it, and it would see a broken connection rather than the answer).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import http_problem, problem_json
from api.schemas import Problem

DEFAULT_MAX_BODY_BYTES = 1_048_576

CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
# Swagger UI at /docs, from this origin's files, started by a script file (nothing inline); its stylesheet draws a
# few icons as data: SVG images.
DOCS_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
HSTS = "max-age=31536000; includeSubDomains"


def _common_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if str(scope.get("path", "")).startswith("/api/"):
        headers.append((b"cache-control", b"no-store"))
    if scope.get("scheme") == "https":
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


def _add_missing(message: Message, extra: list[tuple[bytes, bytes]]) -> Message:
    headers = list(message.get("headers", []))
    present = {k.lower() for k, _ in headers}
    headers += [(k, v) for k, v in extra if k not in present]
    return {**message, "headers": headers}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        common = _common_headers(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _add_missing(message, [*common, (b"content-security-policy", CSP.encode())])
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ProblemCORSMiddleware(CORSMiddleware):
    """CORSMiddleware whose refused preflight (400, plain text) is a problem document."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        keep = {k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")}
        detail = bytes(response.body).decode(errors="replace")
        problem = Problem(title="CORS preflight refused", status=response.status_code, detail=detail)
        return problem_json(problem, keep)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException, so FastAPI's body reading
    re-raises it as is (other errors there become a 400) and the error handlers answer 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, BodyTooLarge(limit))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read by something that does not turn it into a response itself
            if started:
                raise
            await self._refuse(scope, receive, send, exc)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: BodyTooLarge) -> None:
        problem = http_problem(exc, scope["method"], scope["path"])
        await problem_json(problem, exc.headers)(scope, receive, send)


def install_security(
    app: FastAPI, *, cors_origins: Sequence[str] = (), max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> None:
    """Body limit (innermost of the three), CORS, then security headers outermost so every answer carries them."""
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    if cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
