"""The site file's technicians: who works on the estate, with the access cards that prove them on site. Mistakes are
reported naming the file, the line, the entry and the problem; a card given to two people names both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from facmon.estate.site import SiteFileError, load_site
from facmon.kernel.model import DeviceKind

GATE = {"id": "gate-north", "kind": "gate", "model": "barrier-a"}
LI = {
    "id": "li-ming",
    "name": "Li Ming",
    "phone": "+86 138 0000 0001",
    "email": "li.ming@example.com",
    "cards": ["a1b2c3d4", "0000BEEF"],
    "disciplines": ["elevator", "security"],
}
ZHAO = {"id": "zhao-lei", "name": "Zhao Lei", "phone": "13800000002", "cards": ["5A5A0001"], "disciplines": ["fire"]}


def _write(tmp_path: Path, technicians: list[dict[str, Any]] | None) -> Path:
    raw: dict[str, Any] = {"site": {"id": "estate"}, "buildings": [{"id": "b1", "devices": [GATE]}]}
    if technicians is not None:
        raw["technicians"] = technicians
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_technicians_load_with_their_cards_in_one_spelling(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, [LI, ZHAO]))
    li = site.technicians[0]
    assert (li.id, li.name, li.email) == ("li-ming", "Li Ming", "li.ming@example.com")
    assert li.cards == ["A1B2C3D4", "0000BEEF"], "card numbers are kept upper case, as readers differ"
    assert site.technician_with_card("a1b2c3d4") == li
    assert site.technician_with_card("5A5A0001") == site.technicians[1]
    assert site.technician_with_card("DEADBEEF") is None
    assert li.covers(DeviceKind.ELEVATOR)
    assert li.covers(DeviceKind.GATE)
    assert li.covers(DeviceKind.CAMERA)
    assert not li.covers(DeviceKind.FIRE_PANEL)
    assert site.technicians[1].email is None


def test_the_section_is_optional(tmp_path: Path) -> None:
    assert load_site(_write(tmp_path, None)).technicians == []


def test_the_demo_site_has_a_technician_for_the_scenarios_card() -> None:
    site = load_site(Path(__file__).parents[2] / "examples" / "demo-site.yaml")
    holder = site.technician_with_card("A1B2C3D4")
    assert holder is not None
    assert holder.covers(DeviceKind.ELEVATOR)


# The files are written by yaml.safe_dump (keys sorted), so each problem's line is known: the line of the field, or
# of the entry when the field is missing.
@pytest.mark.parametrize(
    ("technicians", "line", "problem"),
    [
        (
            [LI, {**ZHAO, "cards": ["5A5A0001", "A1B2C3D4"]}],
            22,
            "technicians[1] (zhao-lei): cards[1]: card 'A1B2C3D4' is given to both technician li-ming and technician "
            "zhao-lei",
        ),
        (
            [{**LI, "cards": ["A1B2C3D4", "a1b2c3d4"]}],
            12,
            "technicians[0] (li-ming): cards[1]: card 'A1B2C3D4' is listed twice for technician li-ming",
        ),
        (
            [LI, {**ZHAO, "id": "li-ming"}],
            24,
            "technicians[1] (li-ming): id: technician id 'li-ming' is already used by technicians[0]",
        ),
        ([{**LI, "cards": ["A1B2-C3D4"]}], 11, "technicians[0] (li-ming): cards[0]: String should match pattern"),
        (
            [{**LI, "disciplines": ["plumbing"]}],
            14,
            "technicians[0] (li-ming): disciplines[0]: Input should be 'elevator', 'fire' or 'security'",
        ),
        (
            [{**LI, "disciplines": []}],
            13,
            "technicians[0] (li-ming): disciplines: Frozenset should have at least 1 item",
        ),
        ([{**LI, "phone": "call me"}], 19, "technicians[0] (li-ming): phone: String should match pattern"),
        ([{**LI, "email": "li.ming"}], 16, "technicians[0] (li-ming): email: String should match pattern"),
        ([{k: v for k, v in LI.items() if k != "name"}], 10, "technicians[0] (li-ming): name: Field required"),
        ([{**LI, "rota": "weekdays"}], 20, "technicians[0] (li-ming): rota: Extra inputs are not permitted"),
    ],
)
def test_mistakes_name_the_file_the_line_the_entry_and_the_problem(
    tmp_path: Path, technicians: list[dict[str, Any]], line: int, problem: str
) -> None:
    path = _write(tmp_path, technicians)
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    [reported] = caught.value.problems
    assert reported.startswith(f"{path}:{line}: {problem}"), reported
