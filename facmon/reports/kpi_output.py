"""The monthly KPI report as CSV and as PDF.

CSV: one row per KPI (the work orders behind a miss in one column), then, after an empty line, a second table of
the work orders cancelled in the month, one row each. PDF: the KPI table on the first page, then the work orders
behind each missed target, then the cancelled work orders."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import SimpleDocTemplate, Spacer
from reportlab.platypus.flowables import Flowable

from facmon.reports.common import ALERT, OK, fmt, para, pct, table, to_csv
from facmon.reports.kpi_models import ClockCount, KpiLine, KpiMonthlyReport

CSV_HEADER = (
    "kpi",
    "name",
    "target",
    "value",
    "numerator",
    "denominator",
    "unit",
    "coverage",
    "verdict",
    "pending",
    "clocks",
    "reason",
    "work_orders_behind_miss",
)
CANCELLED_HEADER = (
    "cancelled_work_order",
    "kind",
    "device",
    "title",
    "detected_at",
    "cancelled_at",
    "cancelled_by",
    "reason",
    "missed_clocks",
)


def clocks_text(clocks: list[ClockCount]) -> str:
    """'20 min: 7; 30 min: 1': the clocks a figure counted, by length."""
    return "; ".join(f"{c.minutes:g} min: {c.work_orders}" for c in clocks)


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
            line.coverage,
            line.verdict,
            line.pending,
            clocks_text(line.clocks),
            line.reason,
            _misses_text(line),
        )
        for line in report.kpis
    ]
    cancelled = [
        (
            c.id,
            c.kind,
            c.device,
            c.title,
            c.detected_at.isoformat(),
            c.cancelled_at.isoformat(),
            c.cancelled_by,
            c.reason,
            " ".join(c.missed_clocks),
        )
        for c in report.cancellations
    ]
    return to_csv(CSV_HEADER, rows) + "\n" + to_csv(CANCELLED_HEADER, cancelled)


def _figure(line: KpiLine) -> str:
    if line.numerator is None or line.denominator is None:
        return "-"
    if line.unit == "hours":
        return f"{line.numerator:.1f} of {line.denominator:.1f} h"
    return f"{line.numerator:.0f} of {line.denominator:.0f}"


def _kpi_table(report: KpiMonthlyReport) -> Flowable:
    """One row per KPI; those not met highlighted."""
    missed = [i for i, line in enumerate(report.kpis) if line.verdict != "met"]
    rows: list[list[Flowable | str]] = []
    for line in report.kpis:
        color = OK if line.verdict == "met" else ALERT if line.verdict == "missed" else None
        note = "; ".join(n for n in (line.reason, f"{line.pending} pending" if line.pending else None) if n)
        rows.append(
            [
                line.name,
                f">= {pct(line.target, 1)}",
                pct(line.value, 2),
                _figure(line),
                pct(line.coverage, 1),
                para(line.verdict, "body", color=color, bold=True),
                para(note, "small"),
            ]
        )
    return table(
        ["KPI", "target", "value", "counted", "coverage", "verdict", "note"],
        rows,
        [w * mm for w in (46, 16, 16, 22, 17, 23, 42)],
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


def _cancellations(report: KpiMonthlyReport, tz: ZoneInfo) -> list[Flowable]:
    """The work orders cancelled in the month: who, why, and the deadlines they had already missed."""
    rows: list[list[Flowable | str]] = [
        [
            f"#{c.id}",
            c.device,
            c.detected_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            c.cancelled_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            c.cancelled_by or "-",
            para(c.reason or "-", "small"),
            ", ".join(c.missed_clocks) or "none",
        ]
        for c in report.cancellations
    ]
    return [
        para("Cancelled work orders", "h2"),
        para("A deadline missed before the cancellation stays missed in the figures above.", "small"),
        table(
            ["work order", "device", "detected", "cancelled", "by", "reason", "missed clocks"],
            rows,
            [w * mm for w in (17, 20, 27, 27, 22, 47, 22)],
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
    if report.cancellations:
        story += _cancellations(report, tz)
    story.append(para("How the figures are made", "h2"))
    story += [para("- " + note, "small") for note in report.notes]
    doc.build(story)
    return out.getvalue()
