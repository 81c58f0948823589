"""The lifecycle table as a pure function: every (current, to) pair either plans its steps or says why not."""

from __future__ import annotations

import itertools

import pytest

from facmon.workorders.tables import Milestone, WorkOrderStatus
from facmon.workorders.transitions import FINAL, NEXT, IllegalTransition, milestones_reached, plan

S = WorkOrderStatus

ALLOWED: dict[tuple[WorkOrderStatus, WorkOrderStatus], tuple[WorkOrderStatus, ...]] = {
    (S.OPEN, S.ACKNOWLEDGED): (S.ACKNOWLEDGED,),
    # Arrival proved before anyone acknowledged: the acknowledgement is implied and recorded first.
    (S.OPEN, S.ON_SITE): (S.ACKNOWLEDGED, S.ON_SITE),
    (S.OPEN, S.CANCELLED): (S.CANCELLED,),
    (S.ACKNOWLEDGED, S.ON_SITE): (S.ON_SITE,),
    (S.ACKNOWLEDGED, S.CANCELLED): (S.CANCELLED,),
    (S.ON_SITE, S.RESOLVED): (S.RESOLVED,),
    (S.ON_SITE, S.CANCELLED): (S.CANCELLED,),
    (S.RESOLVED, S.CLOSED): (S.CLOSED,),
}

REFUSED: dict[tuple[WorkOrderStatus, WorkOrderStatus], str] = {
    (S.OPEN, S.OPEN): "already open",
    (S.OPEN, S.RESOLVED): "resolving needs a technician on site first (on_site)",
    (S.OPEN, S.CLOSED): "only a resolved work order can be closed",
    (S.ACKNOWLEDGED, S.OPEN): "cannot go back to open",
    (S.ACKNOWLEDGED, S.ACKNOWLEDGED): "already acknowledged",
    (S.ACKNOWLEDGED, S.RESOLVED): "resolving needs a technician on site first (on_site)",
    (S.ACKNOWLEDGED, S.CLOSED): "only a resolved work order can be closed",
    (S.ON_SITE, S.OPEN): "cannot go back to open",
    (S.ON_SITE, S.ACKNOWLEDGED): "cannot go back to acknowledged",
    (S.ON_SITE, S.ON_SITE): "already on_site",
    (S.ON_SITE, S.CLOSED): "resolve it first",
    (S.RESOLVED, S.OPEN): "cannot go back to open",
    (S.RESOLVED, S.ACKNOWLEDGED): "cannot go back to acknowledged",
    (S.RESOLVED, S.ON_SITE): "cannot go back to on_site",
    (S.RESOLVED, S.RESOLVED): "already resolved",
    (S.RESOLVED, S.CANCELLED): "was repaired; it can only be closed",
    **{(S.CLOSED, to): "closed, which is final" for to in S if to is not S.CLOSED},
    (S.CLOSED, S.CLOSED): "already closed",
    **{(S.CANCELLED, to): "cancelled, which is final" for to in S if to is not S.CANCELLED},
    (S.CANCELLED, S.CANCELLED): "already cancelled",
}


def test_the_tables_cover_every_pair_once() -> None:
    pairs = set(itertools.product(S, S))
    assert set(ALLOWED) | set(REFUSED) == pairs
    assert not set(ALLOWED) & set(REFUSED)


@pytest.mark.parametrize(("pair", "steps"), ALLOWED.items(), ids=lambda v: "-".join(map(str, v)))
def test_allowed_transitions_plan_their_steps(
    pair: tuple[WorkOrderStatus, WorkOrderStatus], steps: tuple[WorkOrderStatus, ...]
) -> None:
    assert plan(*pair) == steps


@pytest.mark.parametrize(("pair", "reason"), REFUSED.items(), ids=lambda v: "-".join(map(str, v)))
def test_refused_transitions_say_why_and_what_is_allowed(
    pair: tuple[WorkOrderStatus, WorkOrderStatus], reason: str
) -> None:
    current, to = pair
    with pytest.raises(IllegalTransition) as caught:
        plan(current, to)
    assert reason in caught.value.reason
    assert (caught.value.current, caught.value.to, caught.value.allowed) == (current, to, NEXT[current])


def test_cancel_from_every_status_still_open_for_work() -> None:
    assert {s for s in S if S.CANCELLED in NEXT[s]} == {S.OPEN, S.ACKNOWLEDGED, S.ON_SITE}
    assert frozenset({S.CLOSED, S.CANCELLED}) == FINAL


def test_milestones_reached_by_steps() -> None:
    assert milestones_reached((S.ACKNOWLEDGED, S.ON_SITE)) == (Milestone.ACKNOWLEDGED, Milestone.ON_SITE)
    assert milestones_reached((S.RESOLVED,)) == (Milestone.RESOLVED,)
    assert milestones_reached((S.CLOSED,)) == ()
    assert milestones_reached((S.CANCELLED,)) == ()
