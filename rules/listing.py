"""The filters the rules' lists share: by site, by the sites a caller may see, and by a period."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute


def in_sites_between(
    site_column: InstrumentedAttribute[str],
    time_column: InstrumentedAttribute[datetime],
    *,
    site: str | None = None,
    within: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """Rows of `site` and of the sites `within` (a technician's, when given), timed in [since, until)."""
    conditions: list[ColumnElement[bool]] = []
    if site is not None:
        conditions.append(site_column == site)
    if within is not None:
        conditions.append(site_column.in_(sorted(within)))
    if since is not None:
        conditions.append(time_column >= since)
    if until is not None:
        conditions.append(time_column < until)
    return conditions
