"""What the reports share: periods on the site's wall clock, output formats, and the PDF look.

PDF text in Chinese (company names, insurers, certificates) uses ReportLab's built-in CID font STSong-Light, which
every PDF reader supplies, so nothing has to be embedded; Latin-only text stays in Helvetica, which reads better.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, Table, TableStyle
from reportlab.platypus.flowables import Flowable


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


MEDIA_TYPES = {ReportFormat.JSON: "application/json", ReportFormat.CSV: "text/csv", ReportFormat.PDF: "application/pdf"}


# --- periods ---------------------------------------------------------------------------------------------------------


def render(
    report: BaseModel, fmt: ReportFormat, *, as_csv: Callable[[Any], str], as_pdf: Callable[[Any], bytes]
) -> str | bytes:
    """A report in one of the formats: JSON from its model, CSV and PDF by the report's own functions."""
    if fmt is ReportFormat.JSON:
        return report.model_dump_json(indent=2) + "\n"
    if fmt is ReportFormat.CSV:
        return as_csv(report)
    return as_pdf(report)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The start of `day` on the site's wall clock, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def completed_years(since: date, on: date) -> int:
    """Whole years from `since` to `on` (an age as people count it: the birthday itself completes the year)."""
    return on.year - since.year - ((on.month, on.day) < (since.month, since.day))


def parse_month(text: str) -> tuple[int, int]:
    """'2026-10' -> (2026, 10); ValueError with the expected form otherwise."""
    try:
        year, month = (int(part) for part in text.split("-"))
        date(year, month, 1)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a month as YYYY-MM (e.g. 2026-10)") from exc
    return year, month


def previous_month(now: datetime, tz: ZoneInfo) -> str:
    """The last complete calendar month on the site's wall clock, 'YYYY-MM': what a monthly report is asked for."""
    first_of_this = now.astimezone(tz).date().replace(day=1)
    return (first_of_this - timedelta(days=1)).strftime("%Y-%m")


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month [start, end) on the site's wall clock, in UTC."""
    following = date(year + (month == 12), month % 12 + 1, 1)
    return local_midnight(date(year, month, 1), tz), local_midnight(following, tz)


def months_between(start: datetime, end: datetime, tz: ZoneInfo) -> list[str]:
    """The calendar months ('YYYY-MM', site time) that [start, end) touches, in order."""
    first = start.astimezone(tz).date().replace(day=1)
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    months = []
    day = first
    while day <= last:
        months.append(f"{day.year:04d}-{day.month:02d}")
        day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return months


def minutes(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else round((later - earlier).total_seconds() / 60.0, 1)


# --- CSV -------------------------------------------------------------------------------------------------------------


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return out.getvalue()


# --- PDF -------------------------------------------------------------------------------------------------------------

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
HEADER_BG = colors.HexColor("#1f3b57")
ALERT = colors.HexColor("#b3261e")
OK = colors.HexColor("#1e7b34")
ZEBRA = colors.HexColor("#f2f5f8")


def register_fonts() -> None:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def _styles() -> dict[str, ParagraphStyle]:
    sample = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("title", parent=sample["Title"], fontName=LATIN_BOLD, fontSize=18, leading=22),
        "h2": ParagraphStyle("h2", parent=sample["Heading2"], fontName=LATIN_BOLD, fontSize=12, leading=15),
        "body": ParagraphStyle("body", parent=sample["BodyText"], fontName=LATIN_FONT, fontSize=9, leading=12),
        "small": ParagraphStyle("small", parent=sample["BodyText"], fontName=LATIN_FONT, fontSize=6.5, leading=8),
        "head": ParagraphStyle(
            "head", parent=sample["BodyText"], fontName=LATIN_BOLD, fontSize=6.5, leading=8, textColor=colors.white
        ),
    }


STYLES = _styles()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _markup(line: str) -> str:
    """Escaped text with every run of characters Helvetica lacks (Chinese) set in STSong-Light."""
    out: list[str] = []
    run: list[str] = []
    cjk = False
    for ch in line + "\0":
        wide = ord(ch) > 0xFF
        if (wide != cjk or ch == "\0") and run:
            text = _escape("".join(run))
            out.append(f'<font face="{CJK_FONT}">{text}</font>' if cjk else text)
            run = []
        cjk = wide
        run.append(ch)
    return "".join(out)


def para(text: object, style: str = "body", *, color: colors.Color | None = None, bold: bool = False) -> Paragraph:
    """A paragraph in Helvetica, with Chinese in STSong-Light; newlines become line breaks."""
    value = "" if text is None else str(text)
    if any(ord(ch) > 0xFF for ch in value):
        register_fonts()
    base = STYLES[style]
    font = LATIN_BOLD if bold else base.fontName
    markup = "<br/>".join(_markup(line) for line in value.split("\n"))
    return Paragraph(
        markup, ParagraphStyle(f"{base.name}-x", parent=base, fontName=font, textColor=color or base.textColor)
    )


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Flowable | str]],
    widths: Sequence[float] | None = None,
    *,
    style: str = "small",
    highlight: Iterable[int] = (),
) -> Table:
    """A table with a dark header row repeated on every page and zebra rows; `highlight` rows get a red edge."""
    data: list[list[Flowable | str]] = [[para(h, "head") for h in header]]
    data += [[cell if isinstance(cell, Flowable) else para(cell, style) for cell in row] for row in rows]
    result = Table(data, colWidths=list(widths) if widths else None, repeatRows=1)
    commands: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_BG),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b8c2cc")),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    commands += [("BACKGROUND", (0, i), (-1, i), ZEBRA) for i in range(2, len(data), 2)]
    commands += [("LINEBEFORE", (0, i + 1), (0, i + 1), 3, ALERT) for i in highlight]
    result.setStyle(TableStyle(commands))
    return result


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"
