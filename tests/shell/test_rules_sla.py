"""`facmon rules --sla FILE` (or FACMON_SLA_FILE): the rules worker gives new work orders the deadlines of that file's
SLA profiles instead of the shipped sla.yaml; a file that cannot be used stops the start with its name and problems.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from facmon.shell import cli
from facmon.workorders.sla import DEFAULT_SLA_FILE
from rules.engine import Rule
from rules.state_rules import StateRules
from tests.support import one_elevator_site


class _Composer:
    """What the `rules` command's build asks of the composition root, recorded."""

    def __init__(self) -> None:
        self.built: dict[str, Any] = {}

    async def prepare_database(self) -> None:
        return None

    def rules(self, sites: Sequence[object], state_rules: StateRules, *, event_rules: Sequence[Rule]) -> str:
        self.built = {"sites": sites, "state_rules": state_rules, "event_rules": event_rules}
        return "rules service"


def _short_profiles(path: Path, on_site: str = "20s") -> Path:
    """The shipped profiles with every elevator on-site clock shortened to `on_site`."""
    shipped = yaml.safe_load(DEFAULT_SLA_FILE.read_text(encoding="utf-8"))
    for profile in shipped["profiles"]:
        for clock in profile["clocks"]:
            if profile["id"].startswith("elevator.") and clock["name"] == "on_site":
                clock["within"] = on_site
    path.write_text(yaml.safe_dump(shipped, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(one_elevator_site("sla-site", 1502)))
    return path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The build the command would serve, instead of serving it."""
    captured: dict[str, Any] = {}
    monkeypatch.setattr(cli, "_serve", lambda build, settings, probe=None: captured.update(build=build))
    return captured


def _profiles_built(served: dict[str, Any]) -> dict[str, Any]:
    composer = _Composer()
    assert asyncio.run(served["build"](composer)) == ["rules service"]
    return composer.built


def _on_site_within(built: dict[str, Any], profile: str) -> timedelta:
    rule = next(r for r in built["event_rules"] if r.id == "elevator.fault.work-order")
    return next(c.within for c in rule.profiles[profile].clocks if c.name == "on_site")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_rules_worker_takes_its_sla_profiles_from_the_file_given(
    tmp_path: Path, site_file: Path, served: dict[str, Any], how: str
) -> None:
    sla = _short_profiles(tmp_path / "short-sla.yaml")
    args = ["rules", "--site", str(site_file)]
    env = {"FACMON_SLA_FILE": str(sla)} if how == "environment" else {}
    result = CliRunner().invoke(cli.app, [*args, "--sla", str(sla)] if how == "option" else args, env=env)
    assert result.exit_code == 0, result.output
    built = _profiles_built(served)
    assert _on_site_within(built, "elevator.fault") == timedelta(seconds=20)
    assert _on_site_within(built, "elevator.entrapment") == timedelta(seconds=20)
    # The state rules (comm lost, peak car not in service, ...) name their profiles from the same file.
    comm = next(r for r in built["state_rules"].rules if r.definition.then.sla == "comm_lost")
    assert comm.profile.hold == timedelta(minutes=10)


def test_without_a_file_the_shipped_profiles_stand(site_file: Path, served: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli.app, ["rules", "--site", str(site_file)], env={"FACMON_SLA_FILE": None})
    assert result.exit_code == 0, result.output
    assert _on_site_within(_profiles_built(served), "elevator.fault") == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("profiles: [\n", "not valid YAML"),
        ("profiles:\n  - {id: p1, clocks: [{name: a, milestone: on_site, within: 20}]}\n", "profile p1: clocks.0"),
        # A file without a profile the shipped rules name: every rule that names it is listed.
        (
            "profiles:\n  - {id: elevator.fault, clocks: [{name: on_site, milestone: on_site, within: 20s}]}\n",
            "unknown SLA profile 'elevator.entrapment'",
        ),
    ],
)
def test_a_bad_sla_file_stops_the_start_naming_the_file(
    tmp_path: Path, site_file: Path, served: dict[str, Any], content: str | None, expected: str
) -> None:
    sla = tmp_path / "bad-sla.yaml"
    if content is not None:
        sla.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["rules", "--site", str(site_file), "--sla", str(sla)])
    assert result.exit_code == 2, result.output
    assert f"(SLA profiles from {sla})" in result.output
    assert expected in result.output, result.output
    assert "build" not in served, "nothing is served"
