"""The elevator insurance report's content (facmon.reports.insurance computes it): one entry per elevator over the
age threshold with its incidents and open defects, the summary, and the faults per month."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

InsuranceStatus = Literal["insured", "expired", "uninsured"]
InspectionStatus = Literal["valid", "expired", "not given"]


class Incident(BaseModel):
    work_order_id: int
    fault: str
    title: str
    entrapment: bool
    status: str
    detected_at: datetime
    response_min: float | None = Field(description="acknowledged - detected, minutes")
    arrival_min: float | None = Field(description="on site - detected, minutes")
    resolved_at: datetime | None


class OpenDefect(BaseModel):
    work_order_id: int
    title: str
    status: str
    detected_at: datetime


class ElevatorEntry(BaseModel):
    device: str
    building: str
    building_name: str
    role: str | None
    registration_code: str | None
    certificate: str | None
    variety_code: str | None
    variety: str | None
    usage: str | None
    installed_on: date
    age_years: int
    maintenance_company: str | None
    contract_number: str | None
    contract_start: date | None
    contract_end: date | None
    contract_in_force: bool | None
    inspection_last: date | None
    inspection_valid_until: date | None
    inspection_status: InspectionStatus
    inspection_days_left: int | None = Field(description="valid_until - as-of, days; negative when expired")
    maintenance_visits: int = Field(description="recorded maintenance visits that started in the 12 months")
    maintenance_visits_required: int = Field(description="days of the period // 15")
    longest_visit_gap_days: float
    maintenance_cycles_missed: int = Field(description="visits lacking for no gap to exceed 15 days")
    last_visit_on: date | None = Field(description="the last recorded visit by the end of the as-of day, site date")
    maintenance_cycle_met: bool
    faults: int
    entrapments: int
    response_mean_min: float | None
    response_max_min: float | None
    arrival_mean_min: float | None
    arrival_max_min: float | None
    arrivals_within_20_min: int
    arrivals_within_30_min: int
    downtime_hours: float = Field(
        description="hours the fault work orders were open in the 12 months; one still open counts up to the end of "
        "the as-of day or now, whichever is earlier"
    )
    open_defects: list[OpenDefect]
    major_repair_on: date | None
    major_repair: str | None
    insurance_status: InsuranceStatus
    insurer: str | None
    policy: str | None
    policy_expires: date | None
    incidents: list[Incident]


class MonthFaults(BaseModel):
    month: str
    faults: int
    entrapments: int


class InsuranceSummary(BaseModel):
    elevators: int = Field(description="elevators in the site file")
    over_threshold: int
    uninsured: int = Field(description="over the threshold without a policy in force (none, or expired)")
    inspection_expired: int
    faults: int
    entrapments: int


class InsuranceReport(BaseModel):
    site: str
    site_name: str
    timezone: str
    as_of: date
    threshold_years: int
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    summary: InsuranceSummary
    elevators: list[ElevatorEntry]
    # Elevators whose age cannot be told: the site file gives no installation date.
    no_installation_date: list[str]
    faults_per_month: list[MonthFaults]
    notes: list[str]
