"""The insurance report over a year of work orders made through the rules store: which elevators, in which order,
and every figure of their rows, in JSON, CSV and PDF."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageStat
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.reports.insurance import VISITS_BASIS, insurance_report, visit_figures
from facmon.reports.insurance_models import InsuranceReport
from facmon.reports.insurance_output import CSV_HEADER, insurance_csv, insurance_pdf
from tests.reports.support import NOW, SITE

AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def report(seeded: tuple[Engine, dict[str, int]]) -> InsuranceReport:
    engine, _ = seeded
    with Session(engine) as session:
        return insurance_report(session, SITE, AS_OF, NOW)


def test_elevators_at_or_over_ten_years_uninsured_first(report: InsuranceReport) -> None:
    # edge turns 10 on the as-of day and is in; young turns 10 a day later and is not.
    assert [(e.device, e.age_years, e.insurance_status) for e in report.elevators] == [
        ("old2", 11, "uninsured"),
        ("edge", 10, "expired"),
        ("old1", 16, "insured"),
    ]
    assert report.summary.model_dump() == {
        "elevators": 4,
        "over_threshold": 3,
        "uninsured": 2,
        "inspection_expired": 1,
        "faults": 7,
        "entrapments": 1,
    }
    # The 12 months end with the as-of day, site time (UTC+8).
    assert (report.period_start, report.period_end) == (
        datetime(2025, 10, 31, 16, tzinfo=UTC),
        datetime(2026, 10, 31, 16, tzinfo=UTC),
    )


def test_a_higher_threshold_leaves_out_the_younger_ones(seeded: tuple[Engine, dict[str, int]]) -> None:
    with Session(seeded[0]) as session:
        report = insurance_report(session, SITE, AS_OF, NOW, threshold_years=15)
    assert [e.device for e in report.elevators] == ["old1"]
    assert report.summary.over_threshold == 1


def test_old1_faults_response_arrival_downtime(report: InsuranceReport, seeded: tuple[Engine, dict[str, int]]) -> None:
    ids = seeded[1]
    old1 = report.elevators[2]
    # The fault of 2025-10-20 is before the 12 months; the cancelled false alarm is no fault.
    assert [(i.work_order_id, i.entrapment, i.response_min, i.arrival_min) for i in old1.incidents] == [
        (ids["entrapment"], True, 2.0, 14.0),
        (ids["door-open"], False, 5.0, 26.0),
        (ids["fault-5"], False, 4.0, 25.0),
        (ids["fault-13"], False, 8.0, 8.0),  # on site at once: the acknowledgement is implied, at the same time
        (ids["unattended"], False, None, None),
    ]
    assert (old1.faults, old1.entrapments) == (5, 1)
    # (2 + 5 + 4 + 8) / 4 and (14 + 26 + 25 + 8) / 4
    assert (old1.response_mean_min, old1.response_max_min) == (4.8, 8.0)
    assert (old1.arrival_mean_min, old1.arrival_max_min) == (18.2, 26.0)
    assert (old1.arrivals_within_20_min, old1.arrivals_within_30_min) == (2, 4)
    # 60 + 180 + 50 + 15 min repaired, and the unattended fault open from 15:00 to the period's end at 16:00.
    assert old1.downtime_hours == 6.08
    assert [(d.work_order_id, d.status) for d in old1.open_defects] == [(ids["unattended"], "open")]
    assert (old1.inspection_status, old1.inspection_days_left) == ("valid", 151)
    assert (old1.variety_code, old1.variety, old1.certificate) == (
        "3110",
        "traction passenger lift",
        "梯11苏A00001(10)",
    )
    assert (old1.maintenance_company, old1.contract_number, old1.contract_in_force) == (
        "南京华信电梯工程有限公司",
        "HX-1",
        True,
    )
    assert (old1.major_repair_on, old1.policy, old1.policy_expires) == (date(2022, 6, 1), "P-1", date(2027, 1, 31))


def test_old1_visited_every_15_days_meets_the_cycle(report: InsuranceReport) -> None:
    old1 = report.elevators[2]
    # 26 visits 15 days apart from 2025-10-21 01:00: the first is before the 12 months, 25 are in them (the last on
    # 2026-10-31 01:00, 09:00 site time). The first gap runs from the visit before the period: 15 days exactly, in
    # time; the last one to the period's end, 15 h.
    assert (old1.maintenance_visits, old1.maintenance_visits_required) == (25, 24)
    assert (old1.longest_visit_gap_days, old1.maintenance_cycles_missed) == (15.0, 0)
    assert (old1.last_visit_on, old1.maintenance_cycle_met) == (date(2026, 10, 31), True)


def test_edge_without_any_visit_missed_every_cycle(report: InsuranceReport) -> None:
    edge = report.elevators[1]
    # The whole 365 days is one gap: 24 visits would have been needed for none to exceed 15 days.
    assert (edge.maintenance_visits, edge.longest_visit_gap_days, edge.maintenance_cycles_missed) == (0, 365.0, 24)
    assert (edge.last_visit_on, edge.maintenance_cycle_met) == (None, False)


@pytest.mark.parametrize(
    ("visits", "before", "expected"),
    [
        # (visit days after the start, days before the start of the last earlier visit) -> (count, longest, missed)
        ([], None, (0, 60.0, 3)),
        ([15.0, 30.0, 45.0], None, (3, 15.0, 0)),
        ([15.0, 30.0, 45.0], 1.0, (3, 16.0, 1)),  # the gap from the visit before the period counts
        ([20.0], None, (1, 40.0, 3)),
        ([59.5], 100.0, (1, 159.5, 10)),
    ],
)
def test_visit_figures(visits: list[float], before: float | None, expected: tuple[int, float, int]) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=60)
    found = visit_figures(
        [start + timedelta(days=d) for d in visits],
        None if before is None else start - timedelta(days=before),
        start,
        end,
    )
    assert (found.visits, found.longest_gap / timedelta(days=1), found.cycles_missed) == expected


def test_old2_uninsured_inspection_expired_and_visits(report: InsuranceReport) -> None:
    old2 = report.elevators[0]
    assert (old2.inspection_status, old2.inspection_days_left) == ("expired", -31)
    assert (old2.insurer, old2.policy) == (None, None)
    # The variety is read from the registration code when the site file does not give it.
    assert (old2.variety_code, old2.variety) == ("3110", "traction passenger lift")
    # Two recorded visits (2026-01-15 and 03-20, 02:00 UTC); the technicians on site for the task work orders of
    # 2026-02-01 and 02-10 are arrivals, not visits. 365 // 15 = 24 owed. Gaps: from the period's start
    # (2025-10-31 16:00, no visit before it) 75 d 10 h, then 64 d, then to the period's end 225 d 14 h, the longest;
    # missed: 5 + 4 + 15 = 24 (a gap of up to 15 days needs no visit inside, up to 30 days one, ...).
    assert (old2.maintenance_visits, old2.maintenance_visits_required) == (2, 24)
    assert (old2.longest_visit_gap_days, old2.maintenance_cycles_missed) == (225.6, 24)
    assert (old2.last_visit_on, old2.maintenance_cycle_met) == (date(2026, 3, 20), False)
    assert (old2.faults, old2.arrival_mean_min, old2.response_mean_min, old2.downtime_hours) == (1, 18.0, 18.0, 2.0)


def test_a_fault_repaired_after_the_as_of_day_is_an_open_defect(report: InsuranceReport) -> None:
    edge = report.elevators[1]
    # On site at 10:10 on 31 October, resolved on 2 November: on site at the as-of day's end.
    assert [(d.status, d.title) for d in edge.open_defects] == [("on_site", "Elevator edge (b1): door open fault")]
    assert edge.downtime_hours == 6.0  # 10:00 to the period's end at 16:00 UTC
    assert (edge.inspection_status, edge.insurance_status, edge.policy_expires) == (
        "not given",
        "expired",
        date(2026, 6, 30),
    )


def test_faults_per_month(report: InsuranceReport) -> None:
    months = {m.month: (m.faults, m.entrapments) for m in report.faults_per_month}
    assert list(months) == [f"2025-{m}" for m in ("11", "12")] + [f"2026-{m:02d}" for m in range(1, 11)]
    assert {m: v for m, v in months.items() if v != (0, 0)} == {"2025-12": (1, 1), "2026-03": (1, 0), "2026-10": (5, 0)}


def test_csv_parses_back(report: InsuranceReport) -> None:
    rows = list(csv.DictReader(io.StringIO(insurance_csv(report))))
    assert [r["device"] for r in rows] == ["old2", "edge", "old1"]
    assert tuple(rows[0]) == CSV_HEADER
    old2, old1 = rows[0], rows[2]
    assert (old2["insurance_status"], old2["inspection_status"], old2["inspection_days_left"]) == (
        "uninsured",
        "expired",
        "-31",
    )
    assert (old1["faults_12m"], old1["entrapments_12m"], old1["arrival_mean_min"], old1["downtime_hours"]) == (
        "5",
        "1",
        "18.2",
        "6.08",
    )
    assert old1["insurer"] == "金陵财产保险"
    assert (old2["maintenance_visits"], old2["maintenance_cycles_missed"], old2["last_visit_on"]) == (
        "2",
        "24",
        "2026-03-20",
    )
    assert (old1["longest_visit_gap_days"], old1["maintenance_cycle_met"]) == ("15.0", "True")


def test_the_notes_say_where_the_visits_come_from(report: InsuranceReport) -> None:
    assert VISITS_BASIS in report.notes
    assert not any("does not record" in note for note in report.notes)


def test_json_round_trips(report: InsuranceReport) -> None:
    assert InsuranceReport.model_validate_json(report.model_dump_json()) == report


def _pages(pdf: bytes) -> list[tuple[str, Image.Image]]:
    document = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for page in document:
            text = page.get_textpage().get_text_range()
            pages.append((text, page.render(scale=1).to_pil().convert("RGB")))
        return pages
    finally:
        document.close()


def test_pdf_summary_table_chart_and_faults(report: InsuranceReport) -> None:
    pages = _pages(insurance_pdf(report))
    # Summary, the table of elevators, the chart, every fault.
    assert len(pages) == 4
    summary = pages[0][0]
    assert "Maple Court" in summary
    assert "uninsured" in summary
    assert "In service 10 years or more 3" in summary.replace("\r\n", " ").replace("\n", " ")
    assert "old2" in pages[1][0]
    assert "P-1" in pages[1][0]
    chart_text, chart = pages[2]
    assert "Faults per month" in chart_text
    assert ImageStat.Stat(chart.convert("L")).var[0] > 100, "the chart page is blank"
    # The fault bars are drawn in their colour (#2f6f9f).
    raw = chart.tobytes()
    pixels = zip(raw[0::3], raw[1::3], raw[2::3], strict=True)
    bars = sum(1 for r, g, b in pixels if abs(r - 0x2F) < 12 and abs(g - 0x6F) < 12 and abs(b - 0x9F) < 12)
    assert bars > 500
    assert "Every fault" in pages[3][0]
