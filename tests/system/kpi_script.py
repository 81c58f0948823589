"""The scripted period of the KPI recomputation: what happens at estate A (and B), driven the way the site drives
facmon, each action logged with its time for the recomputation (tests/system/kpi_recompute.py).

Commands go to the simulators over MQTT (faults, an entrapment), card reads are the barrier vendor's own messages
(`vendor/barrier/<id>/card`), people act through the API as the engineer and the technicians. Two things the
vendor protocol cannot do are published on the backbone as a gateway replaying its outbox does, each event with its
own time: the card read that lands exactly on a deadline (a barrier's payload carries no time: the gateway stamps it
when it arrives), and the car alarm of estate B at 23:59:30 site time on the last day of the previous month.

Clocks (tests/system/kpi_estate.SHORT_SLA): on site 20 s, statutory 30 s, repair 45 s, an entrapment's
acknowledgement 10 s. Every card read of an elevator technician moves every open elevator work order of the estate
to on site, so the work orders come in phases, each card read finding only the ones meant for it:

| s   | what                                                                                  | work order          |
|-----|---------------------------------------------------------------------------------------|---------------------|
| 0   | e1 door close fault                                                                   | W1                  |
| 2   | wang (fire) badges at ga: unqualified, no effect                                      |                     |
| 3   | li badges at estate B's gate gb: a foreign site, no effect; fire point absent         | WF (never attended) |
| 5   | li badges at ga: W1 on site in time; li resolves it, the engineer records a follow-up |                     |
| 6   | e2 door open fault, e3 entrapment, e4 car alarm                                       | W2, W3, W4          |
| 9   | the engineer cancels W4, a false alarm, before its first deadline                     |                     |
| 31  | zhao badges at ga: W2 late, W3 late on the contract clock, in time on the statutory   |                     |
| 33  | e1 door open fault; zhao resolves W2 and W3                                           | W5                  |
| 45  | the engineer asks GET /kpis of the run so far: W5's, WF's clocks still running        |                     |
| 53  | (W5's deadline passes; the breach is recorded)                                        |                     |
| 55  | e2, e3, e4 door faults                                                                | W6, W7, W8          |
| 56  | li's card read at W5's deadline, replayed: on site exactly at the deadline            |                     |
| 59  | e4's fault clears before anyone came: W8 stays open (only a person resolves it)      |                     |
| 78  | the engineer cancels W6, after its on-site deadline passed                            |                     |
| 102 | end: W7 never attended (on site and repair missed)                                    |                     |
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import httpx

from simulators.site import command_topic
from tests.support import wait_for
from tests.system.kpi_estate import KpiEstate

SCRIPT_END_S = 102.0


@dataclass(frozen=True)
class Action:
    at: datetime
    what: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"at": self.at.isoformat()}


@dataclass
class Script:
    estate: KpiEstate
    mqtt: aiomqtt.Client
    people: dict[str, httpx.AsyncClient]
    # A point of fp1 that is there and intact at the start; it goes absent.
    fire_point: str
    log: list[Action] = field(default_factory=list)
    # GET /kpis of the run so far, asked half way: work orders still inside their clocks, and a period ending later.
    midway: dict[str, Any] = field(default_factory=dict)
    work_orders: dict[str, int] = field(default_factory=dict)
    _t0: float = 0.0

    def note(self, what: str, at: datetime | None = None, **detail: Any) -> Action:
        action = Action(at or datetime.now(UTC), what, detail)
        self.log.append(action)
        return action

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([a.as_json() for a in self.log], indent=1))

    async def at(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self._t0 + seconds - time.monotonic()))

    # --- what the site does ------------------------------------------------------------------------------------------

    async def command(self, device: str, **action: Any) -> None:
        await self.mqtt.publish(command_topic(self.estate.site_a, device), json.dumps(action), qos=1)
        self.note("simulator", device=device, **action)

    async def badge(self, gate_vendor_id: str, card: str, site: str) -> None:
        payload = {"card": card, "granted": True, "direction": "in"}
        # Noted as sent before the publish: the gateway may receive and stamp it before the broker's PUBACK is back.
        sent = datetime.now(UTC)
        await self.mqtt.publish(f"vendor/barrier/{gate_vendor_id}/card", json.dumps(payload), qos=1)
        self.note("card_read", at=sent, site=site, gate=gate_vendor_id, card=card)

    async def replay(self, site: str, building: str, device: str, kind: str, model: str, **event: Any) -> None:
        """An event on the backbone with its own time, as a gateway replaying its outbox sends it."""
        ref = {"site": site, "building": building, "device": device, "kind": kind, "model": model, "role": None}
        message = {"ref": ref, "id": uuid.uuid4().hex, "message": "", **event}
        topic = f"facmon/v1/{site}/{kind}/{device}/event"
        await self.mqtt.publish(topic, json.dumps(message), qos=1)
        self.note("replayed", site=site, device=device, **event)

    # --- what people do, through the API -----------------------------------------------------------------------------

    async def opened(self, label: str, device: str, fault: str, site: str | None = None) -> dict[str, Any]:
        """The work order of `device` and `fault` once the rules opened it, remembered as `label`."""
        api = self.people["eng"]

        async def found() -> dict[str, Any] | None:
            query = {"site": site or self.estate.site_a, "device": device, "limit": 50}
            items = (await api.get("/work-orders", params=query)).json()["items"]
            mine = [w for w in items if w["fault"] == fault and w["id"] not in self.work_orders.values()]
            return mine[0] if mine else None

        work_order = await wait_for(found, 20, f"the work order of {device} {fault}", every_s=0.2)
        self.work_orders[label] = work_order["id"]
        self.note("opened", label=label, id=work_order["id"], device=device, fault=fault)
        detail: dict[str, Any] = (await api.get(f"/work-orders/{work_order['id']}")).json()
        return detail

    async def move(self, who: str, label: str, to: str, note: str | None = None) -> None:
        body = {"to": to} | ({"note": note} if note else {})
        answer = await self.people[who].post(f"/work-orders/{self.work_orders[label]}/transitions", json=body)
        self.note("transition", who=who, label=label, to=to, note=note, status=answer.status_code)

    async def follow_up(self, label: str) -> None:
        body = {"outcome": "satisfied", "note": "resident called back"}
        answer = await self.people["eng"].post(f"/work-orders/{self.work_orders[label]}/follow-ups", json=body)
        self.note("follow_up", label=label, status=answer.status_code)

    async def _ask_midway(self) -> None:
        site = self.estate.sites[0]
        tz = ZoneInfo(site["site"]["timezone"])
        began = self.log[0].at
        bounds = {
            "from": began.astimezone(tz).isoformat(),
            "to": (began + timedelta(hours=2)).astimezone(tz).isoformat(),
        }
        answer = await self.people["eng"].get("/kpis", params={"site": self.estate.site_a, **bounds})
        assert answer.status_code == 200, answer.text
        self.midway = answer.json()
        self.note("kpis asked", generated_at=self.midway["generated_at"])

    # --- the period --------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._t0 = time.monotonic()
        self.note("start")
        await self._month_bound()
        await self._in_time()
        await self._late()
        await self._at_the_deadline()
        await self.at(SCRIPT_END_S)
        self.note("end")

    async def _month_bound(self) -> None:
        """Estate B's car alarm at 23:59:30 site time on the last day of last month (its deadlines in this month)."""
        tz = ZoneInfo(self.estate.sites[1]["site"]["timezone"])
        first = datetime.now(tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        at = (first - timedelta(seconds=30)).astimezone(UTC)
        raised = {"type": "fault_raised", "code": "15", "ts": at.isoformat()}
        await self.replay(self.estate.site_b, "bb1", "e9", "elevator", "elev-gb-a", **raised)
        await self.opened("WB", "e9", "15", site=self.estate.site_b)

    async def _in_time(self) -> None:
        a = self.estate.prefix
        await self.command("e1", action="fault", code=2)
        await self.opened("W1", "e1", "2")
        await self.at(2)
        await self.badge(f"{a}-ga", "F2001", self.estate.site_a)  # wang: fire only
        await self.at(3)
        await self.badge(f"{a}-gb", "A1001", self.estate.site_b)  # li, at the other estate
        await self.command("fp1", action="point", point=self.fire_point, state="absent")
        await self.at(5)
        await self.badge(f"{a}-ga", "A1001", self.estate.site_a)  # li
        await self.at(6)
        await self.command("e2", action="fault", code=3)
        await self.command("e3", action="entrapment")
        await self.command("e4", action="fault", code=15)
        await self.move("li", "W1", "resolved", "door operator adjusted")
        await self.command("e1", action="clear")
        await self.follow_up("W1")
        await self.opened("WF", "fp1", f"{self.fire_point}/absent")

    async def _late(self) -> None:
        for label, device, fault in (("W2", "e2", "3"), ("W3", "e3", "entrapment"), ("W4", "e4", "15")):
            await self.opened(label, device, fault)
        await self.at(9)
        await self.move("eng", "W4", "cancelled", "false alarm: the button was pressed by a child")
        await self.command("e4", action="clear")
        await self.at(31)
        await self.badge(f"{self.estate.prefix}-ga", "A1002", self.estate.site_a)  # zhao
        await self.at(33)
        await self.command("e1", action="fault", code=3)
        await self.move("zhao", "W2", "resolved", "door sill cleaned")
        await self.command("e2", action="clear")
        await self.command("e3", action="release")
        await self.move("zhao", "W3", "resolved", "passenger released, car checked")

    async def _at_the_deadline(self) -> None:
        w5 = await self.opened("W5", "e1", "3")
        due = datetime.fromisoformat(w5["due_at"])  # the main clock's: on site
        await self.at(45)
        await self._ask_midway()
        await self.at(55)
        await self.command("e2", action="fault", code=2)
        await self.command("e3", action="fault", code=3)
        await self.command("e4", action="fault", code=2)
        for label, device, fault in (("W6", "e2", "2"), ("W7", "e3", "3"), ("W8", "e4", "2")):
            await self.opened(label, device, fault)
        await self.at(56)
        card = {
            "type": "card_read",
            "ts": due.isoformat(),
            "data": {"card": "A1001", "granted": True, "direction": "in"},
        }
        await self.replay(self.estate.site_a, "b1", "ga", "gate", "barrier-a", **card)
        await self.at(58)
        await self.move("li", "W5", "resolved", "door operator replaced")
        await self.command("e1", action="clear")
        await self.at(59)
        await self.command("e4", action="clear")
        await self.at(78)
        await self.move("eng", "W6", "cancelled", "duplicate: the same door fault is worked on under another order")
