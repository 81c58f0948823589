"""The estate and the work-order history the API benchmark (bench_api.py) serves: site files with 2,000 devices,
20,000 work orders of every status, age, priority and site, their SLA clocks and timelines, and each device's comm
status.

The rows are what the code writes (rules.store.open_or_recur, facmon.workorders.workflow.transition): clocks from the
SLA profiles' deadlines, met when a status reaching their milestone was recorded, the running ones cancelled with the
work order, and the earliest running deadline as the work order's `next_due_at`; one `opened` timeline entry and one
`transition` entry per status. They go in by bulk INSERT, because
20,000 openings and some 30,000 transitions one transaction each would take minutes; `check` reads them back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from facmon.workorders.sla import SlaProfile, load_sla_profiles
from facmon.workorders.tables import (
    TERMINAL_STATUSES,
    Milestone,
    Priority,
    WorkOrder,
    WorkOrderClock,
    WorkOrderEvent,
    WorkOrderStatus,
)
from facmon.workorders.transitions import milestones_reached
from rules.tables import DeviceStatus

SITES = 20
BUILDINGS = 5
# Per building: 4 elevators, a fire panel, 3 gates and 12 cameras (2,000 devices over 20 sites).
LAYOUT = (
    ("elevator", "elev-gb-a", 4),
    ("fire_panel", "fire-gb-a", 1),
    ("gate", "barrier-a", 3),
    ("camera", "camera-a", 12),
)
WORK_ORDERS = 20_000
NOW = datetime.now(UTC).replace(microsecond=0)

# (fault code, SLA profile, priority) of the work orders each kind of device gets, in proportion.
FAULTS: dict[str, list[tuple[str, str, Priority]]] = {
    "elevator": [
        ("entrapment", "elevator.entrapment", Priority.EMERGENCY),
        ("2", "elevator.fault", Priority.URGENT),
        ("7", "elevator.fault", Priority.URGENT),
        ("comm_lost", "comm_lost", Priority.URGENT),
    ],
    "fire_panel": [("battery_fault", "fire.panel", Priority.URGENT), ("fault", "fire.point", Priority.URGENT)],
    "gate": [("motor_fault", "gate.fault", Priority.URGENT), ("comm_lost", "comm_lost", Priority.URGENT)],
    "camera": [("video_loss", "camera.fault", Priority.URGENT), ("comm_lost", "comm_lost", Priority.URGENT)],
}


@dataclass
class Estate:
    site_files: list[Path]
    # (site, building, device, kind) of every device; technicians per site
    devices: list[tuple[str, str, str, str]] = field(default_factory=list)
    technicians: dict[str, list[str]] = field(default_factory=dict)


def write_sites(folder: Path) -> Estate:
    """The site files: SITES sites of BUILDINGS buildings laid out as LAYOUT, two technicians each."""
    estate = Estate(site_files=[])
    port = 20000
    for s in range(SITES):
        site_id = f"estate-{s + 1:02d}"
        technicians = [f"{site_id}-tech-{n}" for n in (1, 2)]
        estate.technicians[site_id] = technicians
        buildings = []
        for b in range(BUILDINGS):
            devices: list[dict[str, Any]] = []
            for kind, model, count in LAYOUT:
                for n in range(count):
                    entry: dict[str, Any] = {"id": f"b{b + 1}-{kind}-{n + 1}", "kind": kind, "model": model}
                    if kind in ("elevator", "fire_panel"):
                        port += 1
                        entry["address"] = {"host": "127.0.0.1", "port": port, "unit": 1}
                    devices.append(entry)
                    estate.devices.append((site_id, f"b{b + 1}", entry["id"], kind))
            buildings.append({"id": f"b{b + 1}", "devices": devices})
        site = {
            "site": {"id": site_id, "name": f"Estate {s + 1}", "timezone": "Asia/Shanghai"},
            "buildings": buildings,
            "technicians": [
                {"id": t, "name": t, "phone": "+86 138 0000 0000", "disciplines": ["elevator", "fire", "security"]}
                for t in technicians
            ],
        }
        path = folder / f"{site_id}.yaml"
        path.write_text(yaml.safe_dump(site, sort_keys=False))
        estate.site_files.append(path)
    return estate


def _status(rng: random.Random, age: timedelta) -> WorkOrderStatus:
    """Recent work orders are still being worked on; old ones are closed (a few cancelled, a few left resolved)."""
    s = WorkOrderStatus
    if age < timedelta(days=1):
        return rng.choices([s.OPEN, s.ACKNOWLEDGED, s.ON_SITE, s.RESOLVED], [50, 20, 15, 15])[0]
    if age < timedelta(days=30):
        statuses = [s.OPEN, s.ACKNOWLEDGED, s.ON_SITE, s.RESOLVED, s.CLOSED, s.CANCELLED]
        return rng.choices(statuses, [3, 2, 2, 30, 58, 5])[0]
    return rng.choices([s.RESOLVED, s.CLOSED, s.CANCELLED], [2, 93, 5])[0]


_PATH = {
    WorkOrderStatus.OPEN: (),
    WorkOrderStatus.ACKNOWLEDGED: (WorkOrderStatus.ACKNOWLEDGED,),
    WorkOrderStatus.ON_SITE: (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.ON_SITE),
    WorkOrderStatus.RESOLVED: (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.ON_SITE, WorkOrderStatus.RESOLVED),
    WorkOrderStatus.CLOSED: (
        WorkOrderStatus.ACKNOWLEDGED,
        WorkOrderStatus.ON_SITE,
        WorkOrderStatus.RESOLVED,
        WorkOrderStatus.CLOSED,
    ),
    WorkOrderStatus.CANCELLED: (WorkOrderStatus.CANCELLED,),
}


@dataclass
class _Rows:
    work_orders: list[dict[str, Any]] = field(default_factory=list)
    clocks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _work_order(rows: _Rows, wo_id: int, device: tuple[str, str, str, str], rng: random.Random, **how: Any) -> None:
    """One work order as it stands after the transitions of its status, with its clocks and timeline."""
    (site, building, device_id, kind), profile, status = device, how["profile"], how["status"]
    fault, priority, detected, technicians = how["fault"], how["priority"], how["detected"], how["technicians"]
    deadlines = profile.deadlines(detected)
    main = next(d for d in deadlines if d.name == profile.main_clock)
    steps = _PATH[status]
    # Each status a while after the one before (some late, so some clocks are breached).
    times, at = [], detected
    for _ in steps:
        at = min(NOW, at + timedelta(minutes=rng.uniform(1, 90)))
        times.append(at)
    stamps = {f"{step.value}_at": t for step, t in zip(steps, times, strict=True)}
    assignee = None if status is WorkOrderStatus.OPEN and rng.random() < 0.5 else rng.choice(technicians)
    rows.work_orders.append(
        {
            "id": wo_id, "site": site, "building": building, "device": device_id, "kind": kind, "fault": fault,
            "title": f"{kind} {device_id}: {fault}", "priority": priority.value, "category": "repair",
            "status": status.value, "detected_at": detected, "due_at": main.due_at, "occurrences": 1,
            "last_occurrence_at": detected, "fault_cleared_at": None, "created_at": detected,
            "updated_at": times[-1] if times else detected, "previous_id": None, "sla_profile": profile.id,
            "assignee": assignee, "acknowledged_at": None, "on_site_at": None, "resolved_at": None,
            "closed_at": None, "cancelled_at": None,
        } | stamps
    )  # fmt: skip
    met: dict[Milestone, datetime] = {}
    for step, t in zip(steps, times, strict=True):
        for milestone in milestones_reached((step,)):
            met.setdefault(milestone, t)
    running = []
    for d in deadlines:
        met_at = met.get(d.milestone)
        cancelled = times[-1] if status is WorkOrderStatus.CANCELLED and met_at is None else None
        if met_at is None and cancelled is None:
            running.append(d.due_at)
        rows.clocks.append(
            {"work_order_id": wo_id, "name": d.name, "milestone": d.milestone.value, "due_at": d.due_at,
             "met_at": met_at, "cancelled_at": cancelled, "breached_at": None, "breach_withdrawn_at": None}
        )  # fmt: skip
    rows.work_orders[-1]["next_due_at"] = min(running, default=None)  # facmon.workorders.next_due
    entries = [("opened", WorkOrderStatus.OPEN, detected, "rules", "rules")]
    entries += [("transition", step, t, assignee or "engineer", "api") for step, t in zip(steps, times, strict=True)]
    for kind_, step, t, actor, source in entries:
        rows.events.append(
            {"work_order_id": wo_id, "at": t, "type": kind_, "detail": {}, "status": step.value, "actor": actor,
             "source": source, "note": None, "exported_at": t}
        )  # fmt: skip


def _rows(estate: Estate, profiles: dict[str, SlaProfile], seed: int) -> _Rows:
    rng = random.Random(seed)
    rows = _Rows()
    open_faults: set[tuple[str, str, str]] = set()
    for wo_id in range(1, WORK_ORDERS + 1):
        device = rng.choice(estate.devices)
        fault, profile_id, priority = rng.choice(FAULTS[device[3]])
        # Ages over two years, most of them recent: a centre's history grows as estates join.
        age = (
            timedelta(days=min(730.0, rng.expovariate(1 / 120)))
            if rng.random() < 0.96
            else timedelta(hours=rng.uniform(0, 24))
        )
        status = _status(rng, age)
        if status not in TERMINAL_STATUSES:
            key = (device[0], device[2], fault)
            if key in open_faults:  # one open work order per device and fault (uq_work_orders_open_fault)
                status = WorkOrderStatus.CLOSED
            open_faults.add(key)
        detected = NOW - age
        _work_order(
            rows, wo_id, device, rng, profile=profiles[profile_id], status=status, fault=fault, priority=priority,
            detected=detected, technicians=estate.technicians[device[0]],
        )  # fmt: skip
    return rows


def seed(engine: Engine, estate: Estate, seed: int = 1) -> dict[str, int]:
    """Write the work orders, clocks, timelines and device statuses; the counts per status."""
    rows = _rows(estate, load_sla_profiles(), seed)
    rng = random.Random(seed)
    statuses = [
        {"site": s, "device": d, "comm": "lost" if rng.random() < 0.02 else "ok", "last_event_at": NOW,
         "last_event_type": "comm_restored", "comm_since": NOW - timedelta(days=3), "service_mode": None,
         "service_mode_at": None}
        for s, _, d, _ in estate.devices
    ]  # fmt: skip
    with Session(engine) as session:
        for table, values in (
            (WorkOrder, rows.work_orders),
            (WorkOrderClock, rows.clocks),
            (WorkOrderEvent, rows.events),
            (DeviceStatus, statuses),
        ):
            for start in range(0, len(values), 5000):
                session.execute(insert(table), values[start : start + 5000])
        session.commit()
    counts: dict[str, int] = {}
    for row in rows.work_orders:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts
