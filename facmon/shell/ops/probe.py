"""`facmon probe URL`: a health check for containers and scripts, without curl or wget in the image.

Exit 0 when URL answers GET with a 2xx, else 1; either way one line says what came back, so a container's health
log names the failing check (a service's /health answers 503 with JSON naming it).
"""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

# Enough of a body to name the failing checks, short enough for a health log line.
_BODY_CHARS = 300


def _excerpt(response: httpx.Response) -> str:
    body = " ".join(response.text.split())
    return body if len(body) <= _BODY_CHARS else body[: _BODY_CHARS - 1] + "…"


def probe(
    url: Annotated[str, typer.Argument(help="e.g. http://127.0.0.1:9101/health")],
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait for the answer")] = 5.0,
) -> None:
    """GET URL: exit 0 on a 2xx answer, 1 otherwise, printing why."""
    try:
        response = httpx.get(url, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        typer.echo(f"{url}: no answer: {exc or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    line = f"{url}: {response.status_code} {response.reason_phrase}: {_excerpt(response)}"
    if response.is_success:
        typer.echo(line)
        return
    typer.echo(line, err=True)
    raise typer.Exit(1)
