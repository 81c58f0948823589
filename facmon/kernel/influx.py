"""The one InfluxDB client: HTTP on the v1 API (`/write`, `/query`, `/ping`), the path InfluxDB 1.x, 2.x and 3.x all
serve.

    async with InfluxClient(InfluxSettings("http://127.0.0.1:8086", "facmon")) as influx:
        await influx.create_database()
        await influx.write(["elevator,site=s1,device=e1 floor=3i 1772353815000000000"])
        series = await influx.query("SELECT last(floor) FROM elevator WHERE site = $site", {"site": "s1"})

`BlockingInfluxClient` is the same for code without an event loop (bulk loads in a thread).

A failed request raises an `InfluxError` saying what kind of failure it is, and so what to do about it:

- `InfluxUnreachable` (`retryable`): no answer (connection refused, timeout), 5xx, 408 or 429. Try again later.
- `InfluxAuthError`: 401/403, the credentials or permissions are wrong. A person has to fix the configuration.
- `InfluxDatabaseNotFound`: 404 "database not found"; `create_database` and try again.
- `InfluxBadRequest`: the request itself is at fault (400 unparsable line, field type conflict, 413, an InfluxQL
  error, ...); its `detail` is InfluxDB's message. The same request will fail again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

__all__ = [
    "BlockingInfluxClient",
    "InfluxAuthError",
    "InfluxBadRequest",
    "InfluxClient",
    "InfluxDatabaseNotFound",
    "InfluxError",
    "InfluxSettings",
    "InfluxUnreachable",
    "Params",
    "Series",
    "quote_identifier",
]

Series = dict[str, Any]  # {"name": ..., "tags": {...}, "columns": [...], "values": [[...], ...]}
Params = Mapping[str, str | int | float]

_RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class InfluxSettings:
    """Where an InfluxDB is and how to sign in: user name and password (basic auth), or a token (2.x, 3.x).

    `verify`: check the server's TLS certificate (True), not (False), or against this CA bundle file.
    """

    url: str
    db: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    verify: bool | str = True
    timeout_s: float = 10.0


class InfluxError(RuntimeError):
    """A request InfluxDB did not carry out. `status` is the HTTP status (None: no answer); `detail` says why, in
    InfluxDB's words when it gave some ("400: unable to parse ..."); str() is a sentence for a log or a person."""

    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, status: int | None = None, *, summary: str | None = None) -> None:
        if summary is None:
            summary = f"InfluxDB unreachable: {detail}" if status is None else f"InfluxDB answered {detail}"
        super().__init__(summary)
        self.detail = detail
        self.status = status


class InfluxUnreachable(InfluxError):
    """No answer, or InfluxDB is down or overloaded (5xx, 408, 429): the same request may well succeed later."""

    retryable = True


class InfluxAuthError(InfluxError):
    """401/403: the credentials or the permissions are wrong."""


class InfluxDatabaseNotFound(InfluxError):
    """404: the database does not exist (was never made, or was dropped)."""


class InfluxBadRequest(InfluxError):
    """InfluxDB refused the request for what it holds (bad line protocol, a field type conflict, InfluxQL)."""


