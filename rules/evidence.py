"""Arrival evidence kept for the work orders that open after it.

A card read at 10:05 proves a technician on site for a fault detected at 10:03 even when that fault's event reaches
the rules worker at 10:30 (a gateway's outbox replayed after an outage), and a camera's comm_lost work order opens only
when its 10-minute hold runs out, after the security technician may have walked in. So every granted read of a
technician's card and every switch of an elevator to inspection is kept (`keep`, table `arrival_evidence`), and when a
work order opens (`rules.store.open_or_recur`, the one way every rule opens one) the earliest kept evidence at or
after its detection that proves it moves it to on_site at the evidence's own time (`apply_kept`), by the rules of
`rules.arrival`: a card holder whose disciplines covered the work order's kind when the card was read, at that site;
an inspection of that very elevator. Evidence from before the detection proves nothing, as everywhere.

The evidence is kept for a window (FACMON_ARRIVAL_EVIDENCE_WINDOW_S, default 7 days): whenever evidence is kept, what
is older than the window is deleted. The window bounds how late a work order may open and still get evidence that
came before it: the holds of the state rules are minutes, so it is the outages that decide, and a week covers a
gateway cut off over the longest public holiday (Golden Week, seven days) with its outbox delivered on return. A work
order's arrival clocks (20 min to a few hours) are long decided by then, so older evidence could only move a work
order that has waited a week for its fault to arrive; it is not kept, and the table stays small (only technicians'
reads are kept, not residents').

Keeping is once per event id (a redelivered event keeps nothing twice), in the event's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.kernel.model import DeviceKind, Event
from facmon.workorders.late_arrival import Evidence, note_late
from facmon.workorders.tables import WorkOrderStatus
from facmon.workorders.workflow import transition_in
from rules.pipeline import upsert
from rules.tables import ArrivalEvidence

log = structlog.get_logger(__name__)

CARD_READ_SOURCE = "card_read"
INSPECTION_SOURCE = "inspection_mode"
DEFAULT_WINDOW = timedelta(days=7)


def keep(
    session: Session,
    *,
    event_id: str,
    site: str,
    device: str,
    source: str,
    actor: str,
    kinds: Sequence[str],
    note: str,
    at: datetime,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
) -> None:
    """Keep one piece of evidence (once per event id), and delete what is older than `window`. Evidence already
    older than the window when it arrives is not kept."""
    horizon = now - window
    session.execute(delete(ArrivalEvidence).where(ArrivalEvidence.at < horizon))
    if at < horizon:
        return
    stmt = upsert(session, ArrivalEvidence).values(
        event_id=event_id,
        site=site,
        device=device,
        source=source,
        actor=actor,
        kinds=sorted(kinds),
        note=note,
        at=at,
        recorded_at=now,
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[ArrivalEvidence.event_id]))


def keep_evidence(
    session: Session, event: Event, holder: Technician | None, *, at: datetime, now: datetime, window: timedelta
) -> None:
    """Keep what `event` proves at `at`: a read of `holder`'s card, or (without a holder) the switch to inspection
    it reports."""
    ref = event.ref
    if holder is not None:
        source, actor = CARD_READ_SOURCE, holder.name
        note = f"card {str(event.data['card']).upper()} read at {ref.device}"
        kinds = [k.value for k in DeviceKind if holder.covers(k)]
    else:
        source, actor, note, kinds = INSPECTION_SOURCE, ref.device, f"{ref.device} switched to inspection mode", []
    place = {"event_id": event.id, "site": ref.site, "device": ref.device}
    keep(session, **place, source=source, actor=actor, kinds=kinds, note=note, at=at, now=now, window=window)


def proves(row: ArrivalEvidence, device: str, kind: str) -> bool:
    """Whether kept evidence proves arrival for a work order of `device` (of `kind`) at the evidence's site."""
    if row.source == INSPECTION_SOURCE:
        return row.device == device
    return row.source == CARD_READ_SOURCE and kind in row.kinds


def apply_kept(
    session: Session, work_order_id: int, *, site: str, device: str, kind: str, detected_at: datetime, now: datetime
) -> Evidence | None:
    """Move a work order that has just opened to on_site by the earliest kept evidence that proves it, at the
    evidence's time; the evidence applied, or None."""
    rows = session.execute(
        select(ArrivalEvidence)
        .where(ArrivalEvidence.site == site, ArrivalEvidence.at >= detected_at, ArrivalEvidence.at <= now)
        .order_by(ArrivalEvidence.at, ArrivalEvidence.id)
    ).scalars()
    row = next((r for r in rows if proves(r, device, kind)), None)
    if row is None:
        return None
    evidence = Evidence(row.source, row.actor, row.at, row.note, event_id=row.event_id)
    session.flush()
    transition_in(
        session,
        work_order_id,
        WorkOrderStatus.ON_SITE,
        actor=row.actor,
        source=row.source,
        at=row.at,
        note=f"{row.note} (before the work order opened)",
        now=now,
    )
    note_late(session, work_order_id, evidence, now)
    log.info("kept arrival evidence applied", work_order_id=work_order_id, source=row.source, at=row.at.isoformat())
    return evidence
