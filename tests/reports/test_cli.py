"""`facmon report insurance|kpi` over the work-order database of the settings (FACMON_DB_URL)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from typer.testing import CliRunner

from facmon.shell.cli import app
from tests.reports.support import SITE


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE.model_dump(mode="json", exclude_none=True), allow_unicode=True), "utf-8")
    return path


@pytest.fixture
def env(seeded: tuple[Engine, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACMON_DB_URL", str(seeded[0].url))
    monkeypatch.delenv("FACMON_INFLUX_URL", raising=False)


@pytest.mark.usefixtures("env")
def test_insurance_csv_to_stdout(site_file: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", "insurance", "--site", str(site_file), "--as-of", "2026-10-31", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["device"], r["insurance_status"]) for r in rows] == [
        ("old2", "uninsured"),
        ("edge", "expired"),
        ("old1", "insured"),
    ]


@pytest.mark.usefixtures("env")
def test_insurance_pdf_and_kpi_json_to_files(site_file: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "insurance.pdf"
    args = ["report", "insurance", "--site", str(site_file), "--as-of", "2026-10-31", "--format", "pdf"]
    result = CliRunner().invoke(app, [*args, "--threshold-years", "15", "--output", str(pdf)])
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
    out = tmp_path / "kpi.json"
    args = ["report", "kpi", "--site", str(site_file), "--month", "2026-10", "--format", "json", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text("utf-8"))
    assert report["month"] == "2026-10"
    assert {k["key"]: k["verdict"] for k in report["kpis"]}["fire_intact_rate"] == "unavailable"


def test_clear_errors(site_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACMON_DB_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "insurance", "--site", str(site_file), "--as-of", "31/10/2026"])
    assert result.exit_code == 2
    assert "expected a date as YYYY-MM-DD" in result.stderr
    result = runner.invoke(
        app, ["report", "kpi", "--site", str(site_file), "--month", "2026-10", "--state-dir", str(tmp_path / "empty")]
    )
    assert result.exit_code == 2
    assert "no work-order database at" in result.stderr
