"""The rule engine as a pure function: rule files in, (event, now) in, actions out. No database, no broker."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.sla import ClockDeadline, load_sla_profiles
from facmon.workorders.tables import Milestone, Priority
from rules.engine import (
    DEFAULT_RULE_FILES,
    FaultCleared,
    FireAlarmSignal,
    OpenWorkOrder,
    RuleFileError,
    SetComm,
    evaluate,
    load_rules,
)
from rules.tables import Comm
from tests.rules.support import elevator

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RULES = load_rules()
MIN = timedelta(minutes=1)


def event(
    type_: EventType,
    code: str | None = None,
    *,
    ts: datetime = NOW,
    ref: DeviceRef | None = None,
    point: str | None = None,
) -> Event:
    return Event(ref=ref or elevator(), ts=ts, type=type_, code=code, point=point, id="ev-1")


def device(kind: DeviceKind, name: str) -> DeviceRef:
    return DeviceRef(site="s1", building="b1", device=name, kind=kind, model="m")


def test_default_library_loads_rules_for_every_device_kind() -> None:
    assert [rule.id for rule in RULES][:4] == [
        "elevator.fault.work-order",
        "elevator.fault.cleared",
        "elevator.comm.lost",
        "elevator.comm.restored",
    ]
    assert {rule.source for rule in RULES} == {"elevator.yaml", "fire.yaml", "gate.yaml", "camera.yaml"}
    assert {rule.definition.when.kind for rule in RULES} == set(DeviceKind)
    assert all(path.is_file() for path in DEFAULT_RULE_FILES)


def test_fault_opens_work_order_with_twenty_minute_sla() -> None:
    [action] = evaluate(RULES, event(EventType.FAULT_RAISED, "2"), NOW)
    assert action == OpenWorkOrder(
        rule_id="elevator.fault.work-order",
        site="s1",
        building="b1",
        device="e1",
        kind="elevator",
        fault="2",
        title="Elevator e1 (b1): door close fault",
        priority=Priority.URGENT,
        detected_at=NOW,
        due_at=NOW + 20 * MIN,
        sla_profile="elevator.fault",
        clocks=(
            ClockDeadline("on_site", Milestone.ON_SITE, NOW + 20 * MIN),
            # The repair itself: what repair timeliness measures (24 h, a contract default).
            ClockDeadline("repair", Milestone.RESOLVED, NOW + 24 * 60 * MIN),
        ),
    )


@pytest.mark.parametrize("code", ["entrapment", "15", "90"])
def test_entrapment_runs_acknowledge_arrival_and_statutory_clocks(code: str) -> None:
    [action] = evaluate(RULES, event(EventType.FAULT_RAISED, code), NOW)
    assert isinstance(action, OpenWorkOrder)
    assert action.sla_profile == "elevator.entrapment"
    assert action.clocks == (
        ClockDeadline("acknowledge", Milestone.ACKNOWLEDGED, NOW + 3 * MIN),
        ClockDeadline("on_site", Milestone.ON_SITE, NOW + 20 * MIN),
        ClockDeadline("statutory_on_site", Milestone.ON_SITE, NOW + 30 * MIN),
        ClockDeadline("repair", Milestone.RESOLVED, NOW + 4 * 60 * MIN),  # rescued and made safe
    )
    assert action.due_at == NOW + 20 * MIN  # the main on-site deadline, as before profiles


def test_fire_points_get_a_work_order_each_keyed_by_point() -> None:
    panel = device(DeviceKind.FIRE_PANEL, "fp1")
    [one] = evaluate(RULES, event(EventType.FAULT_RAISED, "fault", ref=panel, point="1-023"), NOW)
    [other] = evaluate(RULES, event(EventType.FAULT_RAISED, "disabled", ref=panel, point="1-024"), NOW)
    [supply] = evaluate(RULES, event(EventType.FAULT_RAISED, "battery_fault", ref=panel), NOW)
    assert isinstance(one, OpenWorkOrder)
    assert isinstance(other, OpenWorkOrder)
    assert isinstance(supply, OpenWorkOrder)
    assert (one.fault, one.title, one.sla_profile) == (
        "1-023/fault",
        "Fire point 1-023 on fp1 (b1): in fault",
        "fire.point",
    )
    assert [(c.name, c.due_at - NOW) for c in one.clocks] == [
        ("on_site", timedelta(hours=4)),
        ("repair", timedelta(hours=24)),
    ]
    assert other.fault == "1-024/disabled"
    assert (supply.fault, supply.sla_profile) == ("battery_fault", "fire.panel")
    # A fire alarm is for the control room and the notifier, not a repair: it is recorded as a fire alarm.
    [alarm] = evaluate(RULES, event(EventType.FAULT_RAISED, "fire", ref=panel, point="1-023"), NOW)
    assert isinstance(alarm, FireAlarmSignal)
    assert (alarm.point, alarm.raised) == ("1-023", True)
    [cleared] = evaluate(RULES, event(EventType.FAULT_CLEARED, "fault", ref=panel, point="1-023"), NOW)
    assert isinstance(cleared, FaultCleared)
    assert cleared.fault == "1-023/fault"


@pytest.mark.parametrize(
    ("kind", "code", "profile", "on_site"),
    [
        (DeviceKind.GATE, "limit_timeout", "gate.fault", timedelta(hours=2)),
        (DeviceKind.CAMERA, "video_loss", "camera.fault", timedelta(hours=4)),
    ],
)
def test_gate_and_camera_faults_use_their_profiles(
    kind: DeviceKind, code: str, profile: str, on_site: timedelta
) -> None:
    [action] = evaluate(RULES, event(EventType.FAULT_RAISED, code, ref=device(kind, "x1")), NOW)
    assert isinstance(action, OpenWorkOrder)
    assert (action.sla_profile, action.due_at) == (profile, NOW + on_site)


@pytest.mark.parametrize(
    ("code", "priority"),
    [
        ("entrapment", Priority.EMERGENCY),
        ("15", Priority.EMERGENCY),  # car alarm button: a possible entrapment until someone on site says otherwise
        ("90", Priority.EMERGENCY),
        ("1", Priority.URGENT),
        ("41", Priority.URGENT),
        ("77", Priority.URGENT),  # a code nobody listed still opens a work order
    ],
)
def test_priority_by_code(code: str, priority: Priority) -> None:
    [action] = evaluate(RULES, event(EventType.FAULT_RAISED, code), NOW)
    assert isinstance(action, OpenWorkOrder)
    assert action.priority is priority
    assert action.fault == code


def test_titles_name_the_fault_or_fall_back_to_the_code() -> None:
    [entrapment] = evaluate(RULES, event(EventType.FAULT_RAISED, "entrapment"), NOW)
    [unknown] = evaluate(RULES, event(EventType.FAULT_RAISED, "77"), NOW)
    assert isinstance(entrapment, OpenWorkOrder)
    assert isinstance(unknown, OpenWorkOrder)
    assert entrapment.title == "Elevator e1 (b1): entrapment (passenger trapped)"
    assert unknown.title == "Elevator e1 (b1): fault 77"


def test_replayed_event_keeps_its_deadline_and_future_device_clock_is_clamped() -> None:
    earlier = NOW - timedelta(minutes=12)
    [replayed] = evaluate(RULES, event(EventType.FAULT_RAISED, "3", ts=earlier), NOW)
    [ahead] = evaluate(RULES, event(EventType.FAULT_RAISED, "3", ts=NOW + timedelta(hours=1)), NOW)
    assert isinstance(replayed, OpenWorkOrder)
    assert isinstance(ahead, OpenWorkOrder)
    assert (replayed.detected_at, replayed.due_at) == (earlier, earlier + timedelta(minutes=20))
    assert replayed.clocks[0].due_at == earlier + timedelta(minutes=20)
    assert (ahead.detected_at, ahead.due_at) == (NOW, NOW + timedelta(minutes=20))


def test_fault_cleared_and_comm_events() -> None:
    assert evaluate(RULES, event(EventType.FAULT_CLEARED, "2"), NOW) == [
        FaultCleared(rule_id="elevator.fault.cleared", site="s1", device="e1", fault="2", cleared_at=NOW)
    ]
    assert evaluate(RULES, event(EventType.COMM_LOST), NOW) == [
        SetComm(rule_id="elevator.comm.lost", site="s1", device="e1", comm=Comm.LOST, at=NOW)
    ]
    [restored] = evaluate(RULES, event(EventType.COMM_RESTORED), NOW)
    assert isinstance(restored, SetComm)
    assert restored.comm is Comm.OK


def test_no_action_without_a_matching_rule() -> None:
    gate = device(DeviceKind.GATE, "g1")
    assert evaluate(RULES, event(EventType.CARD_READ, None, ref=gate), NOW) == []
    assert evaluate(RULES, event(EventType.STATUS, "41"), NOW) == []
    # A fault without a code cannot key a work order (the worker rejects such events before they get here).
    assert evaluate(RULES, event(EventType.FAULT_RAISED, None), NOW) == []
    assert evaluate((), event(EventType.FAULT_RAISED, "2"), NOW) == []


def test_evaluate_is_pure_and_actions_are_frozen() -> None:
    ev = event(EventType.FAULT_RAISED, "2")
    first = evaluate(RULES, ev, NOW)
    assert evaluate(RULES, ev, NOW) == first
    action = first[0]
    assert isinstance(action, OpenWorkOrder)
    with pytest.raises(dataclasses.FrozenInstanceError):
        action.fault = "3"  # type: ignore[misc]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_codes_filter_and_title_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "custom.yaml",
        """
