"""State rules as pure tables: device state from events, each service rule, holds, grouping, overrides, loader."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from facmon.kernel.model import DeviceRef, Event, EventType
from rules.engine import OpenWorkOrder
from rules.state_engine import (
    CancelHold,
    DeviceState,
    JoinGroup,
    StartHold,
    condition_holds,
    evaluate_change,
    evaluate_due_hold,
    evaluate_window_open,
    next_state,
)
from rules.state_rules import Condition, StateRuleFileError, StateRules, load_state_rules
from rules.tables import Comm
from tests.rules.support import elevator

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = load_state_rules()
# 07:00 and 12:00 in Shanghai on a Thursday.
IN_PEAK = datetime(2026, 1, 15, 7, 0, tzinfo=SHANGHAI).astimezone(UTC)
OFF_PEAK = datetime(2026, 1, 15, 12, 0, tzinfo=SHANGHAI).astimezone(UTC)


def lift(device: str, role: str | None = None, **state: object) -> DeviceState:
    return replace(DeviceState("s1", "b1", device, "elevator", role=role), **state)  # type: ignore[arg-type]


def status(point: str, value: str, code: str, ts: datetime = OFF_PEAK, ref: DeviceRef | None = None) -> Event:
    return Event(
        ref=ref or elevator(),
        ts=ts,
        type=EventType.STATUS,
        code=code,
        data={"status_point": point, "status_value": value},
    )


def rules(*ids: str) -> list:  # type: ignore[type-arg]
    return [rule for rule in RULES.rules if rule.id in ids]


def change(rule_ids: tuple[str, ...], before: list[DeviceState], after: list[DeviceState], at: datetime) -> list:  # type: ignore[type-arg]
    return evaluate_change(rules(*rule_ids), {s.device: s for s in before}, {s.device: s for s in after}, SHANGHAI, at)


# --- state from events ------------------------------------------------------------------------------------------------


def test_state_follows_status_comm_and_fault_events() -> None:
    state = lift("e1")
    state = next_state(state, status("service_mode", "inspection", "43"))
    state = next_state(state, status("power_source", "backup", "41", ts=OFF_PEAK + timedelta(seconds=1)))
    t = OFF_PEAK + timedelta(seconds=2)
    state = next_state(state, Event(ref=elevator(), ts=t, type=EventType.FAULT_RAISED, code="2"))
    assert (state.service_mode, state.power_source, state.faults) == ("inspection", "backup", {"2"})
    state = next_state(state, Event(ref=elevator(), ts=t, type=EventType.COMM_LOST))
    assert state.comm is Comm.LOST
    # An event older than what the state knows of its aspect changes nothing (a late replay, or one another worker
    # applied after a newer one) ...
    assert next_state(state, status("service_mode", "normal", "40", ts=OFF_PEAK - timedelta(seconds=1))) == state
    # ... and one that is the newest news of its aspect changes it, however new the rest of the state is.
    older_fault = Event(ref=elevator(), ts=OFF_PEAK, type=EventType.FAULT_RAISED, code="7")
    assert next_state(state, older_fault).faults == {"2", "7"}
    assert next_state(state, older_fault).comm is Comm.LOST
    later = t + timedelta(seconds=1)
    state = next_state(state, Event(ref=elevator(), ts=later, type=EventType.FAULT_CLEARED, code="2"))
    assert (state.faults, state.comm, state.updated_at) == (frozenset(), Comm.OK, later)
    # Without status_point/status_value, the GB/T 24476 code says which.
    bare = Event(ref=elevator(), ts=later, type=EventType.STATUS, code="42")
    assert next_state(lift("e1"), bare).service_mode == "out_of_service"
    on_backup = Event(ref=elevator(), ts=later, type=EventType.STATUS, code="41")
    assert next_state(lift("e1"), on_backup).power_source == "backup"
    # A status code that says neither changes nothing but the time.
    other = Event(ref=elevator(), ts=later, type=EventType.STATUS, code="40")
    assert next_state(lift("e1"), other) == lift("e1", updated_at=later)


@pytest.mark.parametrize(
    ("state", "holds"),
    [
        (lift("e1"), False),  # mode not known yet: not taken for out of service
        (lift("e1", service_mode="normal"), False),
        (lift("e1", service_mode="inspection"), True),
        (lift("e1", service_mode="normal", faults=frozenset({"2"})), True),
    ],
)
def test_out_of_service_is_a_mode_other_than_normal_or_a_fault(state: DeviceState, holds: bool) -> None:
    assert condition_holds(Condition.OUT_OF_SERVICE, state, {state.device: state}) is holds


# --- peak elevators ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "opens"), [("05:59", False), ("06:00", True), ("07:59", True), ("08:00", False), ("17:30", True)]
)
def test_a_peak_elevator_leaving_normal_service_in_a_peak_window(local: str, opens: bool) -> None:
    hour, minute = map(int, local.split(":"))
    at = datetime(2026, 1, 15, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)
    before, after = lift("p1", "peak", service_mode="normal"), lift("p1", "peak", service_mode="inspection")
    actions = change(("elevator.peak.not-in-service",), [before], [after], at)
    if not opens:
        assert actions == []
        return
    [order] = actions
    assert isinstance(order, OpenWorkOrder)
    assert (order.device, order.fault, order.sla_profile, order.detected_at) == (
        "p1",
        "peak_not_in_service",
        "elevator.fault",
        at,
    )


def test_only_peak_elevators_and_only_on_the_change() -> None:
    out = {"service_mode": "out_of_service"}
    assert change(("elevator.peak.not-in-service",), [lift("m1", "main")], [lift("m1", "main", **out)], IN_PEAK) == []
    # Already out before this event: the change is not a new departure (the window's start handles that case).
    assert (
        change(("elevator.peak.not-in-service",), [lift("p1", "peak", **out)], [lift("p1", "peak", **out)], IN_PEAK)
        == []
    )
    # An unknown service mode is not "out of service".
    assert change(("elevator.peak.not-in-service",), [], [lift("p1", "peak")], IN_PEAK) == []


def test_at_the_window_start_a_peak_elevator_already_out_gets_a_work_order() -> None:
    start = datetime(2026, 1, 15, 17, 0, tzinfo=SHANGHAI).astimezone(UTC)
    states = [
        lift("p1", "peak", service_mode="inspection"),
        lift("p2", "peak", service_mode="normal"),
        lift("m1", "main", service_mode="out_of_service"),
    ]
    [order] = evaluate_window_open(
        rules("elevator.peak.not-in-service"), states, SHANGHAI, start - timedelta(seconds=1), start
    )
    assert isinstance(order, OpenWorkOrder)
    assert order.device == "p1"
    assert (
        evaluate_window_open(
            rules("elevator.peak.not-in-service"), states, SHANGHAI, start, start + timedelta(seconds=1)
        )
        == []
    )


# --- main and backup --------------------------------------------------------------------------------------------------


def test_main_down_while_the_backup_is_not_in_service_asks_for_the_backup() -> None:
    rule = ("elevator.backup.needed",)
    main_ok, main_down = lift("m1", "main", service_mode="normal"), lift("m1", "main", service_mode="out_of_service")
    backup_ok, backup_off = (
        lift("k1", "backup", service_mode="normal"),
        lift("k1", "backup", service_mode="out_of_service"),
    )
    # Main goes down, backup in service: the backup carries the service, nothing to do.
    assert change(rule, [main_ok, backup_ok], [main_down, backup_ok], OFF_PEAK) == []
    # Main goes down while the backup is out too.
    [order] = change(rule, [main_ok, backup_off], [main_down, backup_off], OFF_PEAK)
    assert isinstance(order, OpenWorkOrder)
    assert (order.device, order.fault, order.title) == (
        "m1",
        "backup_needed",
        "Building b1: main elevator down; bring the backup into service (main m1)",
    )
    # The backup leaves service while the main is down (a fault counts as down): the same task, for the main.
    faulted = replace(main_ok, faults=frozenset({"2"}))
    [order] = change(rule, [faulted, backup_ok], [faulted, backup_off], OFF_PEAK)
    assert isinstance(order, OpenWorkOrder)
    assert order.device == "m1"
    # No backup in the building: nothing to bring into service.
    assert change(rule, [main_ok], [main_down], OFF_PEAK) == []


# --- power, holds, grouping -------------------------------------------------------------------------------------------


def test_backup_power_starts_a_hold_and_main_power_back_cancels_it() -> None:
    rule = ("elevator.power.backup",)
    on_main, on_backup = lift("e1", power_source="main"), lift("e1", power_source="backup")
    [hold] = change(rule, [on_main], [on_backup], OFF_PEAK)
    assert hold == StartHold("elevator.power.backup", "s1", "b1", "e1", OFF_PEAK, OFF_PEAK + timedelta(minutes=1))
    # A repeat of event 41 while already on backup changes nothing.
    assert change(rule, [on_backup], [on_backup], OFF_PEAK) == []
    assert change(rule, [on_backup], [on_main], OFF_PEAK) == [CancelHold("elevator.power.backup", "s1", "e1")]


def test_comm_lost_holds_for_ten_minutes_and_restored_cancels() -> None:
    rule = ("elevator.comm.lost.work-order",)
    [hold] = change(rule, [lift("e1")], [lift("e1", comm=Comm.LOST)], OFF_PEAK)
    assert isinstance(hold, StartHold)
    assert hold.due_at == OFF_PEAK + timedelta(minutes=10)
    assert change(rule, [lift("e1", comm=Comm.LOST)], [lift("e1")], OFF_PEAK) == [
        CancelHold("elevator.comm.lost.work-order", "s1", "e1")
    ]


def test_a_due_hold_opens_one_work_order_or_joins_the_building_group() -> None:
    [rule] = rules("elevator.power.backup")  # group: min_devices 2
    lost = OFF_PEAK - timedelta(minutes=1)
    one = {"e1": lift("e1", power_source="backup"), "e2": lift("e2", power_source="main")}
    [order] = evaluate_due_hold(rule, "e1", lost, one, group_open=False)
    assert isinstance(order, OpenWorkOrder)
    assert (order.device, order.fault, order.detected_at) == ("e1", "main_power_lost", lost)
    both = {"e1": lift("e1", power_source="backup"), "e2": lift("e2", power_source="backup")}
    [join] = evaluate_due_hold(rule, "e1", lost, both, group_open=False)
    assert isinstance(join, JoinGroup)
    assert (join.device, join.order.device, join.order.kind, join.order.fault) == (
        "e1",
        "b1",
        "building",
        "group/main_power_lost",
    )
    # Once the group is open, a later device joins it even alone.
    [join] = evaluate_due_hold(
        rule,
        "e2",
        lost,
        one | {"e2": lift("e2", power_source="backup"), "e1": lift("e1", power_source="main")},
        group_open=True,
    )
    assert isinstance(join, JoinGroup)
    assert join.device == "e2"
    # The condition is gone by the time the hold runs out: nothing is owed.
    assert evaluate_due_hold(rule, "e2", lost, one, group_open=False) == []


# --- overrides and the loader ----------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_site_overrides_peak_windows_hold_and_sla(tmp_path: Path) -> None:
    overrides = write(
        tmp_path,
        "estate-b.yaml",
        """
