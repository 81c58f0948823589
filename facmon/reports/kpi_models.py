"""The monthly KPI report as data (facmon.reports.kpi_monthly makes it; kpi_output writes it as CSV and PDF)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from facmon.reports.kpi_cancellations import Cancellation
from facmon.reports.kpi_verdict import Verdict

Unit = Literal["work orders", "hours", "ratio"]


class WorkOrderMiss(BaseModel):
    id: int
    device: str
    title: str
    detected_at: datetime
    late_min: float | None = Field(
        description="minutes past the deadline (while still open: up to the month's end or now, the earlier); null "
        "when lateness does not apply"
    )
    detail: str


class ClockCount(BaseModel):
    minutes: int | float = Field(description="the clock's figure: its deadline minus the detection time")
    work_orders: int


class KpiLine(BaseModel):
    key: str
    name: str
    target: float
    value: float | None
    numerator: float | None = None
    denominator: float | None = None
    unit: Unit
    coverage: float | None = Field(default=None, description="share of the period with data (0..1); null: unknown")
    verdict: Verdict
    reason: str | None = None
    # Work orders left out for now: their clock is still running (work-order KPIs only).
    pending: int | None = None
    clocks: list[ClockCount] = Field(default_factory=list)
    misses: list[WorkOrderMiss] = Field(default_factory=list)


class CancelledWorkOrder(BaseModel):
    id: int
    kind: str
    device: str
    title: str
    detected_at: datetime
    cancelled_at: datetime
    cancelled_by: str | None = Field(description="who cancelled it (the timeline's actor)")
    reason: str | None = Field(description="the note given with the cancellation")
    missed_clocks: list[str] = Field(description="clocks already missed when it was cancelled: they stay missed")

    @staticmethod
    def of(c: Cancellation) -> CancelledWorkOrder:
        return CancelledWorkOrder.model_validate(c, from_attributes=True)


class KpiMonthlyReport(BaseModel):
    site: str
    site_name: str
    timezone: str
    month: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    kpis: list[KpiLine]
    cancellations: list[CancelledWorkOrder] = Field(default_factory=list)
    notes: list[str]
