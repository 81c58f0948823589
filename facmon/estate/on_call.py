"""Who is on call: the pure `on_call(site, discipline, at)` over the site file's rotas and overrides.

Handoffs are wall-clock times in the site's zone (facmon.estate.rota), so a daily rota handing over at 08:30 in Berlin
gives a 23-hour shift on the night clocks go forward and a 25-hour one when they go back. Comparisons are made in
UTC: aware datetimes that share a tzinfo compare by wall time, which is wrong inside a DST fold. A handoff time that
does not exist on a spring-forward day happens when the clocks have jumped (02:30 CET, which is 03:30 CEST).

`on_call_for_work_order` adds the escalation chain behind the technician: the site's supervisor and manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from facmon.estate.entries import DISCIPLINE_OF_KIND, Technician
from facmon.estate.rota import Contact, Override, Rotation
from facmon.estate.site import Site
from facmon.kernel.clock import utc
from facmon.kernel.model import Discipline

# The discipline a work order of each kind needs: a device kind, or a system-wide check of the fire system.
DISCIPLINE_OF_WORK_ORDER_KIND: dict[str, Discipline] = {kind.value: d for kind, d in DISCIPLINE_OF_KIND.items()} | {
    "fire_system": Discipline.FIRE
}


@dataclass(frozen=True)
class OnCall:
    technician: Technician
    start: datetime  # UTC: when this technician took over (a handoff, or an override's start or end)
    until: datetime  # UTC: the next change of hands (the next handoff, or an override's start or end)
    source: Literal["rota", "override"]


@dataclass(frozen=True)
class Person:
    """A supervisor or manager, resolved: a technician of the site (`technician` is their id) or a contact."""

    name: str
    phone: str
    email: str | None
    technician: str | None


@dataclass(frozen=True)
class EscalationChain:
    discipline: Discipline
    on_call: OnCall | None
    supervisor: Person | None
    manager: Person | None


def _local(day: date, rotation: Rotation, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, rotation.handoff, tzinfo=tz).astimezone(UTC)


def _override_span(override: Override, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return override.start.replace(tzinfo=tz).astimezone(UTC), override.end.replace(tzinfo=tz).astimezone(UTC)


def _rota_shift(rotation: Rotation, at: datetime, tz: ZoneInfo) -> tuple[str, datetime, datetime] | None:
    """(technician id, handoff, next handoff) of the shift holding `at`, or None before the rota's first handoff."""
    period_days = rotation.every.days
    # A first guess from local dates, then corrected by at most one shift either way (the handoff time of day).
    shift = (at.astimezone(tz).date() - rotation.start).days // period_days
    while shift >= 0 and at < _local(rotation.start + timedelta(days=shift * period_days), rotation, tz):
        shift -= 1
    while at >= _local(rotation.start + timedelta(days=(shift + 1) * period_days), rotation, tz):
        shift += 1
    if shift < 0:
        return None
    begins = _local(rotation.start + timedelta(days=shift * period_days), rotation, tz)
    ends = _local(rotation.start + timedelta(days=(shift + 1) * period_days), rotation, tz)
    return rotation.technicians[shift % len(rotation.technicians)], begins, ends


def on_call(site: Site, discipline: Discipline, at: datetime) -> OnCall | None:
    """Who is on call for `discipline` at `at` (aware, any zone); None when nobody is (no rota, or before it)."""
    at, tz = utc(at), site.tz
    spans = [(*_override_span(o, tz), o) for o in site.on_call.overrides_for(discipline)]
    for begins, ends, override in spans:
        if begins <= at < ends:
            return OnCall(site.technician(override.technician), begins, ends, "override")
    rotation = site.on_call.rotation(discipline)
    shift = _rota_shift(rotation, at, tz) if rotation else None
    if shift is None:
        return None
    technician, begins, ends = shift
    # An override inside the shift cuts it: the rota's technician is on call after it ended, until the next starts.
    begins = max([begins, *(end for _, end, _ in spans if begins < end <= at)])
    ends = min([ends, *(start for start, _, _ in spans if at < start < ends)])
    return OnCall(site.technician(technician), begins, ends, "rota")


def _person(site: Site, ref: str | Contact | None) -> Person | None:
    if ref is None:
        return None
    if isinstance(ref, Contact):
        return Person(ref.name, ref.phone, ref.email, technician=None)
    technician = site.technician(ref)
    return Person(technician.name, technician.phone, technician.email, technician=technician.id)


def escalation_chain(site: Site, discipline: Discipline, at: datetime) -> EscalationChain:
    """Who is on call for `discipline` at `at`, and the site's supervisor and manager behind them."""
    return EscalationChain(
        discipline=discipline,
        on_call=on_call(site, discipline, at),
        supervisor=_person(site, site.supervisor),
        manager=_person(site, site.manager),
    )


def on_call_for_work_order(site: Site, work_order_kind: str, at: datetime) -> EscalationChain:
    """The escalation chain for a work order of `work_order_kind` (elevator, fire_panel, gate, camera, ...).

    Raises ValueError for a kind no discipline covers.
    """
    discipline = DISCIPLINE_OF_WORK_ORDER_KIND.get(work_order_kind)
    if discipline is None:
        raise ValueError(f"no discipline covers work orders of kind {work_order_kind!r}")
    return escalation_chain(site, discipline, at)
