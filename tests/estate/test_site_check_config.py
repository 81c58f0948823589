"""`facmon check-config` reports every problem of a site file in one run, each with the file, the line, the entry and
what is wrong: field errors, each entry's own rules and the checks across entries alike, none hiding another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facmon.estate.site import SiteFileError, load_site

# Ten different mistakes; each line that holds one ends with its number, the line the problem must be reported at.
SITE_WITH_TEN_MISTAKES = """\
site:
  id: sunrise
  name: Sunrise Garden
  timezone: Asia/Shangai                    # 1
buildings:
  - id: b1
    name: Block 1
    devices:
      - id: b1-e1
        kind: elevator
        model: elev-gb-a
        role: main
        address: {host: 10.0.1.11, port: 502}
      - id: b1-e2
        kind: elevator
        model: elev-gb-a
        role: spare                         # 2
        address: {host: 10.0.1.12}
      - id: b1-e3
        kind: elevator
        model: elev-gb-a
        address:
          host: 10.0.1.13
          port: 70000                       # 3
      - id: b1-e1                           # 4
        kind: elevator
        model: elev-gb-a
        address: {host: 10.0.1.14}
      - id: b1-fp1                          # 5
        kind: fire_panel
        model: fire-gb-a
  - id: b2
    devices:
      - id: b2-e1
        kind: elevator
        model: elev-zz-9                    # 6
        address: {host: 10.0.2.11}
      - id: b2-e2
        kind: elevator
        model: elev-gb-a
        address: {host: 10.0.2.12}
        installed_on: 2012-02-30            # 7
      - id: gate-north
        kind: gate
        model: barrier-a
        colour: red                         # 8
technicians:
  - id: li-ming
    name: Li Ming
    phone: "+86 138 0000 0001"
    cards: [A1B2C3D4]
    disciplines: [elevator, security]
  - id: wang-fang
    name: Wang Fang
    phone: "+86 138 0000 0002"
    cards: [5A5A0001,
            a1b2c3d4]                       # 9
    disciplines: [elevator]
maintenance:
  - {from: "2026-12-01 17:00", to: "2026-12-01 09:00", building: b1, reason: lift works}   # 10
"""

# By mistake number: the entry and what is wrong.
EXPECTED = {
    1: "site: timezone: unknown time zone 'Asia/Shangai'",
    2: "buildings[0].devices[1] (b1-e2): role: Input should be 'main', 'peak' or 'backup'",
    3: "buildings[0].devices[2] (b1-e3): address.port: Input should be less than or equal to 65535",
    4: "buildings[0].devices[3] (b1-e1): id: device id 'b1-e1' is already used by buildings[0].devices[0]",
    5: "buildings[0].devices[4] (b1-fp1): a fire_panel is read over Modbus TCP and needs an address",
    6: "buildings[1].devices[0] (b2-e1): model: no Modbus driver for model 'elev-zz-9'; known: ['elev-gb-a', "
    "'elev-st-b']",
    7: "buildings[1].devices[1] (b2-e2): installed_on: Input should be a valid date or datetime, day value is outside "
    "expected range",
    8: "buildings[1].devices[2] (gate-north): colour: Extra inputs are not permitted",
    9: "technicians[1] (wang-fang): cards[1]: card 'A1B2C3D4' is given to both technician li-ming and technician "
    "wang-fang",
    10: "maintenance[0]: from 2026-12-01 17:00 must be before to 2026-12-01 09:00",
}


def _expected(path: Path) -> list[str]:
    """Each expected message with the line of the file that carries its mistake's number."""
    lines = {int(text.rsplit("# ", 1)[1]): n for n, text in enumerate(path.read_text().splitlines(), 1) if "# " in text}
    assert sorted(lines) == sorted(EXPECTED), "every mistake is marked once"
    return [f"{path}:{lines[number]}: {EXPECTED[number]}" for number in sorted(EXPECTED)]


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE_WITH_TEN_MISTAKES, encoding="utf-8")
    return path


