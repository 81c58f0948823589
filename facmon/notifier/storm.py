"""Storm control, as pure functions: maintenance windows, grouping by building, a per-recipient rate limit.

A building-wide cause (a power cut, a broken network switch) opens many work orders within seconds. Three things
keep the on-call technician's phone usable then, and each applies to routine alerts only: an emergency (a trapped
passenger) always goes out on its own, at once.

- `silenced_by`: a maintenance window (a site, a building or a device, from/to) silences routine alerts; the
  dispatcher records the silenced step on the timeline so nobody wonders why no one was told.
- `group_alerts`: routine alerts of one building, kind and stage that fall due together, or within `window` of
  each other's detection, go out as one message.
- `rate_limit`: at most `limit` messages per recipient per `per`; the rest wait for one digest per `per`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from facmon.estate.site import Site


@dataclass(frozen=True)
class MaintenanceWindow:
    """Planned work: routine alerts of the site (or one building, or one device) are silenced from `start` to `end`."""

    site: str
    start: datetime
    end: datetime
    building: str | None = None
    device: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"maintenance window of {self.site} ends before it starts")

    def covers(self, site: str, building: str, device: str, at: datetime) -> bool:
        return (
            self.site == site
            and self.building in (None, building)
            and self.device in (None, device)
            and self.start <= at < self.end
        )


def maintenance_windows(site: Site) -> list[MaintenanceWindow]:
    """The site file's planned maintenance as windows in UTC (its times are the site's local time)."""
    windows = []
    for plan in site.maintenance:
        device_building = next((b.id for b, d in site.devices() if d.id == plan.device), None)
        windows.append(
            MaintenanceWindow(
                site=site.id,
                start=plan.start.replace(tzinfo=site.tz).astimezone(UTC),
                end=plan.end.replace(tzinfo=site.tz).astimezone(UTC),
                building=plan.building or device_building,
                device=plan.device,
                reason=plan.reason,
            )
        )
    return windows


def silenced_by(
    windows: Sequence[MaintenanceWindow], *, site: str, building: str, device: str, routine: bool, at: datetime
) -> MaintenanceWindow | None:
    """The window that silences this alert, or None. Emergencies (not `routine`) are never silenced."""
    if not routine:
        return None
    return next((w for w in windows if w.covers(site, building, device, at)), None)


@dataclass(frozen=True)
class Alert:
    """One step of one work order, due or about to be, before its recipient is known."""

    work_order_id: int
    site: str
    building: str
    kind: str
    stage: str
    detected_at: datetime
    routine: bool


def group_alerts(due: Sequence[Alert], upcoming: Sequence[Alert], window: timedelta) -> list[tuple[Alert, ...]]:
    """Messages to send now, each a tuple of alerts; the first alert of a group is the one it is keyed by.

    Routine alerts due now that share a building, kind and stage form one group, which also takes the `upcoming`
    ones (same building, kind and stage, detected within `window` after the group's latest): they were going to
    fall due moments later for the same cause. Emergencies are each a group of their own.
    """
    groups: list[tuple[Alert, ...]] = []
    routine: dict[tuple[str, str, str, str], list[Alert]] = {}
    for alert in sorted(due, key=lambda a: (a.detected_at, a.work_order_id)):
        if alert.routine:
            routine.setdefault((alert.site, alert.building, alert.kind, alert.stage), []).append(alert)
        else:
            groups.append((alert,))
    taken = {(a.work_order_id, a.stage) for a in due}
    for key, members in routine.items():
        horizon = max(a.detected_at for a in members) + window
        for alert in sorted(upcoming, key=lambda a: (a.detected_at, a.work_order_id)):
            if (
                alert.routine
                and (alert.site, alert.building, alert.kind, alert.stage) == key
                and alert.detected_at <= horizon
                and (alert.work_order_id, alert.stage) not in taken
            ):
                members.append(alert)
                taken.add((alert.work_order_id, alert.stage))
        groups.append(tuple(members))
    return groups


T = TypeVar("T")


@dataclass(frozen=True)
class StormLimits:
    """How far storm control goes: alerts detected within `group_window` go out together; at most `rate_limit`
    messages per recipient per `rate_period`, the rest in one digest."""

    group_window: timedelta = timedelta(minutes=1)
    rate_limit: int = 5
    rate_period: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class RateDecision(Generic[T]):
    send: list[T] = field(default_factory=list)
    # To go out now as one digest message.
    digest: list[T] = field(default_factory=list)
    # Held back: the recipient had their digest for this period already; due again at the next tick.
    defer: list[T] = field(default_factory=list)


def rate_limit(
    messages: Sequence[tuple[T, bool]],
    *,
    sent: Sequence[datetime],
    last_digest_at: datetime | None,
    now: datetime,
    limit: int,
    per: timedelta,
) -> RateDecision[T]:
    """Split one recipient's new messages ((message, routine) pairs) into send now, digest now and wait.

    `sent` are the times of the recipient's messages already sent (digests included). Emergencies always go and
    count against the limit; routine messages go while the recipient had fewer than `limit` in the last `per`,
    the rest into one digest, unless a digest went out within `per` already: then they wait for the next one.
    """
    decision: RateDecision[T] = RateDecision()
    count = sum(1 for t in sent if now - per < t <= now)
    digest_allowed = last_digest_at is None or last_digest_at <= now - per
    for message, routine in messages:
        if not routine or count < limit:
            decision.send.append(message)
            count += 1
        elif digest_allowed:
            decision.digest.append(message)
        else:
            decision.defer.append(message)
    return decision
