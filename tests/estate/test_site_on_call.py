"""The site file's on-call section, supervisor and manager: mistakes name the file, the line, the entry and the
problem."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from facmon.estate.rota import Contact
from facmon.estate.site import SiteFileError, load_site
from facmon.kernel.model import Discipline

GATE = {"id": "gate-north", "kind": "gate", "model": "barrier-a"}
LI = {"id": "li-ming", "name": "Li Ming", "phone": "+86 138 0000 0001", "disciplines": ["elevator", "security"]}
ZHAO = {"id": "zhao-lei", "name": "Zhao Lei", "phone": "13800000002", "disciplines": ["fire"]}
ROTA = {"technicians": ["li-ming"], "every": "1w", "handoff": "08:30", "start": "2026-01-05"}
SWAP = {"discipline": "elevator", "technician": "li-ming", "from": "2026-02-16 08:30", "to": "2026-02-18 08:30"}


def _write(tmp_path: Path, **sections: Any) -> Path:
    raw: dict[str, Any] = {
        "site": {"id": "estate"},
        "buildings": [{"id": "b1", "devices": [GATE]}],
        "technicians": [LI, ZHAO],
        **sections,
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_rotas_overrides_and_contacts_load_typed(tmp_path: Path) -> None:
    site = load_site(
        _write(
            tmp_path,
            supervisor="zhao-lei",
            manager={"name": "Chen Jing", "phone": "+86 138 0000 0009"},
            on_call={
                "elevator": ROTA,
                "fire": {**ROTA, "technicians": ["zhao-lei"], "every": "daily"},
                "overrides": [SWAP],
            },
        )
    )
    assert site.supervisor == "zhao-lei"
    assert site.manager == Contact(name="Chen Jing", phone="+86 138 0000 0009")
    elevator = site.on_call.rotation(Discipline.ELEVATOR)
    assert elevator is not None
    assert (elevator.every, elevator.handoff) == (timedelta(weeks=1), time(8, 30))
    fire = site.on_call.rotation(Discipline.FIRE)
    assert fire is not None
    assert fire.every == timedelta(days=1)
    assert site.on_call.rotation(Discipline.SECURITY) is None
    assert site.on_call.overrides[0].start.isoformat() == "2026-02-16T08:30:00"


def test_the_sections_are_optional(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path))
    assert (site.supervisor, site.manager, site.on_call.overrides) == (None, None, [])


def test_the_demo_site_has_a_rota_for_every_discipline() -> None:
    site = load_site(Path(__file__).parents[2] / "examples" / "demo-site.yaml")
    assert all(site.on_call.rotation(d) is not None for d in Discipline)
    assert site.supervisor is not None
    assert site.manager is not None


# The files are written by yaml.safe_dump (keys sorted), so each problem's line is known.
@pytest.mark.parametrize(
    ("sections", "line", "problem"),
    [
        (
            {"on_call": {"elevator": {**ROTA, "technicians": ["li-ming", "ghost"]}}},
            14,
            "on_call: elevator.technicians[1]: 'ghost' is not one of the site's technicians",
        ),
        (
            {"on_call": {"fire": ROTA}},
            13,
            "on_call: fire.technicians[0]: technician li-ming does not have the fire discipline",
        ),
        (
            {"on_call": {"overrides": [{**SWAP, "technician": "ghost"}]}},
            11,
            "on_call.overrides[0]: technician: 'ghost' is not one of the site's technicians",
        ),
        (
            {"on_call": {"overrides": [{**SWAP, "discipline": "fire"}]}},
            11,
            "on_call.overrides[0]: technician: technician li-ming does not have the fire discipline",
        ),
        (
            {"on_call": {"overrides": [SWAP, {**SWAP, "from": "2026-02-17 20:00", "to": "2026-02-19 08:30"}]}},
            13,
            "on_call.overrides[1]: overrides for elevator overlap: li-ming until 2026-02-18 08:30 and li-ming from "
            "2026-02-17 20:00",
        ),
        (
            {"on_call": {"overrides": [{**SWAP, "to": "2026-02-16 08:30"}]}},
            9,
            "on_call.overrides[0]: from 2026-02-16 08:30 must be before to 2026-02-16 08:30",
        ),
        (
            {"on_call": {"overrides": [{**SWAP, "from": "2026-02-16T08:30:00+08:00"}]}},
            10,
            "on_call.overrides[0]: from: Input should not have timezone info",
        ),
        (
            {"on_call": {"elevator": {**ROTA, "handoff": "8:30"}}},
            10,
            "on_call: elevator.handoff: '8:30' is not a time of day like \"08:30\"",
        ),
        (
            {"on_call": {"elevator": {**ROTA, "handoff": "24:00"}}},
            10,
            "on_call: elevator.handoff: '24:00' is not a time of day",
        ),
        (
            {"on_call": {"elevator": {**ROTA, "handoff": 510}}},  # what YAML 1.1 makes of an unquoted 08:30
            10,
            'on_call: elevator.handoff: 510 is not a time of day like "08:30" (quote it)',
        ),
        (
            {"on_call": {"elevator": {**ROTA, "every": "fortnightly"}}},
            9,
            "on_call: elevator.every: 'fortnightly' is not a rotation period",
        ),
        (
            {"on_call": {"elevator": {**ROTA, "every": "12h"}}},
            9,
            "on_call: elevator.every: '12h' is not a rotation period",
        ),
        ({"on_call": {"elevator": {**ROTA, "technicians": []}}}, 12, "on_call: elevator.technicians: List should have"),
        (
            {"on_call": {"elevator": {**ROTA, "start": "soon"}}},
            11,
            "on_call: elevator.start: Input should be a valid date",
        ),
        ({"on_call": {"plumbing": ROTA}}, 8, "on_call: plumbing: Extra inputs are not permitted"),
        ({"supervisor": "ghost"}, 9, "supervisor: 'ghost' is not one of the site's technicians"),
        ({"manager": {"name": "Chen Jing", "phone": "call me"}}, 9, "manager: phone: String should match pattern"),
    ],
)
def test_mistakes_name_the_file_the_line_the_entry_and_the_problem(
    tmp_path: Path, sections: dict[str, Any], line: int, problem: str
) -> None:
    path = _write(tmp_path, **sections)
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    [reported] = caught.value.problems
    assert reported.startswith(f"{path}:{line}: {problem}"), reported
