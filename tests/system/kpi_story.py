"""Each work order's story as the raw records tell it, for the KPI recomputation (tests/system/kpi_recompute.py);
nothing of facmon is imported here either.

What is taken as it was recorded: each work order's detection time, SLA profile and stored deadlines, the people's
actions on its timeline (through the API: on site, resolved, cancelled, with who and why) and its follow-ups; the
events and readings in InfluxDB. What is worked out here, from docs/kpis.md's words and not from facmon's own
columns (`on_site_at`, `resolved_at`, a clock's `met_at` or `breached_at`):

- when a technician was on site: the first of a granted card read at a reader of the work order's own estate by a
  technician of that estate whose disciplines cover it, the car switched to inspection mode, and an `on_site` the
  API recorded; evidence counts at its own time, from the detection to the end of the work order;
- when it was resolved: a `resolved` the API recorded; a fault that clears by itself leaves its work order open
  (only a person resolves one), so its clear resolves nothing;
- each clock at `now`: met (milestone at or before the deadline), missed (deadline passed without it), pending, or
  out of the figures (cancelled while still pending).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.system.kpi_raw import DISCIPLINE, WorkOrder

API_SOURCE = "api"
INSPECTION_CODE = "43"


# --- milestones, worked out from the evidence --------------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    """One work order as the evidence tells it."""

    wo: WorkOrder
    on_site: datetime | None
    resolved: datetime | None
    cancelled: datetime | None
    cancelled_by: str | None
    cancel_reason: str | None
    acknowledged: datetime | None = None


def _api_moment(wo: WorkOrder, status: str) -> tuple[datetime, str | None, str | None] | None:
    for at, type_, to, actor, source, note, _ in wo.timeline:
        if type_ == "transition" and to == status and source == API_SOURCE:
            return at, actor, note
    return None


def _cards(site: dict[str, Any], kind: str) -> set[str]:
    needed = DISCIPLINE.get(kind)
    return {
        card.upper()
        for person in site.get("technicians", [])
        if needed in person.get("disciplines", [])
        for card in person.get("cards", [])
    }


def _evidence(wo: WorkOrder, site: dict[str, Any], site_events: Sequence[dict[str, Any]]) -> list[datetime]:
    """Times at which the site proved someone qualified on site for `wo` (card reads, inspection mode)."""
    cards = _cards(site, wo.kind)
    found = []
    for e in site_events:
        card = e.get("card")
        granted = e.get("granted") in (True, "true")
        badge = e["type"] == "card_read" and granted and isinstance(card, str) and card.upper() in cards
        inspection = e["type"] == "status" and e["device"] == wo.device and e.get("code") == INSPECTION_CODE
        if badge or inspection:
            found.append(e["time"])
    return [at for at in found if at >= wo.detected_at]


def story(wo: WorkOrder, site: dict[str, Any], site_events: Sequence[dict[str, Any]], now: datetime) -> Story:
    cancelled = _api_moment(wo, "cancelled")
    resolved_api = _api_moment(wo, "resolved")
    ended = min([m[0] for m in (cancelled, resolved_api) if m is not None] + [now])
    arrived = [at for at in _evidence(wo, site, site_events) if at <= ended]
    on_api = _api_moment(wo, "on_site")
    if on_api is not None and on_api[0] <= ended:
        arrived.append(on_api[0])
    # A fault that went away before anyone came leaves its work order open: only a person resolves it (docs/kpis.md).
    on_site = min(arrived, default=None)
    resolved = resolved_api[0] if resolved_api else None
    acked = _api_moment(wo, "acknowledged")
    acknowledged = min([t for t in (on_site, acked[0] if acked else None) if t is not None], default=None)
    if cancelled is None:
        return Story(wo, on_site, resolved, None, None, None, acknowledged)
    return Story(wo, on_site, resolved, *cancelled, acknowledged)


def reached(s: Story, milestone: str) -> datetime | None:
    return {"on_site": s.on_site, "resolved": s.resolved, "acknowledged": s.acknowledged}.get(milestone)


def standing_breaches(wo: WorkOrder, now: datetime) -> set[str]:
    """The clocks whose breach the timeline records by `now` and has not withdrawn by then."""
    standing: set[str] = set()
    for at, type_, _, _, _, _, detail in wo.timeline:
        if at > now:
            continue
        clock = str(detail.get("clock"))
        if type_ == "sla_breached":
            standing.add(clock)
        elif type_ == "breach_withdrawn":
            standing.discard(clock)
    return standing


def outcome(s: Story, clock: str, now: datetime) -> str | None:
    """'met', 'missed', 'pending' or None (out of the figures: cancelled while pending) of one clock at `now`."""
    milestone, due = s.wo.clocks[clock]
    at = reached(s, milestone)
    if at is not None and at <= now:
        return "met" if at <= due else "missed"
    if s.cancelled is not None and s.cancelled <= now:
        return "missed" if due < s.cancelled else None
    return "missed" if due < now else "pending"
