"""An HTTP client for InfluxDB's v1 API (`/write`, `/query`): the one path InfluxDB 1.x, 2.x and 3.x all serve."""

from __future__ import annotations

import httpx


def influx_client(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    auth = httpx.BasicAuth(username, password or "") if username else None
    return httpx.AsyncClient(base_url=url.rstrip("/"), auth=auth, timeout=timeout_s, transport=transport)
