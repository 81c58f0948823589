"""No NUL character (U+0000) in what a request carries: its path, its query and its JSON body.

PostgreSQL's text columns cannot hold U+0000 (psycopg refuses such a value, which became a 500), and no identifier,
name or note of facmon means one; SQLite would store it as is. So a request with one is refused the same way on
both databases, as a 422 naming where it was, before any route reads the database.

`refuse_nul` is a dependency of the routers under /api/v1, after their access policy, so a caller without a token
still gets 401 first. It costs a substring test on the body; only a body that holds `\\u0000` (or a raw NUL, which JSON
does not allow in a string) is parsed to say which field. The login and token routes, which check the caller inside
the route, refuse NUL in their string types instead (`no_nul`), so body validation comes after that check there too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect

MESSAGE = "a NUL character (U+0000) is not allowed"


def _nul_locations(value: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[int | str, ...]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*loc, key)
            yield from _nul_locations(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*loc, index))


def no_nul(value: str) -> str:
    """A pydantic AfterValidator for a string field: the same refusal, as part of the body's own validation."""
    if "\x00" in value:
        raise ValueError(MESSAGE)
    return value


async def refuse_nul(request: Request) -> None:
    """Raise a 422 listing every path parameter, query parameter and body field that holds a NUL character."""
    found: list[tuple[int | str, ...]] = [
        ("path", name) for name, value in request.path_params.items() if "\x00" in str(value)
    ]
    found += [("query", name) for name, value in request.query_params.multi_items() if "\x00" in name + value]
    try:
        body = await request.body()  # FastAPI has read it already for the route; this is its cached copy
    except ClientDisconnect:  # a GET's client gone before it was answered: nobody is left to answer
        return
    if b"\\u0000" in body or b"\x00" in body:
        try:
            parsed = json.loads(body)
        except ValueError:  # not JSON: the route's own validation answers for it
            parsed = None
        found += _nul_locations(parsed, ("body",))
    if found:
        raise RequestValidationError([{"loc": loc, "msg": MESSAGE, "type": "string_nul"} for loc in found])