def test_load_site_reports_all_ten_mistakes_with_line_and_entry(site_file: Path) -> None:
    with pytest.raises(SiteFileError) as caught:
        load_site(site_file)
    assert caught.value.problems == _expected(site_file)


def test_check_config_prints_all_ten_in_one_run_and_fails(site_file: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "facmon", "check-config", str(site_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == ["10 problem(s) in the site file:"] + [f"  {p}" for p in _expected(site_file)]


def test_check_config_says_ok_once_the_mistakes_are_fixed(site_file: Path) -> None:
    fixed = (
        SITE_WITH_TEN_MISTAKES.replace("Asia/Shangai", "Asia/Shanghai")
        .replace("role: spare", "role: backup")
        .replace("port: 70000", "port: 1502")
        .replace("- id: b1-e1                           # 4", "- id: b1-e4")
        .replace("model: fire-gb-a", "model: fire-gb-a\n        address: {host: 10.0.1.21}")
        .replace("elev-zz-9", "elev-st-b")
        .replace("2012-02-30", "2012-02-29")
        .replace("colour: red", "vendor_id: G01")
        .replace("a1b2c3d4]", "5A5A0002]")
        .replace('from: "2026-12-01 17:00", to: "2026-12-01 09:00"', 'from: "2026-12-01 09:00", to: "2026-12-01 17:00"')
    )
    site_file.write_text(fixed, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "facmon", "check-config", str(site_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{site_file}: OK — site 'sunrise', 2 building(s), 8 device(s)\n"


def test_a_wrong_entry_does_not_hide_what_the_checks_across_entries_find(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        """\
site: {id: sunrise}
buildings:
  - id: b1
    devices:
      - {id: gate-north, kind: gate, model: barrier-a}
technicians:
  - {id: li-ming, name: Li Ming, phone: "+86 138 0000 0001", disciplines: [security]}
  - {id: zhao-lei, name: Zhao Lei, phone: "call me", disciplines: [fire]}
supervisor: chen-jing
on_call:
  fire: {technicians: [zhao-lei, wang-fang], every: 1w, handoff: "08:30", start: 2026-01-05}
  overrides:
    - {discipline: fire, technician: li-ming, from: "2026-02-16 08:30", to: "2026-02-18 08:30"}
    - {discipline: fire, technician: zhao-lei, from: "2026-02-17 08:30", to: "2026-02-19 08:30"}
    - {discipline: fire, technician: zhao-lei, from: "2026-02-20 08:30", to: "2026-02-21T08:30:00+08:00"}
""",
        encoding="utf-8",
    )
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    # zhao-lei's entry is wrong itself: a rota naming zhao-lei is not also reported as naming someone unknown.
    assert caught.value.problems == [
        f"{path}:8: technicians[1] (zhao-lei): phone: String should match pattern '^\\+?[0-9][0-9 -]{{2,31}}$'",
        f"{path}:9: supervisor: 'chen-jing' is not one of the site's technicians (or give name and phone)",
        f"{path}:11: on_call: fire.technicians[1]: 'wang-fang' is not one of the site's technicians",
        f"{path}:13: on_call.overrides[0]: technician: technician li-ming does not have the fire discipline",
        f"{path}:14: on_call.overrides[1]: overrides for fire overlap: li-ming until 2026-02-18 08:30 and zhao-lei "
        "from 2026-02-17 08:30",
        f"{path}:15: on_call.overrides[2]: to: Input should not have timezone info",
    ]


def test_a_yaml_syntax_error_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: {id: sunrise}\nbuildings:\n  - id: b1\n    name: Block: 1\n", encoding="utf-8")
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    assert caught.value.problems == [f"{path}:4: not valid YAML: mapping values are not allowed here"]


def test_a_key_given_twice_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: {id: sunrise}\nbuildings:\n  - id: b1\n    devices: []\n    devices: []\n", encoding="utf-8")
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    assert caught.value.problems == [f"{path}:5: buildings[0] (b1): devices: given twice; only the last one counts"]
