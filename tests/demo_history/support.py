"""What the demo history tests share: the demo site, a fixed end, and reading a database and InfluxDB back."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site, load_site
from facmon.kernel.db import Base

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
# A Friday morning in site time; October 2026 is the last complete month before it.
UNTIL = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def demo_site() -> Site:
    return load_site(EXAMPLES / "demo-site.yaml")


def dump(engine: Engine) -> str:
    """Every row of every table, in primary-key order, as one text: two databases with the same rows dump the same."""
    rows: list[object] = []
    with Session(engine) as session:
        for table in Base.metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            rows.append([table.name, [list(row) for row in session.execute(query)]])
    return json.dumps(rows, default=str, sort_keys=True)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def query(url: str, db: str, influxql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/query", params={"db": db, "q": influxql, "epoch": "ns"}, timeout=30)
    response.raise_for_status()
    result = response.json()["results"][0]
    assert "error" not in result, result
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def count(url: str, db: str, influxql: str) -> int:
    series = query(url, db, influxql)
    return sum(int(values[1]) for s in series for values in s["values"])
