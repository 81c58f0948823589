"""What a fault case counts at the end, from the real stores: numbered messages in InfluxDB, work orders in the SQLite
database, alert deliveries at the webhook receiver (by Idempotency-Key); and the figures each case prints.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.faults.estate import Estate
from tests.faults.load import CAR_ALARM, Load


def stored_numbers(estate: Estate) -> set[int]:
    """The sequence numbers of the load's heartbeats that InfluxDB holds (an empty set while it is down)."""
    query = f"SELECT cycles FROM gate WHERE site = '{estate.site_id}' AND cycles > 0"
    try:
        answer = httpx.get(
            f"{estate.influxd.url}/query", params={"db": estate.influx_db, "q": query}, timeout=10
        ).json()
    except (httpx.HTTPError, ValueError):
        return set()
    series = answer["results"][0].get("series", [])
    return {int(row[1]) for s in series for row in s["values"]}


def warm_ups_heard(estate: Estate) -> dict[str, int]:
    """How many warm-up heartbeats (numbered 0) InfluxDB holds, by barrier."""
    query = f"SELECT count(cycles) FROM gate WHERE site = '{estate.site_id}' AND cycles = 0 GROUP BY device"
    answer = httpx.get(f"{estate.influxd.url}/query", params={"db": estate.influx_db, "q": query}, timeout=10)
    series = answer.json()["results"][0].get("series", [])
    return {s["tags"]["device"]: int(s["values"][0][1]) for s in series}


def car_alarm_orders(estate: Estate) -> dict[str, list[int]]:
    """Work-order ids of the car alarm, by elevator."""
    if not estate.database.exists():
        return {}
    with sqlite3.connect(f"file:{estate.database}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT device, id FROM work_orders WHERE fault = ? ORDER BY id", (CAR_ALARM,)).fetchall()
    orders: dict[str, list[int]] = {}
    for device, wo in rows:
        orders.setdefault(device, []).append(wo)
    return orders


def queued_webhooks(estate: Estate) -> dict[int, list[str]]:
    """The webhook deliveries the notifier queued, by work order: their keys (the Idempotency-Key they carry)."""
    with sqlite3.connect(f"file:{estate.database}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT work_order_id, key FROM deliveries WHERE channel = 'webhook'").fetchall()
    queued: dict[int, list[str]] = {}
    for wo, key in rows:
        queued.setdefault(wo, []).append(key)
    return queued


async def settle(progress: object, done: object, *, stall_s: float = 10.0, limit_s: float = 90.0) -> float:
    """Poll (real processes) until `done()` is true, or until `progress()` stops changing for `stall_s`, at most
    `limit_s`; the seconds it took. `progress` and `done` are blocking functions, run in a thread."""
    assert callable(progress)
    assert callable(done)
    started = last_change = time.monotonic()
    last = None
    while not await asyncio.to_thread(done):
        now = time.monotonic()
        current = await asyncio.to_thread(progress)
        if current != last:
            last, last_change = current, now
        if now - last_change > stall_s or now - started > limit_s:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


@dataclass
class Figures:
    case: str
    sent: int = 0
    stored: int = 0
    lost: list[int] = field(default_factory=list)
    faults: int = 0
    orders: dict[str, list[int]] = field(default_factory=dict)
    alerts_queued: int = 0
    alerts_missing: list[str] = field(default_factory=list)
    deliveries: int = 0
    duplicates: int = 0
    recover_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        lost = f"{len(self.lost)}" + (f" (e.g. {self.lost[:10]})" if self.lost else "")
        orders = sum(len(v) for v in self.orders.values())
        return (
            f"[fault case {self.case}] messages sent {self.sent}, stored {self.stored}, lost {lost}; "
            f"faults {self.faults}, work orders {orders}; alerts queued {self.alerts_queued}, "
            f"webhook requests {self.deliveries}, duplicates dropped by key {self.duplicates}, "
            f"not delivered {len(self.alerts_missing)}; recovered in {self.recover_s:.1f} s"
            + (f"; {'; '.join(self.notes)}" if self.notes else "")
        )


async def count(case: str, estate: Estate, load: Load, recovered_at: float) -> Figures:
    """Wait for the system to settle after the fault, then count everything; prints the figures."""

    def all_stored() -> bool:
        return load.sent <= stored_numbers(estate)

    await settle(lambda: len(stored_numbers(estate)), all_stored)
    stored = stored_numbers(estate)
    figures = Figures(case, sent=len(load.sent), stored=len(load.sent & stored), lost=sorted(load.sent - stored))
    figures.recover_s = time.monotonic() - recovered_at
    figures.faults = len(load.elevators)

    def all_alerted() -> bool:
        orders = car_alarm_orders(estate)
        queued = queued_webhooks(estate)
        received = set(estate.webhook.keys())
        alerted = all(any(k in received for k in queued.get(wo, [])) for ids in orders.values() for wo in ids)
        return len(orders) == len(load.elevators) and alerted and all(k in received for k in _flat(queued))

    await settle(lambda: (len(estate.webhook.keys()), len(car_alarm_orders(estate))), all_alerted)
    figures.orders = car_alarm_orders(estate)
    queued = queued_webhooks(estate)
    keys = estate.webhook.keys()
    figures.alerts_queued = len(_flat(queued))
    figures.alerts_missing = sorted(set(_flat(queued)) - set(keys))
    figures.deliveries = len(keys)
    figures.duplicates = sum(n - 1 for n in Counter(keys).values())
    if estate.supervised:
        figures.notes.append(f"exited and started again by the supervisor: {', '.join(estate.supervised)}")
    print("\n" + figures.line())
    return figures


def check(figures: Figures, estate: Estate, load: Load) -> None:
    """What every case asserts: nothing lost, one work order per fault, every alert delivered under a stable key."""
    assert not figures.lost, f"{len(figures.lost)} messages lost: {figures.line()}\n{estate.outputs()}"
    assert sorted(figures.orders) == load.elevators, (
        f"a fault without a work order: {figures.line()}\n{estate.outputs()}"
    )
    assert all(len(ids) == 1 for ids in figures.orders.values()), f"a fault with two work orders: {figures.line()}"
    queued = queued_webhooks(estate)
    for ids in figures.orders.values():
        assert queued.get(ids[0]), f"no webhook alert queued for work order {ids[0]}: {figures.line()}"
    assert not figures.alerts_missing, f"alerts never delivered {figures.alerts_missing}: {figures.line()}"
    # Every request carried a key, and it is the stored delivery's: a receiver can drop the duplicates by it.
    assert set(estate.webhook.keys()) <= set(_flat(queued)), figures.line()


def _flat(queued: dict[int, list[str]]) -> list[str]:
    return [k for keys in queued.values() for k in keys]
