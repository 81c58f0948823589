"""Who is told: the people a work order's escalation reaches, by role (the on-call technician, the supervisor, the
manager), as a `Resolver` the dispatcher asks; `SiteResolver` answers from the site files' rotas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from facmon.estate.site import Site
from facmon.notifier.base import Recipient
from facmon.notifier.policy import Role


@dataclass(frozen=True)
class Target:
    role: Role
    recipient: Recipient


class Resolver(Protocol):
    """Who to tell about a work order of `kind` at `site` at `at`: the on-call technician, supervisor, manager."""

    def __call__(self, site: str, kind: str, at: datetime) -> Sequence[Target]: ...


class SiteResolver:
    """Targets from the site files' rotas (facmon.estate.on_call)."""

    def __init__(self, sites: Sequence[Site]) -> None:
        self.sites = {s.id: s for s in sites}

    def __call__(self, site: str, kind: str, at: datetime) -> Sequence[Target]:
        from facmon.estate.on_call import on_call_for_work_order

        known = self.sites.get(site)
        if known is None:
            return ()
        try:
            chain = on_call_for_work_order(known, kind, at)
        except ValueError:
            return ()
        targets: list[Target] = []
        if chain.on_call is not None:
            t = chain.on_call.technician
            targets.append(Target(Role.ON_CALL, Recipient(t.id, t.name, t.phone, t.email)))
        for role, person in ((Role.SUPERVISOR, chain.supervisor), (Role.MANAGER, chain.manager)):
            if person is not None:
                # A contact's id is its phone number's digits: "+" is a wildcard in MQTT topics, where pushes go.
                ident = person.technician or "contact:" + "".join(ch for ch in person.phone if ch.isdigit())
                targets.append(Target(role, Recipient(ident, person.name, person.phone, person.email)))
        return targets
