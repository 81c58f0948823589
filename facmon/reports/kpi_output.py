"""The monthly KPI report as CSV (one row per KPI, the work orders behind a miss in one column) and as PDF: the KPI
table on the first page, then the work orders behind each missed target."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import SimpleDocTemplate, Spacer
from reportlab.platypus.flowables import Flowable

from facmon.reports.common import ALERT, OK, fmt, para, pct, table, to_csv
from facmon.reports.kpi_monthly import KpiLine, KpiMonthlyReport

CSV_HEADER = (
    "kpi",
    "name",
    "target",
    "value",
    "numerator",
    "denominator",
    "unit",
    "status",
    "reason",
    "work_orders_behind_miss",
)


def _misses_text(line: KpiLine) -> str:
    return "; ".join(
        f"#{m.id} {m.device}" + ("" if m.late_min is None else f" {m.late_min:+.1f} min") for m in line.misses
    )


def kpi_csv(report: KpiMonthlyReport) -> str:
    rows = [
        (
            line.key,
            line.name,
            line.target,
            line.value,
            line.numerator,
            line.denominator,
            line.unit,
            line.status,
            line.reason,
            _misses_text(line),
        )
        for line in report.kpis
    ]
    return to_csv(CSV_HEADER, rows)


def _figure(line: KpiLine) -> str:
    if line.numerator is None or line.denominator is None:
        return "-"
    if line.unit == "hours":
        return f"{line.numerator:.1f} of {line.denominator:.1f} h"
    return f"{line.numerator:.0f} of {line.denominator:.0f}"


def _kpi_table(report: KpiMonthlyReport) -> Flowable:
    """One row per KPI; the missed and unavailable ones highlighted."""
    missed = [i for i, line in enumerate(report.kpis) if line.status in ("missed", "unavailable")]
    rows: list[list[Flowable | str]] = []
    for line in report.kpis:
        color = OK if line.status == "met" else ALERT if line.status == "missed" else None
        rows.append(
            [
                line.name,
                f">= {pct(line.target, 1)}",
                pct(line.value, 2),
                _figure(line),
                para(line.status, "body", color=color, bold=True),
                line.reason or "",
            ]
        )
    return table(
        ["KPI", "target", "value", "counted", "status", "note"],
        rows,
        [w * mm for w in (52, 18, 18, 26, 20, 48)],
        style="body",
        highlight=missed,
    )


def _misses(line: KpiLine, tz: ZoneInfo) -> list[Flowable]:
    """The work orders behind one KPI's miss."""
    rows: list[list[Flowable | str]] = [
        [
            f"#{m.id}",
            m.device,
            m.detected_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            m.title,
            fmt(m.late_min, 1, " min"),
            m.detail,
        ]
        for m in line.misses
    ]
    return [
        para(f"Behind the miss: {line.name}", "h2"),
        table(
            ["work order", "device", "detected (site time)", "title", "late", "what happened"],
            rows,
            [w * mm for w in (17, 20, 28, 60, 20, 37)],
        ),
        Spacer(1, 4 * mm),
    ]


def kpi_pdf(report: KpiMonthlyReport) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=f"Monthly KPI report, {report.site_name}, {report.month}",
        author="facmon",
    )
    tz = ZoneInfo(report.timezone)
    story: list[Flowable] = [
        para("Monthly KPI report", "title"),
        para(f"{report.site_name} ({report.site})", "h2"),
        para(f"{report.month}, time zone {report.timezone}. Generated {report.generated_at:%Y-%m-%d %H:%M} UTC"),
        Spacer(1, 5 * mm),
        _kpi_table(report),
        Spacer(1, 5 * mm),
    ]
    for line in report.kpis:
        if line.misses:
            story += _misses(line, tz)
    story.append(para("How the figures are made", "h2"))
    story += [para("- " + note, "small") for note in report.notes]
    doc.build(story)
    return out.getvalue()