def quote_identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def error_text(response: httpx.Response) -> str:
    """InfluxDB's reason, "" when there is none: the `error` of its JSON body (top level or of the first statement)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        results = body.get("results")
        first = results[0] if isinstance(results, list) and results and isinstance(results[0], dict) else body
        if isinstance(first.get("error"), str):
            return f"{response.status_code}: {first['error']}"
    if response.status_code < 300:
        return ""
    return f"{response.status_code}: {response.text.strip()[:500]}"


def _raise_for(response: httpx.Response) -> None:
    """Raise the `InfluxError` of a response that is not a success."""
    status = response.status_code
    if status < 300:
        return
    detail = error_text(response)
    if status >= 500 or status in _RETRYABLE_STATUS:
        raise InfluxUnreachable(detail, status)
    if status in (401, 403):
        raise InfluxAuthError(detail, status)
    if status == 404 and "database not found" in detail:
        raise InfluxDatabaseNotFound(detail, status)
    raise InfluxBadRequest(detail, status)


def _unreachable(exc: httpx.HTTPError) -> InfluxUnreachable:
    return InfluxUnreachable(f"{type(exc).__name__}: {exc}")


def _statements(response: httpx.Response) -> list[list[Series]]:
    _raise_for(response)
    answers: list[list[Series]] = []
    for result in response.json().get("results", []):
        if "error" in result:
            error = str(result["error"])
            kind = InfluxDatabaseNotFound if error.startswith("database not found") else InfluxBadRequest
            detail = f"InfluxQL error: {error}"
            raise kind(detail, response.status_code, summary=detail)
        answers.append(result.get("series", []))
    return answers


def _checked_create(response: httpx.Response) -> None:
    _raise_for(response)
    detail = error_text(response)
    if detail:
        raise InfluxBadRequest(detail, response.status_code)


def _body(lines: Iterable[str] | bytes) -> bytes:
    return lines if isinstance(lines, bytes) else "\n".join(lines).encode()


class _Requests:
    """What the two clients send: the same requests, from one place."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings

    def client_options(self) -> dict[str, Any]:
        s = self.settings
        headers = {"Authorization": f"Token {s.token}"} if s.token else {}
        auth = httpx.BasicAuth(s.username, s.password or "") if s.username and not s.token else None
        return {"base_url": s.url.rstrip("/"), "auth": auth, "headers": headers, "timeout": s.timeout_s}

    def write(self, precision: str) -> dict[str, Any]:
        return {"method": "POST", "url": "/write", "params": {"db": self.settings.db, "precision": precision}}

    def query(self, influxql: str, params: Params | None) -> dict[str, Any]:
        args = {"db": self.settings.db, "q": influxql, "epoch": "ns"}
        if params:
            args["params"] = json.dumps(dict(params))
        return {"method": "GET", "url": "/query", "params": args}

    def create_database(self) -> dict[str, Any]:
        query = f"CREATE DATABASE {quote_identifier(self.settings.db)}"
        return {"method": "POST", "url": "/query", "data": {"q": query}}


class InfluxClient:
    """InfluxDB's v1 API over one pooled HTTP connection; close it with `aclose` (or use it as a context manager)."""

    def __init__(self, settings: InfluxSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._requests = _Requests(settings)
        self._http = httpx.AsyncClient(**self._requests.client_options(), verify=settings.verify, transport=transport)

    @property
    def url(self) -> str:
        return self.settings.url.rstrip("/")

    @property
    def db(self) -> str:
        return self.settings.db

    async def _send(self, request: dict[str, Any], content: bytes | None = None) -> httpx.Response:
        try:
            return await self._http.request(**request, content=content)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc

    async def write(self, lines: Iterable[str] | bytes, *, precision: str = "ns") -> None:
        """Write line protocol (lines, or a body of lines already joined) into the database."""
        _raise_for(await self._send(self._requests.write(precision), _body(lines)))

    async def statements(self, influxql: str, params: Params | None = None) -> list[list[Series]]:
        """The series of each statement of `influxql` (several separated by ';'), in order; times in ns.

        `params` are InfluxQL bind parameters (`$name` in the query): values sent apart from the query text, so
        text from a request never becomes InfluxQL. Identifiers cannot be bound; quote known ones.
        """
        return _statements(await self._send(self._requests.query(influxql, params)))

    async def query(self, influxql: str, params: Params | None = None) -> list[Series]:
        """The series of the (first) statement."""
        return (await self.statements(influxql, params))[0]

    async def create_database(self) -> None:
        """CREATE DATABASE, which does nothing when it exists."""
        _checked_create(await self._send(self._requests.create_database()))

    async def ping(self) -> str:
        """The server's version (empty when it does not say); raises when it does not answer 204."""
        response = await self._send({"method": "GET", "url": "/ping"})
        _raise_for(response)
        return str(response.headers.get("X-Influxdb-Version", ""))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class BlockingInfluxClient:
    """`InfluxClient` for code without an event loop: the same requests and errors, blocking."""

    def __init__(self, settings: InfluxSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._requests = _Requests(settings)
        self._http = httpx.Client(**self._requests.client_options(), verify=settings.verify, transport=transport)

    def _send(self, request: dict[str, Any], content: bytes | None = None) -> httpx.Response:
        try:
            return self._http.request(**request, content=content)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc

    def write(self, lines: Iterable[str] | bytes, *, precision: str = "ns") -> None:
        _raise_for(self._send(self._requests.write(precision), _body(lines)))

    def statements(self, influxql: str, params: Params | None = None) -> list[list[Series]]:
        return _statements(self._send(self._requests.query(influxql, params)))

    def query(self, influxql: str, params: Params | None = None) -> list[Series]:
        return self.statements(influxql, params)[0]

    def create_database(self) -> None:
        _checked_create(self._send(self._requests.create_database()))

    def ping(self) -> str:
        response = self._send({"method": "GET", "url": "/ping"})
        _raise_for(response)
        return str(response.headers.get("X-Influxdb-Version", ""))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
