"""The insurance report as CSV (one row per elevator) and as PDF for a person: a summary page, the table of
elevators, the faults per month as a chart, and every fault of the 12 months with its response and arrival."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, SimpleDocTemplate, Spacer
from reportlab.platypus.flowables import Flowable

from facmon.reports.common import ALERT, LATIN_FONT, OK, fmt, para, table, to_csv
from facmon.reports.insurance_models import ElevatorEntry, InsuranceReport

CSV_HEADER = (
    "device",
    "building",
    "registration_code",
    "certificate",
    "variety_code",
    "variety",
    "usage",
    "installed_on",
    "age_years",
    "maintenance_company",
    "contract_number",
    "contract_start",
    "contract_end",
    "contract_in_force",
    "inspection_last",
    "inspection_valid_until",
    "inspection_status",
    "inspection_days_left",
    "maintenance_visits",
    "maintenance_visits_required",
    "longest_visit_gap_days",
    "maintenance_cycles_missed",
    "last_visit_on",
    "maintenance_cycle_met",
    "faults_12m",
    "entrapments_12m",
    "response_mean_min",
    "response_max_min",
    "arrival_mean_min",
    "arrival_max_min",
    "arrivals_within_20_min",
    "arrivals_within_30_min",
    "downtime_hours",
    "open_defects",
    "open_defect_ids",
    "major_repair_on",
    "major_repair",
    "insurance_status",
    "insurer",
    "policy",
    "policy_expires",
)


def insurance_csv(report: InsuranceReport) -> str:
    rows = []
    for e in report.elevators:
        rows.append(
            (
                e.device,
                e.building,
                e.registration_code,
                e.certificate,
                e.variety_code,
                e.variety,
                e.usage,
                e.installed_on,
                e.age_years,
                e.maintenance_company,
                e.contract_number,
                e.contract_start,
                e.contract_end,
                e.contract_in_force,
                e.inspection_last,
                e.inspection_valid_until,
                e.inspection_status,
                e.inspection_days_left,
                e.maintenance_visits,
                e.maintenance_visits_required,
                e.longest_visit_gap_days,
                e.maintenance_cycles_missed,
                e.last_visit_on,
                e.maintenance_cycle_met,
                e.faults,
                e.entrapments,
                e.response_mean_min,
                e.response_max_min,
                e.arrival_mean_min,
                e.arrival_max_min,
                e.arrivals_within_20_min,
                e.arrivals_within_30_min,
                e.downtime_hours,
                len(e.open_defects),
                " ".join(str(d.work_order_id) for d in e.open_defects),
                e.major_repair_on,
                e.major_repair,
                e.insurance_status,
                e.insurer,
                e.policy,
                e.policy_expires,
            )
        )
    return to_csv(CSV_HEADER, rows)


# --- PDF -------------------------------------------------------------------------------------------------------------


def _summary(report: InsuranceReport) -> list[Flowable]:
    s = report.summary
    counts = [
        ("Elevators in the site file", s.elevators),
        (f"In service {report.threshold_years} years or more", s.over_threshold),
        ("Of those uninsured (no policy in force)", s.uninsured),
        ("Of those with the periodic inspection expired", s.inspection_expired),
        ("Faults in the last 12 months", s.faults),
        ("Entrapments in the last 12 months", s.entrapments),
    ]
    alert_rows = [i for i, (label, value) in enumerate(counts) if value and label.startswith("Of those")]
    story: list[Flowable] = [
        para("Elevator insurance report", "title"),
        para(f"{report.site_name} ({report.site})", "h2"),
        para(f"As of {report.as_of}, age threshold {report.threshold_years} years, time zone {report.timezone}"),
        para(f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC"),
        Spacer(1, 6 * mm),
        table(
            ["", "count"],
            [(label, str(value)) for label, value in counts],
            [110 * mm, 30 * mm],
            style="body",
            highlight=alert_rows,
        ),
        Spacer(1, 6 * mm),
    ]
    flagged = [e for e in report.elevators if e.insurance_status != "insured" or e.inspection_status == "expired"]
    if flagged:
        story.append(para("Needs attention", "h2"))
        for e in flagged:
            problems = []
            if e.insurance_status == "uninsured":
                problems.append("uninsured")
            elif e.insurance_status == "expired":
                problems.append(f"uninsured: policy {e.policy} expired {e.policy_expires}")
            if e.inspection_status == "expired":
                problems.append(
                    f"inspection expired {e.inspection_valid_until} ({-(e.inspection_days_left or 0)} days)"
                )
            story.append(
                para(
                    f"{e.device} ({e.building_name or e.building}), {e.age_years} years: " + "; ".join(problems),
                    color=ALERT,
                )
            )
    if report.no_installation_date:
        story.append(
            para("No installation date in the site file, age unknown: " + ", ".join(report.no_installation_date))
        )
    story += [Spacer(1, 6 * mm), para("How the figures are made", "h2")]
    story += [para("- " + note) for note in report.notes]
    return story


def _cells(e: ElevatorEntry) -> list[Flowable | str]:
    policy_color = OK if e.insurance_status == "insured" else ALERT
    policy = (
        "uninsured"
        if e.insurance_status == "uninsured"
        else f"{e.insurer}\n{e.policy}\n{'expired' if e.insurance_status == 'expired' else 'until'} {e.policy_expires}"
    )
    inspection_color = ALERT if e.inspection_status == "expired" else None
    inspection = (
        "not given"
        if e.inspection_valid_until is None
        else f"until {e.inspection_valid_until}\n{e.inspection_status}, {e.inspection_days_left} d"
    )
    contract = "" if e.contract_number is None else f"\n{e.contract_number}\n{e.contract_start} to {e.contract_end}"
    return [
        f"{e.device}\n{e.building_name or e.building}\n{e.role or ''}",
        f"{e.registration_code or '-'}\n{e.certificate or '-'}",
        f"{e.variety_code or '-'} {e.variety or ''}\n{e.usage or '-'}",
        f"{e.installed_on}\n{e.age_years} years",
        f"{e.maintenance_company or 'not given'}{contract}",
        para(inspection, "small", color=inspection_color),
        para(
            f"{e.maintenance_visits} of {e.maintenance_visits_required}\nlongest gap {e.longest_visit_gap_days} d\n"
            f"missed {e.maintenance_cycles_missed}, last {e.last_visit_on or 'none'}",
            "small",
            color=None if e.maintenance_cycle_met else ALERT,
        ),
        f"{e.faults} / {e.entrapments}",
        f"resp {fmt(e.response_mean_min)} / {fmt(e.response_max_min)}\n"
        f"arr {fmt(e.arrival_mean_min)} / {fmt(e.arrival_max_min)}\n"
        f"<=20 min: {e.arrivals_within_20_min}, <=30 min: {e.arrivals_within_30_min}",
        fmt(e.downtime_hours, 2),
        "\n".join(f"#{d.work_order_id} {d.status}" for d in e.open_defects) or "none",
        "-" if e.major_repair_on is None else f"{e.major_repair_on}\n{e.major_repair or ''}",
        para(policy, "small", color=policy_color),
    ]


HEADER = (
    "Elevator",
    "Registration / certificate",
    "Variety / usage",
    "Installed / age",
    "Maintenance company / contract",
    "Inspection",
    "Visits (15-day cycle)",
    "Faults / entrap.",
    "Response / arrival min (mean / max)",
    "Down h",
    "Open defects",
    "Major repair",
    "Policy",
)
WIDTHS = [19, 31, 21, 16, 32, 20, 18, 14, 24, 12, 16, 23, 30]


def _chart(report: InsuranceReport) -> Drawing:
    width, height = 250 * mm, 110 * mm
    drawing = Drawing(width, height)
    chart = VerticalBarChart()
    # The stubs type positions as int; ReportLab takes any number.
    chart.x, chart.y = int(15 * mm), int(20 * mm)
    chart.width, chart.height = int(200 * mm), int(80 * mm)
    months = report.faults_per_month
    chart.data = [[m.faults for m in months], [m.entrapments for m in months]]
    chart.categoryAxis.categoryNames = [m.month for m in months]
    chart.categoryAxis.labels.angle = 30
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.categoryAxis.labels.fontName = LATIN_FONT
    chart.valueAxis.valueMin = 0
    top = max((m.faults for m in months), default=0)
    chart.valueAxis.valueMax = max(4, top + 1)
    chart.valueAxis.valueStep = max(1, (top + 4) // 5)
    chart.valueAxis.labels.fontName = LATIN_FONT
    chart.bars[0].fillColor = colors.HexColor("#2f6f9f")
    chart.bars[1].fillColor = ALERT
    chart.barSpacing = 1
    chart.groupSpacing = 6
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = int(222 * mm), int(95 * mm)
    legend.fontName = LATIN_FONT
    legend.colorNamePairs = [(colors.HexColor("#2f6f9f"), "faults"), (ALERT, "entrapments")]
    drawing.add(legend)
    drawing.add(
        String(15 * mm, 105 * mm, "Faults per month, elevators over the threshold", fontName=LATIN_FONT, fontSize=10)
    )
    return drawing


def _elevators_page(report: InsuranceReport) -> list[Flowable]:
    story: list[Flowable] = [PageBreak(), para(f"Elevators in service {report.threshold_years} years or more", "h2")]
    if report.elevators:
        highlight = [i for i, e in enumerate(report.elevators) if e.insurance_status != "insured"]
        story.append(
            table(HEADER, [_cells(e) for e in report.elevators], [w * mm for w in WIDTHS], highlight=highlight)
        )
    else:
        story.append(para("None."))
    return story


def _faults_page(report: InsuranceReport) -> list[Flowable]:
    months = report.faults_per_month
    return [
        PageBreak(),
        para("Faults and entrapments, last 12 months", "h2"),
        _chart(report),
        table(
            ["month", *(m.month for m in months)],
            [["faults", *(str(m.faults) for m in months)], ["entrapments", *(str(m.entrapments) for m in months)]],
        ),
    ]


INCIDENT_HEADER = [
    "elevator",
    "work order",
    "detected (site time)",
    "title",
    "entrapment",
    "response min",
    "arrival min",
    "status",
]
INCIDENT_WIDTHS = (25, 15, 30, 110, 20, 20, 20, 20)


def _incidents_page(report: InsuranceReport) -> list[Flowable]:
    """Every fault of the 12 months, oldest first; nothing when there was none."""
    tz = ZoneInfo(report.timezone)
    incidents = [(e, i) for e in report.elevators for i in e.incidents]
    if not incidents:
        return []
    rows: list[list[Flowable | str]] = [
        [
            e.device,
            f"#{i.work_order_id}",
            i.detected_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            i.title,
            "yes" if i.entrapment else "",
            fmt(i.response_min),
            fmt(i.arrival_min),
            i.status,
        ]
        for e, i in sorted(incidents, key=lambda pair: pair[1].detected_at)
    ]
    return [
        PageBreak(),
        para("Every fault of the last 12 months", "h2"),
        table(INCIDENT_HEADER, rows, [w * mm for w in INCIDENT_WIDTHS]),
    ]


def insurance_pdf(report: InsuranceReport) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=10 * mm,
        rightMargin=10 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"Elevator insurance report, {report.site_name}, {report.as_of}",
        author="facmon",
    )
    doc.build([*_summary(report), *_elevators_page(report), *_faults_page(report), *_incidents_page(report)])
    return out.getvalue()