overrides:
  - site: s2
    rule: elevator.peak.not-in-service
    reason: the estate's school traffic starts at 05:30
    set:
      window: [{days: [mon..fri], from: "05:30", to: "08:30"}]
  - site: s2
    rule: elevator.comm.lost.work-order
    reason: the gateway's uplink is a 4G modem that drops for a few minutes at a time
    set: {hold: 20min, then: {sla: elevator.fault}}
""",
    )
    loaded = load_state_rules(overrides=[overrides])
    assert loaded.get("s1", "elevator.comm.lost.work-order").definition.hold == timedelta(minutes=10)  # type: ignore[union-attr]
    comm = loaded.get("s2", "elevator.comm.lost.work-order")
    assert comm is not None
    assert comm.definition.hold == timedelta(minutes=20)
    assert comm.profile.id == "elevator.fault"
    early = datetime(2026, 1, 15, 5, 45, tzinfo=SHANGHAI).astimezone(UTC)
    out = ({"service_mode": "normal"}, {"service_mode": "inspection"})
    for site, opens in (("s1", False), ("s2", True)):
        before = replace(lift("p1", "peak", **out[0]), site=site)  # type: ignore[arg-type]
        after = replace(before, service_mode="inspection")
        actions = evaluate_change(loaded.for_site(site), {"p1": before}, {"p1": after}, SHANGHAI, early)
        assert bool(actions) is opens, site


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("{site: s2, rule: nope, reason: x, set: {hold: 5min}}", "rule nope: no such rule"),
        (
            "{site: s2, rule: elevator.power.backup, reason: '', set: {hold: 5min}}",
            "rule elevator.power.backup: reason",
        ),
        ("{site: s2, rule: elevator.power.backup, reason: x, set: {condition: comm_lost}}", "set: expected some of"),
        ("{site: s2, rule: elevator.power.backup, reason: x, set: {then: {fault: other}}}", "set.then: only"),
        ("{site: s2, rule: elevator.power.backup, reason: x, set: {hold: 0s}}", "group needs a hold"),
        ("{site: s2, rule: elevator.power.backup, reason: x, set: {then: {sla: nope}}}", "unknown SLA profile 'nope'"),
        ("{site: s2, rule: elevator.power.backup, set: {hold: 5min}}", "exactly: site, rule, reason, set"),
        ("{site: 2, rule: elevator.power.backup, reason: x, set: {hold: 5min}}", "site: expected a site id"),
    ],
)
def test_bad_overrides_are_refused_with_file_rule_and_reason(tmp_path: Path, entry: str, reason: str) -> None:
    path = write(tmp_path, "bad.yaml", f"overrides:\n  - {entry}\n")
    with pytest.raises(StateRuleFileError) as caught:
        load_state_rules(overrides=[path])
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:")
    assert reason in problem


GOOD = """
  - id: x.rule
    kinds: [elevator]
    condition: comm_lost
    then: {fault: comm_lost, fault_name: lost, sla: comm_lost, priority: urgent}
