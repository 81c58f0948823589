"""Storm control tables: maintenance windows, grouping by building, the per-recipient rate limit with a digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facmon.notifier.storm import Alert, MaintenanceWindow, group_alerts, rate_limit, silenced_by

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
WINDOWS = [
    MaintenanceWindow("s1", T0, T0 + 60 * MIN, building="b1", reason="camera upgrade"),
    MaintenanceWindow("s1", T0, T0 + 60 * MIN, device="b2-cam1"),
]


@pytest.mark.parametrize(
    ("building", "device", "routine", "minute", "silenced"),
    [
        ("b1", "b1-cam3", True, 10, True),  # the building's window
        ("b1", "b1-e1", False, 10, False),  # an emergency never
        ("b2", "b2-cam1", True, 10, True),  # the device's window
        ("b2", "b2-cam2", True, 10, False),  # another device
        ("b1", "b1-cam3", True, 60, False),  # the window has ended
        ("b1", "b1-cam3", True, -1, False),  # not begun
    ],
)
def test_maintenance_windows(building: str, device: str, routine: bool, minute: int, silenced: bool) -> None:
    window = silenced_by(WINDOWS, site="s1", building=building, device=device, routine=routine, at=T0 + minute * MIN)
    assert (window is not None) == silenced


def test_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="ends before"):
        MaintenanceWindow("s1", T0, T0)


def alert(wo: int, building: str = "b1", second: int = 0, routine: bool = True, kind: str = "camera") -> Alert:
    return Alert(wo, "s1", building, kind, "on_call", T0 + timedelta(seconds=second), routine)


@pytest.mark.parametrize(
    ("due", "upcoming", "groups"),
    [
        ([alert(1), alert(2, second=5)], [], [[1, 2]]),  # one building, due together: one message
        ([alert(1), alert(2, building="b2")], [], [[1], [2]]),  # two buildings
        ([alert(1), alert(2, kind="gate")], [], [[1], [2]]),  # two kinds (two on-call people, maybe)
        ([alert(1)], [alert(2, second=30), alert(3, second=90)], [[1, 2]]),  # takes what falls due within the window
        ([alert(1, routine=False), alert(2, routine=False)], [], [[1], [2]]),  # emergencies go one by one
        ([alert(1, routine=False)], [alert(2, second=5)], [[1]]),
    ],
)
def test_grouping(due: list[Alert], upcoming: list[Alert], groups: list[list[int]]) -> None:
    result = group_alerts(due, upcoming, timedelta(minutes=1))
    assert sorted([a.work_order_id for a in g] for g in result) == groups


@pytest.mark.parametrize(
    ("sent", "last_digest", "messages", "send", "digest", "defer"),
    [
        (0, None, "rrr", 3, 0, 0),
        (3, None, "rrr", 2, 1, 0),  # limit 5 per 10 min
        (5, None, "rrr", 0, 3, 0),
        (5, 3, "rrr", 0, 0, 3),  # a digest 3 min ago: wait for the next period
        (5, 11, "rrr", 0, 3, 0),  # the last digest is out of the period
        (5, 3, "eer", 2, 0, 1),  # emergencies always go
    ],
)
def test_rate_limit(sent: int, last_digest: int | None, messages: str, send: int, digest: int, defer: int) -> None:
    now = T0 + 30 * MIN
    decision = rate_limit(
        [(i, kind == "r") for i, kind in enumerate(messages)],
        sent=[now - timedelta(seconds=30 + i) for i in range(sent)] + [now - 11 * MIN] * 4,  # old ones do not count
        last_digest_at=None if last_digest is None else now - last_digest * MIN,
        now=now,
        limit=5,
        per=timedelta(minutes=10),
    )
    assert (len(decision.send), len(decision.digest), len(decision.defer)) == (send, digest, defer)
