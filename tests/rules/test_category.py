"""A work order's category comes from its rule: repairs for faults, tasks the service plan asks for, checks due."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.tables import Category
from rules.engine import OpenWorkOrder, RuleFileError, evaluate, load_rules
from rules.state_rules import load_state_rules

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_a_device_fault_is_a_repair() -> None:
    ref = DeviceRef(site="s1", building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    event = Event(ref=ref, ts=T0, type=EventType.FAULT_RAISED, code="2")
    [order] = [a for a in evaluate(load_rules(), event, T0) if isinstance(a, OpenWorkOrder)]
    assert order.category is Category.REPAIR


def test_the_service_plan_s_tasks_are_tasks() -> None:
    rules = load_state_rules()
    categories = {rule.id: rule.definition.then.category for rule in rules.rules}
    assert categories["elevator.backup.needed"] is Category.TASK
    assert categories["elevator.peak.not-in-service"] is Category.TASK
    assert Category.REPAIR in categories.values()


def test_an_unknown_category_is_refused_naming_file_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n"
        "  - id: x.rule\n"
        "    when: {kind: elevator, event: fault_raised}\n"
        "    then: {action: open_work_order, sla: elevator.fault, priority: urgent, category: chores}\n"
    )
    with pytest.raises(RuleFileError) as caught:
        load_rules([path])
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: rule x.rule: ")
    assert "category" in problem
