"""Every error the API answers is an RFC 9457 problem document (application/problem+json).

`install_error_handlers(app)` registers the handlers and a request-context middleware:

- `ProblemError` (raised by routes): its problem, as is.
- `RequestValidationError` (FastAPI's, and the ones routes raise for cross-field checks): 422 whose `detail` names
  every bad field in words and whose `errors` extension lists them ({"field": "body.to", "message", "type"}).
- Starlette's `HTTPException` (404 unknown route, 405 wrong method, 401/403 from dependencies, 413 body too large):
  a problem with the exception's headers kept (WWW-Authenticate, Allow, Retry-After).
- Anything else: 500 "Internal error" without internals in the body, logged with the request id, the error and
  its innermost frames, cut to a few KiB (`describe_error`).

The middleware gives every request an id (the client's `X-Request-ID` when it is sane, else a new one), binds it to
the structlog context for the request and echoes it in the `X-Request-ID` response header. It also turns an
exception that escapes the routes into the 500 problem: a handler registered for `Exception` runs in Starlette's
outermost middleware, after the response headers of every other middleware (security headers, CORS) are out of
reach, and re-raises.

The OpenAPI document says the same: 422 is the ValidationProblem schema under application/problem+json instead of
FastAPI's HTTPValidationError; every operation lists 500; operations with a body list 400 (FastAPI's answer to a body
it cannot decode at all) and 413; operations with a security requirement list 401 and 403.
"""

from __future__ import annotations

import json
import re
import traceback
import uuid
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import PROBLEM_MEDIA_TYPE, Problem, ProblemError

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is kept when it is short and plain; anything else (log injection, huge values) is replaced.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ValidationProblem(Problem):
    """A request the API could not accept as sent: every bad field, in `detail` and one by one in `errors`."""

    errors: list[FieldError]


def problem_json(problem: Problem, headers: Mapping[str, str] | None = None) -> Response:
    body = problem.model_dump(mode="json")
    if problem.status in (204, 304):  # no body allowed
        return Response(status_code=problem.status, headers=dict(headers or {}))
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def field_name(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """("body", "to") -> "body.to"; ("query", "status", 0) -> "query.status[0]"."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "request"


def validation_problem(errors: list[dict[str, Any]] | Any) -> ValidationProblem:
    fields = [
        FieldError(
            field=field_name(tuple(e.get("loc", ()))),
            message=str(e.get("msg", "invalid")),
            type=e.get("type", "value_error"),
        )
        for e in errors
    ]
    return ValidationProblem(
        title="Invalid request",
        status=422,
        detail="; ".join(f"{f.field}: {f.message}" for f in fields) or "the request is not valid",
        errors=fields,
    )


async def _problem(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ProblemError):  # registered for ProblemError only; keeps mypy and -O honest
        raise exc
    return problem_json(exc.problem)


async def _validation(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        raise exc
    return problem_json(validation_problem(exc.errors()))


def http_problem(exc: HTTPException, method: str, path: str) -> Problem:
    status = exc.status_code
    phrase = _phrase(status)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    if status == 404 and detail == phrase:
        detail = f"nothing at {path}"
    elif status == 405 and detail == phrase:
        allowed = (exc.headers or {}).get("Allow")
        detail = f"{method} is not allowed on {path}" + (f"; allowed: {allowed}" if allowed else "")
    return Problem(title=phrase, status=status, detail=detail)


async def _http(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise exc
    return problem_json(http_problem(exc, request.method, request.url.path), exc.headers)


# What an unexpected error leaves in the log. Bounded, and formatted here without locals: handed to the logger as
# exc_info, a renderer may print every frame's locals (rich does, where structlog is not configured), which for a
# request holding the app and its database objects took tens of seconds and megabytes, inside the event loop.
MAX_ERROR_CHARS = 1_000
TRACEBACK_FRAMES = 15
MAX_TRACEBACK_CHARS = 8_000


def _clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"[{cut} characters cut] {text[-limit:]}" if keep_end else f"{text[:limit]} [{cut} characters cut]"


def describe_error(exc: BaseException) -> dict[str, str]:
    """`error` (type and message) and `traceback` (the innermost frames, the end kept), both bounded."""
    # The message is cut before formatting, so an exception carrying megabytes costs no more than a small one.
    message = _clip(str(exc), MAX_ERROR_CHARS)
    innermost = list(traceback.walk_tb(exc.__traceback__))[-TRACEBACK_FRAMES:]  # a deep recursion reads 15 files
    frames = traceback.StackSummary.extract(iter(innermost), capture_locals=False).format()
    return {
        "error": f"{type(exc).__qualname__}: {message}",
        "traceback": _clip("".join(frames), MAX_TRACEBACK_CHARS, keep_end=True),
    }


INTERNAL_ERROR = Problem(
    title="Internal error",
    status=500,
    detail="the server failed to answer this request; it has been logged (quote the X-Request-ID header)",
)


async def _internal(request: Request, exc: Exception) -> Response:
    # Only reached when an exception escapes a middleware outside RequestContextMiddleware; that one handles the rest.
    log.error("unhandled error", method=request.method, path=request.url.path, **describe_error(exc))
    return problem_json(INTERNAL_ERROR)


class RequestContextMiddleware:
    """The request id (bound to the log context, echoed in X-Request-ID) and the 500 problem for escaped errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode("latin-1"))]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if isinstance(exc, HTTPException):  # raised by a middleware inside this one
                    response = problem_json(http_problem(exc, scope["method"], scope["path"]), exc.headers)
                else:
                    log.error(
                        "unhandled error",
                        method=scope["method"],
                        path=scope["path"],
                        request_id=request_id,
                        **describe_error(exc),
                    )
                    response = problem_json(INTERNAL_ERROR)
                if started:  # too late for another answer: the server drops the connection
                    raise
                await response(scope, receive, send_with_id)


# --- OpenAPI ---------------------------------------------------------------------------------------------------------


def _problem_response(description: str, schema: str = "Problem") -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """State the problem responses of every operation in an OpenAPI document (in place; returned for chaining)."""
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationProblem):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in definition.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, definition)
    for path_item in spec.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _problem_response("the request is not valid: every bad field", "ValidationProblem")
            if "requestBody" in operation:
                # FastAPI's own answer to a body it cannot decode (not UTF-8, say) before any field is read.
                responses.setdefault("400", _problem_response("the request body cannot be read"))
                responses.setdefault("413", _problem_response("the request body is too large"))
            if operation.get("security"):
                responses.setdefault("401", _problem_response("no valid credentials"))
                responses.setdefault("403", _problem_response("the credentials do not allow this"))
            responses.setdefault("500", _problem_response("internal error (logged with the request id)"))
    # FastAPI's own 422 schemas, now that nothing refers to them (HTTPValidationError first: it refers to the other).
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(spec):
            schemas.pop(unused, None)
    return spec


def _openapi_with_problems(app: FastAPI) -> Callable[[], dict[str, Any]]:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    return openapi


def install_error_handlers(app: FastAPI) -> None:
    """Problem documents for every error. Call before install_security, so that its middleware sits outside."""
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _internal)
    app.add_middleware(RequestContextMiddleware)
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]
