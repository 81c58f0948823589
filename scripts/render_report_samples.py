"""Render the first page of each report for the demo estate to docs/reports/*.png, so people can see them.

    .venv/bin/python scripts/render_report_samples.py

A throw-away SQLite database gets a year of made-up work orders on the demo site's elevators, written the way the
rules worker writes them (tests/reports/support.py); InfluxDB is not used, so its two KPIs show "unavailable".
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facmon.estate.site import load_site  # noqa: E402
from facmon.kernel.db import make_engine  # noqa: E402
from facmon.reports.insurance import insurance_report  # noqa: E402
from facmon.reports.insurance_output import insurance_pdf  # noqa: E402
from facmon.reports.kpi_monthly import kpi_monthly_report  # noqa: E402
from facmon.reports.kpi_output import kpi_pdf  # noqa: E402
from facmon.shell.migrations.schema import create_schema  # noqa: E402
from tests.reports.support import Seeder  # noqa: E402

NOW = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
# (device, fault code, first detection, days between repeats, repeats, minutes to on site)
FAULTS = [
    ("b2-e1", "2", datetime(2025, 11, 20, 2, tzinfo=UTC), 41, 8, 17),
    ("b2-e2", "entrapment", datetime(2025, 12, 5, 11, tzinfo=UTC), 67, 5, 24),
    ("b1-e1", "3", datetime(2026, 1, 8, 7, tzinfo=UTC), 53, 6, 12),
    ("b1-e2", "13", datetime(2026, 3, 2, 9, tzinfo=UTC), 90, 3, 33),
    ("b1-e1", "2", datetime(2026, 10, 3, 1, tzinfo=UTC), 9, 3, 15),
    ("b2-e3", "1", datetime(2026, 10, 12, 6, tzinfo=UTC), 6, 2, 14),
]


def render_first_page(pdf: bytes, png: Path) -> None:
    document = pdfium.PdfDocument(pdf)
    try:
        document[0].render(scale=1.6).to_pil().save(png)
    finally:
        document.close()


def main() -> None:
    site = load_site(ROOT / "examples" / "demo-site.yaml")
    out = ROOT / "docs" / "reports"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'facmon.db'}")
        create_schema(engine)
        seeder = Seeder(engine, site)
        for device, code, first, every, repeats, arrive in FAULTS:
            for n in range(repeats):
                detected = first + timedelta(days=every * n, minutes=7 * n)
                seeder.life(f"{device}-{n}", device, code, detected, ack=2 + n % 3, on_site=arrive + 3 * n, resolved=90)
        with Session(engine) as session:
            insurance = insurance_report(session, site, date(2026, 10, 31), NOW)
            kpis = asyncio.run(kpi_monthly_report(session, site, "2026-10", NOW, None))
        engine.dispose()
    render_first_page(insurance_pdf(insurance), out / "insurance-report.png")
    render_first_page(kpi_pdf(kpis), out / "kpi-report.png")
    print(f"wrote {out / 'insurance-report.png'} and {out / 'kpi-report.png'}")


if __name__ == "__main__":
    main()
