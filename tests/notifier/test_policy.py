"""Escalation policies: the library loads, bad files are refused with file, policy and reason, and the pure
due_steps function walks the entrapment chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facmon.notifier.policy import EscalationState, PolicyFileError, due_steps, load_policies, select_policy
from facmon.workorders.tables import WorkOrderStatus

POLICIES = load_policies()
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_library_picks_policies_by_kind_and_priority() -> None:
    cases = [
        ("elevator", "emergency", "elevator.entrapment"),
        ("elevator", "urgent", "elevator.fault"),
        ("fire_panel", "urgent", "fire"),
        ("fire_system", "urgent", "fire"),
        ("camera", "urgent", "security"),
        ("gate", "urgent", "security"),
        ("something_new", "urgent", "default"),
    ]
    for kind, priority, expected in cases:
        assert select_policy(POLICIES, kind, priority).id == expected, (kind, priority)
    assert not select_policy(POLICIES, "elevator", "emergency").routine


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            "policies: [{id: a, match: {}, routine: true, stages: [{name: s, notify: on_call, until: acknowledged}]}]",
            "give exactly one of `at`",
        ),
        (
            "policies: [{id: a, match: {priorities: [emergency]}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 0s, until: acknowledged}]}]",
            "cannot be routine",
        ),
        (
            "policies: [{id: a, match: {}, routine: true, stages: [{name: s, notify: boss, at: 0s, until: resolved}]}]",
            "stages.0.notify",
        ),
        (
            "policies: [{id: a, match: {}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 5, until: resolved}]}]",
            "give the unit",
        ),
        (
            "policies: [{id: a, match: {kinds: [gate]}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 0s, until: resolved}]}]",
            "no catch-all",
        ),
        (
            "policies: [{id: a, match: {}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 8d, until: resolved}]}]",
            "`at` must be between 0 and 7 days",
        ),
        (
            "policies: [{id: a, match: {}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 0s, every: 30s, until: resolved}]}]",
            "at least a minute apart",
        ),
        (
            "policies: [{id: a, match: {}, routine: true,"
            " stages: [{name: s, notify: on_call, on_breach: on_site, every: 5min, until: resolved}]}]",
            "`every` repeats an `at` stage",
        ),
        (
            "policies: [{id: a, match: {}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 0s, times: 3, until: resolved}]}]",
            "`times` limits the repeats",
        ),
        (
            "policies: [{id: a, match: {}, routine: true, stages: [{name: s, notify: on_call, at: 0s, until: resolved},"
            " {name: s, notify: manager, at: 1h, until: resolved}]}]",
            "stage names used twice: ['s']",
        ),
        (
            "policies: [{id: a, match: {}, routine: true,"
            " stages: [{name: s, notify: on_call, at: 0s, until: resolved}]},"
            " {id: a, match: {}, routine: true, stages: [{name: s, notify: on_call, at: 0s, until: resolved}]}]",
            "id used twice",
        ),
    ],
)
def test_bad_policy_file_names_file_policy_and_reason(tmp_path: Path, body: str, reason: str) -> None:
    path = tmp_path / "escalation.yaml"
    path.write_text(body)
    with pytest.raises(PolicyFileError) as caught:
        load_policies(path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)
    if "catch-all" not in reason:
        assert "policy a:" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [("policies: [\n", "not valid YAML"), ("policy: []\n", "expected a mapping with one key, 'policies'")],
)
def test_a_file_that_is_not_a_list_of_policies(tmp_path: Path, body: str, reason: str) -> None:
    path = tmp_path / "escalation.yaml"
    path.write_text(body)
    with pytest.raises(PolicyFileError, match=reason):
        load_policies(path)
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policies(tmp_path / "missing.yaml")


def test_without_a_catch_all_a_work_order_may_fit_no_policy() -> None:
    gates_only = [p for p in POLICIES if p.id == "security"]
    with pytest.raises(LookupError, match="no policy fits kind 'elevator'"):
        select_policy(gates_only, "elevator", "urgent")


def _state(
    status: str = "open", done: set[str] | None = None, breaches: dict[str, datetime] | None = None
) -> EscalationState:
    return EscalationState(T0, WorkOrderStatus(status), breaches or {}, frozenset(done or ()))


ENTRAPMENT = select_policy(POLICIES, "elevator", "emergency")


@pytest.mark.parametrize(
    ("at", "done", "status", "breaches", "due", "wake"),
    [
        (0, set(), "open", {}, ["on_call#0"], 5),
        (0, {"on_call#0"}, "open", {}, [], 5),
        (5, {"on_call#0"}, "open", {}, ["on_call#1"], 10),
        (10, {"on_call#0", "on_call#1"}, "open", {}, ["on_call#2", "supervisor#0"], 15),
        # Down from 1 to 17 min: the latest repeat only, not every missed one.
        (17, {"on_call#0"}, "open", {}, ["on_call#3", "supervisor#0"], 20),
        (21, {"on_call#4", "supervisor#0"}, "open", {"on_site": 20}, ["manager#0"], 25),
        # Acknowledged: the reminders and the supervisor stop; the manager still hears of a missed arrival.
        (21, set(), "acknowledged", {"on_site": 20}, ["manager#0"], None),
        (21, set(), "on_site", {"on_site": 20}, [], None),
        (21, set(), "resolved", {"on_site": 20}, [], None),
        (21, set(), "cancelled", {"on_site": 20}, [], None),
    ],
)
def test_entrapment_steps(
    at: int, done: set[str], status: str, breaches: dict[str, int], due: list[str], wake: int | None
) -> None:
    state = _state(status, done, {k: T0 + v * MIN for k, v in breaches.items()})
    plan = due_steps(ENTRAPMENT, state, T0 + at * MIN)
    assert [s.key for s in plan.due] == due
    assert plan.next_wake == (None if wake is None else T0 + wake * MIN)


def test_reasons_and_repeat_limit() -> None:
    plan = due_steps(ENTRAPMENT, _state(), T0 + 10 * MIN)
    assert [s.reason for s in plan.due] == ["reminder", "escalation"]
    assert due_steps(ENTRAPMENT, _state(), T0).due[0].reason == "opened"
    security = select_policy(POLICIES, "camera", "urgent")
    late = due_steps(security, _state(done={"on_call#2"}), T0 + 10 * 60 * MIN)
    assert late.due == ()
    assert late.next_wake is None