fault_names: {11: overspeed}
rules:
  - id: overspeed
    when: {kind: elevator, event: fault_raised, codes: [11]}  # unquoted codes are read as text too
    then: {action: open_work_order, sla: fast, priority: emergency, title: "{site}/{device} {code}: {fault_name}"}
""",
    )
    profiles = write(
        tmp_path / "sla.yaml",
        "profiles:\n  - {id: fast, clocks: [{name: on_site, milestone: on_site, within: 5min}]}\n",
    )
    rules = load_rules([path], sla_profiles=load_sla_profiles(profiles))
    [action] = evaluate(rules, event(EventType.FAULT_RAISED, "11"), NOW)
    assert isinstance(action, OpenWorkOrder)
    assert (action.title, action.priority, action.due_at) == (
        "s1/e1 11: overspeed",
        Priority.EMERGENCY,
        NOW + timedelta(minutes=5),
    )
    assert evaluate(rules, event(EventType.FAULT_RAISED, "2"), NOW) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - {id: r1, when: {kind: elevator, event: fault_raised},"
            " then: {action: open_work_order, sla: elevator.slow, priority: urgent}}\n",
            "rule r1: then.sla: unknown SLA profile 'elevator.slow'; known: ['camera.fault'",
        ),
        (
            "rules:\n  - {id: r1b, when: {kind: elevator, event: fault_raised},"
            " then: {action: open_work_order, sla: elevator.fault, sla_by_code: {9: nope}, priority: urgent}}\n",
            "rule r1b: then.sla_by_code.9: unknown SLA profile 'nope'",
        ),
        (
            "rules:\n  - {id: r1c, when: {kind: elevator, event: fault_raised},"
            " then: {action: open_work_order, sla_minutes: 20, priority: urgent}}\n",
            "rule r1c: then.open_work_order.sla: Field required",
        ),
        (
            "rules:\n  - {id: r2, when: {kind: elevator, event: comm_lost}, then: {action: fault_cleared}}\n",
            "rule r2: action 'fault_cleared' needs event fault_cleared, not 'comm_lost'",
        ),
        (
            "rules:\n  - {id: r3, when: {kind: elevator, event: fault_raised},"
            " then: {action: open_work_order, sla: elevator.fault, priority: urgent, title: '{floor}'}}\n",
            "rule r3: then.open_work_order: title uses unknown fields ['floor']",
        ),
        (
            "rules:\n  - {id: r4, when: {kind: lift, event: fault_raised}, then: {action: fault_cleared}}\n",
            "rule r4: when.kind: Input should be",
        ),
        (
            "rules:\n  - {id: r5, when: {kind: elevator, event: comm_lost},"
            " then: {action: set_comm, comm: ok, x: 1}}\n",
            "rule r5: then.set_comm.x: Extra inputs are not permitted",
        ),
        ("rules:\n  - {when: {kind: elevator, event: comm_lost}, then: {action: set_comm, comm: ok}}\n", "rule #1: id"),
        ("rules: []\n", "expected a mapping with a non-empty 'rules' list"),
        ("rules: [\n", "not valid YAML"),
        ("fault_names: {}\nrule: []\n", "expected a mapping with a non-empty 'rules' list"),
        (
            "fault_names: [overspeed]\n"
            "rules:\n  - {id: r6, when: {kind: elevator, event: comm_lost}, then: {action: set_comm, comm: ok}}\n",
            "fault_names: expected a mapping of code to text",
        ),
    ],
)
def test_bad_rule_files_name_file_rule_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(RuleFileError) as caught:
        load_rules([path])
    assert any(problem.startswith(f"{path}:") and expected in problem for problem in caught.value.problems), (
        caught.value.problems
    )


def test_every_problem_is_reported_and_ids_are_unique_across_files(tmp_path: Path) -> None:
    one = write(
        tmp_path / "one.yaml",
        "rules:\n  - {id: dup, when: {kind: elevator, event: comm_lost}, then: {action: set_comm, comm: lost}}\n",
    )
    two = write(
        tmp_path / "two.yaml",
        "rules:\n  - {id: dup, when: {kind: elevator, event: comm_lost}, then: {action: set_comm, comm: lost}}\n"
        "  - {id: bad, when: {kind: elevator, event: comm_lost}, then: {action: reboot}}\n",
    )
    with pytest.raises(RuleFileError) as caught:
        load_rules([one, two, tmp_path / "missing.yaml"])
    problems = caught.value.problems
    assert f"{two}: rule dup: id already used in one.yaml" in problems
    assert any(p.startswith(f"{two}: rule bad: then: Input tag 'reboot'") for p in problems), problems
    assert any(p.startswith(f"{tmp_path / 'missing.yaml'}: cannot read") for p in problems), problems
