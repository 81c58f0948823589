"""The site file's checks across entries: ids used once, cards held by one person, rotas and maintenance windows
naming what the site has, devices naming models there are drivers for (collectors.registry).

They look at the entries that are valid on their own, each with its place in the file (`SiteEntries`), so a site
file loader can run them even when other entries are wrong, and report every problem in one go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collectors.registry import FIRE_PANEL_DRIVERS, MODBUS_DRIVERS, MQTT_DRIVERS, fire_panel_driver, mqtt_driver
from facmon.estate.fire_points import points_beyond
from facmon.estate.rota import Contact, Override, Rotation, check_on_call, overlapping
from facmon.kernel.datafile import Problem
from facmon.kernel.model import MODBUS_KINDS, MQTT_KINDS, DeviceKind
from facmon.kernel.yaml_lines import Loc, dotted

if TYPE_CHECKING:
    from facmon.estate.entries import Device, Technician
    from facmon.estate.maintenance import Maintenance
    from facmon.kernel.model import Discipline


@dataclass
class SiteEntries:
    """The entries of a site that are valid on their own, each with its place; and the ids the file gives to
    buildings, devices and technicians whether their entries are valid or not, so that naming an entry that is wrong
    itself (and reported on its own) is not reported again as naming something unknown."""

    devices: list[tuple[Loc, Device]] = field(default_factory=list)
    technicians: list[tuple[Loc, Technician]] = field(default_factory=list)
    contacts: list[tuple[Loc, str | Contact]] = field(default_factory=list)  # supervisor, manager
    rotations: list[tuple[Loc, Discipline, Rotation]] = field(default_factory=list)
    overrides: list[tuple[Loc, Override]] = field(default_factory=list)
    maintenance: list[tuple[Loc, Maintenance]] = field(default_factory=list)
    building_ids: set[str] = field(default_factory=set)
    building_of: dict[str, str] = field(default_factory=dict)  # device id -> building id
    technician_ids: set[str] = field(default_factory=set)


def site_problems(entries: SiteEntries) -> list[Problem]:
    """Every problem across the entries (and within each device), each with its place."""
    problems = [((*loc, *where), what) for loc, device in entries.devices for where, what in device.problems()]
    problems += _unique_devices(entries.devices)
    problems += _technicians(entries.technicians)
    problems += [
        (loc, f"{ref!r} is not one of the site's technicians (or give name and phone)")
        for loc, ref in entries.contacts
        if isinstance(ref, str) and ref not in entries.technician_ids
    ]
    disciplines_of: dict[str, frozenset[Discipline] | None] = dict.fromkeys(entries.technician_ids)
    disciplines_of |= {t.id: t.disciplines for _, t in entries.technicians}
    problems += check_on_call(entries.rotations, entries.overrides, disciplines_of)
    problems += overlapping(entries.overrides)
    problems += _maintenance(entries)
    return problems


def _unique_devices(devices: list[tuple[Loc, Device]]) -> list[Problem]:
    first: dict[str, Loc] = {}
    problems: list[Problem] = []
    for loc, device in devices:
        if device.id in first:
            problems.append(((*loc, "id"), f"device id {device.id!r} is already used by {dotted(first[device.id])}"))
        first.setdefault(device.id, loc)
    return problems


def _technicians(technicians: list[tuple[Loc, Technician]]) -> list[Problem]:
    first: dict[str, Loc] = {}
    holders: dict[str, str] = {}
    problems: list[Problem] = []
    for loc, technician in technicians:
        if technician.id in first:
            problems.append(
                ((*loc, "id"), f"technician id {technician.id!r} is already used by {dotted(first[technician.id])}")
            )
        first.setdefault(technician.id, loc)
        for n, card in enumerate(technician.cards):
            holder = holders.setdefault(card, technician.id)
            if holder == technician.id and technician.cards.index(card) < n:
                problems.append(((*loc, "cards", n), f"card {card!r} is listed twice for technician {holder}"))
            elif holder != technician.id:
                # A card read must prove one person on site, never either of two.
                problems.append(
                    (
                        (*loc, "cards", n),
                        f"card {card!r} is given to both technician {holder} and technician {technician.id}",
                    )
                )
    return problems


def _maintenance(entries: SiteEntries) -> list[Problem]:
    problems: list[Problem] = []
    for loc, plan in entries.maintenance:
        if plan.building is not None and plan.building not in entries.building_ids:
            problems.append(((*loc, "building"), f"unknown building {plan.building!r}"))
        if plan.device is None:
            continue
        home = entries.building_of.get(plan.device)
        if home is None:
            problems.append(((*loc, "device"), f"unknown device {plan.device!r}"))
        elif plan.building in entries.building_ids and plan.building != home:
            problems.append(((*loc, "device"), f"device {plan.device!r} is not in building {plan.building!r}"))
    return problems


def check_models(devices: Iterable[tuple[Loc, Device]]) -> list[Problem]:
    """Every device (with its place in the site file) whose model has no driver, or whose MQTT settings cannot work."""
    problems: list[Problem] = []
    vendor_ids: dict[tuple[str, str], str] = {}
    for loc, device in devices:
        fire = device.kind is DeviceKind.FIRE_PANEL
        drivers = FIRE_PANEL_DRIVERS if fire else MODBUS_DRIVERS
        if device.kind in MODBUS_KINDS and device.model not in drivers:
            what = "fire panel" if fire else "Modbus"
            problems.append(((*loc, "model"), f"no {what} driver for model {device.model!r}; known: {sorted(drivers)}"))
        elif fire and device.points:
            problems += [((*loc, "points"), what) for what in _points_on_panel(device)]
        if device.kind in MQTT_KINDS:
            problems += [((*loc, *where), what) for where, what in _check_mqtt(device, vendor_ids)]
    return problems


def _points_on_panel(device: Device) -> list[str]:
    """A fire panel's listed points that its model's point table does not have."""
    table = fire_panel_driver(device.model).point_table
    beyond = points_beyond(device.fire_points, table.loops, table.addresses)
    if not beyond:
        return []
    shown = ", ".join(beyond[:5]) + (f" and {len(beyond) - 5} more" if len(beyond) > 5 else "")
    return [f"{shown}: not on a {device.model} panel (loops 1..{table.loops}, addresses 1..{table.addresses})"]


def _check_mqtt(device: Device, vendor_ids: dict[tuple[str, str], str]) -> list[Problem]:
    """An MQTT device's driver fits its kind, its grace outlasts a heartbeat, its vendor id is its own."""
    if device.model not in MQTT_DRIVERS:
        return [(("model",), f"no MQTT driver for model {device.model!r}; known: {sorted(MQTT_DRIVERS)}")]
    driver = mqtt_driver(device.model)
    problems: list[Problem] = []
    if driver.kind is not device.kind:
        problems.append((("model",), f"{device.model} is a {driver.kind.value} driver, not a {device.kind.value}"))
    heartbeat_s = driver.heartbeat.interval_s
    if "comm_grace_s" in device.model_fields_set and device.comm_grace_s <= heartbeat_s:
        problems.append(
            (
                ("comm_grace_s",),
                f"{device.comm_grace_s:g} s is not longer than the {heartbeat_s:g} s heartbeat of {device.model}: "
                "the device would be reported lost between heartbeats",
            )
        )
    # Two devices on the same topics would each take the other's messages.
    owner = vendor_ids.setdefault((driver.topic, device.mqtt_id), device.id)
    if owner != device.id:
        where = ("vendor_id",) if device.vendor_id is not None else ("id",)
        problems.append((where, f"vendor id {device.mqtt_id!r} is already {owner}'s ({driver.topic})"))
    return problems
