"""A fire panel's commissioned points in the site file: ranges expanded, every mistake named by check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from facmon.estate.fire_points import expand, point_list_problems
from facmon.estate.site import SiteFileError, load_site

SITE = """\
site: {id: s1}
buildings:
  - id: b1
    devices:
      - id: fp1
        kind: fire_panel
        model: fire-gb-a
        address: {host: 10.0.1.13}
        points: ["1-001..1-120", "2-001..2-106", "2-128"]
      - {id: fp2, kind: fire_panel, model: fire-gb-a, address: {host: 10.0.1.14}}
"""

WRONG = """\
site: {id: s1}
buildings:
  - id: b1
    devices:
      - id: fp1
        kind: fire_panel
        model: fire-gb-a
        address: {host: 10.0.1.13}
        points: ["1-001..1-010", "1-5", "1-020..2-001", "1-009", "1-030..1-020", "3-001..3-002"]
      - {id: e1, kind: elevator, model: elev-gb-a, address: {host: 10.0.1.11}, points: ["1-001"]}
"""


def test_the_listed_ranges_are_the_panels_points(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    site = load_site(path)
    points = site.device("fp1").fire_points
    assert len(points) == 120 + 106 + 1
    assert points[:2] == ["1-001", "1-002"]
    assert points[119:121] == ["1-120", "2-001"]
    assert points[-1] == "2-128"
    assert site.device("fp2").fire_points == []


def test_check_config_names_every_wrong_entry(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(WRONG)
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    problems = caught.value.problems
    assert len(problems) == 6, problems
    assert problems[0].endswith(
        "(fp1): points[1]: '1-5' is not a point ('1-023') or a range of points ('1-001..1-120')"
    )
    assert problems[1].endswith("points[2]: '1-020..2-001': a range stays on one loop (1-020 is on loop 1, 2-001 on 2)")
    assert problems[2].endswith("points[3]: 1-009 already listed in entry 0 ('1-001..1-010')")
    assert problems[3].endswith("points[4]: '1-030..1-020': the range ends before it starts")
    # The points beyond the model's point table are found by the driver check, reported on the device's line.
    assert problems[4].endswith("(fp1): points: 3-001, 3-002: not on a fire-gb-a panel (loops 1..2, addresses 1..128)")
    assert problems[5].endswith("(e1): points: only for fire panels")
    # Every line names the file and the line of the device.
    assert all(p.startswith(f"{path}:") for p in problems)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("1-023", ["1-023"]), ("2-126..2-128", ["2-126", "2-127", "2-128"]), ("12-001..12-001", ["12-001"])],
)
def test_an_entry_is_a_point_or_a_range(spec: str, expected: list[str]) -> None:
    assert expand(spec) == expected


def test_overlapping_ranges_are_named_once_with_their_extent() -> None:
    assert point_list_problems(["1-001..1-010", "1-005..1-020"]) == [
        ((1,), "1-005..1-010 already listed in entry 0 ('1-001..1-010')")
    ]
    assert point_list_problems(["0-001"]) == [((0,), "'0-001': loops and addresses count from 1")]
