"""The elevators' ledger and insurance data in the site file: optional, checked, and errors that say where."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from facmon.estate.site import SiteFileError, load_site

ELEVATOR: dict[str, Any] = {
    "id": "e1",
    "kind": "elevator",
    "model": "elev-gb-a",
    "address": {"host": "127.0.0.1"},
    "installed_on": "2012-05-18",
    "registration_code": "31103201012012050001",
}


def _load(tmp_path: Path, **fields: Any) -> Any:
    device = ELEVATOR | fields
    raw = {"site": {"id": "estate"}, "buildings": [{"id": "b1", "devices": [device]}]}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return load_site(path)


def _problems(tmp_path: Path, **fields: Any) -> list[str]:
    with pytest.raises(SiteFileError) as caught:
        _load(tmp_path, **fields)
    return caught.value.problems


def test_everything_is_optional(tmp_path: Path) -> None:
    device = _load(tmp_path).device("e1")
    assert (device.certificate, device.insurance, device.inspection, device.maintainer) == (None, None, None, None)
    assert device.variety_code == "3110", "read from the registration code"


def test_full_asset_data_loads(tmp_path: Path) -> None:
    device = _load(
        tmp_path,
        certificate="梯11苏A08231(12)",
        variety="3110",
        usage="office",
        maintainer={"company": "南京华信", "contract": {"number": "C-1", "start": "2026-01-01", "end": "2026-12-31"}},
        inspection={"last": "2026-05-14", "valid_until": "2027-05-31"},
        major_repair={"done_on": "2023-07-20", "description": "ropes"},
        insurance={"insurer": "金陵财产保险", "policy": "P-1", "expires": "2027-03-31"},
    ).device("e1")
    assert device.usage == "office"
    assert device.insurance is not None
    assert device.insurance.in_force(date(2027, 3, 31))
    assert not device.insurance.in_force(date(2027, 4, 1))


def test_variety_must_agree_with_the_registration_code(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, variety="3120")
    assert problem.startswith(f"{tmp_path / 'site.yaml'}:10: buildings[0].devices[0] (e1): variety: ")
    assert "variety 3120 (traction freight lift) does not agree with registration code 31103201012012050001" in problem
    assert "(3110)" in problem


def test_unknown_variety(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, variety="3999")
    assert "variety '3999' is not an elevator variety code" in problem


# The file is written by yaml.safe_dump (keys sorted), so each problem's line is known.
@pytest.mark.parametrize(
    ("fields", "line", "message"),
    [
        (
            {"maintainer": {"company": "X", "contract": {"number": "C", "start": "2026-02-01", "end": "2026-01-01"}}},
            10,
            "maintainer.contract: the contract ends (2026-01-01) before it starts (2026-02-01)",
        ),
        (
            {"inspection": {"last": "2026-05-14", "valid_until": "2025-05-31"}},
            6,
            "inspection: valid_until (2025-05-31) is before the inspection itself (2026-05-14)",
        ),
        (
            {"major_repair": {"done_on": "2010-01-01"}},
            9,
            "major_repair.done_on: 2010-01-01 is before the installation (2012-05-18)",
        ),
        ({"usage": "hospital"}, 10, "usage: Input should be 'residential', 'office' or 'mall'"),
        ({"insurance": {"insurer": "X", "policy": "P"}}, 7, "insurance.expires: Field required"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, fields: dict[str, Any], line: int, message: str) -> None:
    problems = _problems(tmp_path, **fields)
    assert problems == [f"{tmp_path / 'site.yaml'}:{line}: buildings[0].devices[0] (e1): {message}"]


def test_only_elevators_take_asset_data(tmp_path: Path) -> None:
    raw = {
        "site": {"id": "estate"},
        "buildings": [
            {"id": "b1", "devices": [{"id": "g1", "kind": "gate", "model": "barrier-a", "usage": "residential"}]}
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    assert caught.value.problems == [f"{path}:6: buildings[0].devices[0] (g1): usage: only for elevators"]


def test_demo_site_has_old_uninsured_and_expired_elevators() -> None:
    site = load_site(Path(__file__).parents[2] / "examples" / "demo-site.yaml")
    elevators = {d.id: d for _, d in site.devices() if d.kind == "elevator"}
    over_ten = {i for i, d in elevators.items() if d.installed_on and d.installed_on <= date(2016, 10, 31)}
    assert over_ten == {"b1-e1", "b1-e2", "b2-e1", "b2-e2"}
    assert [i for i, d in elevators.items() if d.insurance is None] == ["b1-e3", "b2-e2", "b2-e3"]
    assert elevators["b2-e1"].inspection is not None
    assert elevators["b2-e1"].inspection.valid_until < date(2026, 10, 31)
