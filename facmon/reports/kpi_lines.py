"""The monthly report's lines of the work-order KPIs (facmon.reports.kpi_figures), and the work orders behind a miss:

- arrival compliance (the contract clock, and the statutory clock): the elevator work orders whose technician came
  after the clock's deadline, was not there when the work order was cancelled after it, or has not come yet;
- repair timeliness: the work orders repaired after their repair clock's deadline, cancelled after it, or still
  not repaired past it;
- follow-up visit rate: the resolved work orders without a follow-up.

The work orders are listed when the value is below the target, whatever the coverage says. A work order still
waiting is late up to `until` (the month's end or now, the earlier), never below 0 (a deadline after the month).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from facmon.reports.kpi import ClockFacts, ClockFigure, Decided, KpiRow
from facmon.reports.kpi_figures import Figure, WorkOrderFigures
from facmon.reports.kpi_models import ClockCount, KpiLine, WorkOrderMiss


def _late(later: datetime, deadline: datetime) -> float:
    return round((later - deadline).total_seconds() / 60.0, 1)


def _miss(r: KpiRow, late: float | None, detail: str) -> WorkOrderMiss:
    return WorkOrderMiss(
        id=r.id, device=r.device, title=r.title, detected_at=r.detected_at, late_min=late, detail=detail
    )


def clocks_text(clocks: tuple[ClockFigure, ...]) -> str:
    """'20 min: 7 work orders, 30 min: 1'; 'no work orders' without any."""
    if not clocks:
        return "no work orders"
    parts = [f"{c.minutes:g} min: {c.work_orders}" for c in clocks]
    parts[0] += " work order" + ("" if clocks[0].work_orders == 1 else "s")
    return ", ".join(parts)


def _arrival_miss(d: Decided, clock: ClockFacts, until: datetime) -> WorkOrderMiss:
    r = d.row
    if clock.met_at is not None:
        return _miss(r, _late(clock.met_at, clock.due_at), f"on site {_late(clock.met_at, r.detected_at)} min after")
    if clock.cancelled_at is not None:
        return _miss(r, _late(clock.cancelled_at, clock.due_at), "cancelled after its deadline, nobody on site")
    return _miss(r, _late(max(until, clock.due_at), clock.due_at), "no technician on site yet")


def _repair_miss(d: Decided, clock: ClockFacts, until: datetime) -> WorkOrderMiss:
    r = d.row
    if clock.met_at is not None:
        return _miss(r, _late(clock.met_at, clock.due_at), "repaired after its deadline")
    if clock.cancelled_at is not None:
        return _miss(r, _late(clock.cancelled_at, clock.due_at), "cancelled after its deadline, not repaired")
    return _miss(r, _late(max(until, clock.due_at), clock.due_at), "not repaired yet")


def _line(key: str, name: str, f: Figure, misses: list[WorkOrderMiss]) -> KpiLine:
    ratio = f.ratio
    return KpiLine(
        key=key,
        name=name,
        target=ratio.target,
        value=ratio.value,
        numerator=ratio.numerator,
        denominator=ratio.denominator,
        unit="work orders",
        coverage=f.coverage.share,
        verdict=f.verdict,
        reason=f.reason,
        pending=f.judged.pending,
        clocks=[ClockCount(minutes=c.minutes, work_orders=c.work_orders) for c in f.judged.clocks],
        misses=misses if ratio.met is False else [],
    )


def _clock_misses(
    f: Figure, until: datetime, explain: Callable[[Decided, ClockFacts, datetime], WorkOrderMiss]
) -> list[WorkOrderMiss]:
    return [explain(d, d.clock, until) for d in f.judged.decided if not d.ok and d.clock is not None]


def work_order_lines(figures: WorkOrderFigures, until: datetime) -> dict[str, KpiLine]:
    """The lines by key: arrival_compliance, arrival_compliance_statutory, repair_timeliness, follow_up_rate."""
    contract, statutory = figures.arrival, figures.statutory
    follow_ups = [
        _miss(d.row, None, "resolved, no follow-up recorded") for d in figures.follow_up.judged.decided if not d.ok
    ]
    return {
        "arrival_compliance": _line(
            "arrival_compliance",
            f"Elevator arrival within the contract clock ({clocks_text(contract.judged.clocks)})",
            contract,
            _clock_misses(contract, until, _arrival_miss),
        ),
        "arrival_compliance_statutory": _line(
            "arrival_compliance_statutory",
            f"Elevator arrival within the statutory clock ({clocks_text(statutory.judged.clocks)})",
            statutory,
            _clock_misses(statutory, until, _arrival_miss),
        ),
        "repair_timeliness": _line(
            "repair_timeliness",
            "Repair timeliness (零修、急修及时率)",
            figures.repair,
            _clock_misses(figures.repair, until, _repair_miss),
        ),
        "follow_up_rate": _line(
            "follow_up_rate",
            "Follow-up visit rate (维修服务回访率)",
            figures.follow_up,
            follow_ups,
        ),
    }
