"""Helpers shared by the rules tests (fixtures live in conftest.py; test modules import these, never conftest)."""

from __future__ import annotations

from collections.abc import Callable

from facmon.kernel.model import DeviceKind, DeviceRef, Event

# make_event("fault_raised", "2", device="e2"): an event at the fake clock's current time.
MakeEvent = Callable[..., Event]


def elevator(site: str = "s1", device: str = "e1", building: str = "b1") -> DeviceRef:
    return DeviceRef(site=site, building=building, device=device, kind=DeviceKind.ELEVATOR, model="elev-gb-a")


def head_revision() -> str:
    """The newest migration's revision id, so tests that upgrade to head need no edit when a migration is added."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from facmon.shell.migrations.schema import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
