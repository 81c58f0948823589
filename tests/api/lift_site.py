"""A site of three elevators polled once a minute (a reading holds at most 3 minutes), one of each role, for the
availability tests; and times on its wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from facmon.estate.site import Site


def lift_site(site_id: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id, "timezone": "Asia/Shanghai"},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {"id": f"e{n}", "kind": "elevator", "model": model, "role": role, "poll_interval_s": 60,
                         "address": {"host": "127.0.0.1", "port": 1500 + n}}
                        for n, model, role in [(1, "elev-gb-a", "main"), (2, "elev-st-b", "peak"),
                                               (3, "elev-gb-a", "backup")]
                    ],
                }
            ],
        }
    )  # fmt: skip


def local(hour: int, minute: int = 0, day: int = 2) -> datetime:
    """A time on the Shanghai wall clock (UTC+8) in March 2026, in UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)