"""


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        (("condition: comm_lost", "condition: sleepy"), "condition: Input should be"),
        (
            ("kinds: [elevator]\n    condition: comm_lost", "kinds: [camera]\n    condition: on_backup_power"),
            "elevator's",
        ),
        (
            ("condition: comm_lost", "condition: backup_needed\n    roles: [peak]"),
            "roles must be [main]",
        ),
        (("condition: comm_lost", "condition: comm_lost\n    hold: 10"), "give the unit"),
        (("condition: comm_lost", "condition: comm_lost\n    hold: 2d"), "hold must be between"),
        (("condition: comm_lost", "condition: comm_lost\n    group: {min_devices: 3}"), "group needs a hold"),
        (
            (
                "condition: comm_lost",
                "condition: comm_lost\n    window: [{days: [mon..fri, hol], from: '06:00', to: '08:00'}]",
            ),
            "not a day",
        ),
        (
            ("condition: comm_lost", "condition: comm_lost\n    window: [{from: '08:00', to: '06:00'}]"),
            "must be before",
        ),
        (("sla: comm_lost", "sla: nope"), "unknown SLA profile"),
        (("priority: urgent}", "priority: urgent, title: '{floor}'}"), "unknown fields ['floor']"),
        (("fault: comm_lost", "fault: Comm Lost"), "then.fault"),
    ],
)
def test_a_bad_rule_is_refused_with_file_rule_id_and_reason(
    tmp_path: Path, patch: tuple[str, str], reason: str
) -> None:
    path = write(tmp_path, "bad.yaml", "rules:" + GOOD.replace(*patch, 1))
    with pytest.raises(StateRuleFileError) as caught:
        load_state_rules([path])
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: rule x.rule: "), problem
    assert reason in problem, problem


def test_a_rule_overridden_twice_for_a_site_is_refused(tmp_path: Path) -> None:
    entry = "  - {site: s2, rule: elevator.power.backup, reason: x, set: {hold: 5min}}\n"
    path = write(tmp_path, "twice.yaml", "overrides:\n" + entry + entry)
    with pytest.raises(StateRuleFileError) as caught:
        load_state_rules(overrides=[path])
    assert caught.value.problems == [f"{path}: rule elevator.power.backup: overridden twice for site 's2'"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("rules: [\n", "not valid YAML"), ("rule: []\n", "expected a mapping with one key, 'rules'")],
)
def test_a_state_rule_file_that_is_not_a_list_of_rules(tmp_path: Path, text: str, reason: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(StateRuleFileError) as caught:
        load_state_rules([path])
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:")
    assert reason in problem


def test_duplicate_ids_and_unreadable_files(tmp_path: Path) -> None:
    path = write(tmp_path, "twice.yaml", "rules:" + GOOD + GOOD)
    with pytest.raises(StateRuleFileError, match=r"rule x\.rule: id already used in twice\.yaml"):
        load_state_rules([path])
    with pytest.raises(StateRuleFileError, match="cannot read"):
        load_state_rules([tmp_path / "missing.yaml"])
    assert isinstance(load_state_rules([write(tmp_path, "ok.yaml", "rules:" + GOOD)]), StateRules)
