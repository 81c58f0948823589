"""Which events the rules refuse: devices the site files do not have, or name otherwise (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind, Event, EventType
from rules.pipeline import refusal

SITE = Site.model_validate(
    {
        "site": {"id": "s"},
        "buildings": [
            {
                "id": "b1",
                "devices": [{"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}}],
            }
        ],
    }
)
KNOWN = SITE.ref("e1")


def _event(**ref: object) -> Event:
    return Event(
        ref=KNOWN.model_copy(update=ref), ts=datetime(2026, 3, 1, tzinfo=UTC), type=EventType.FAULT_RAISED, code="2"
    )


def test_a_device_of_the_site_files_is_not_refused() -> None:
    assert refusal({"s": SITE}, _event()) is None


def test_unknown_sites_and_devices_are_refused() -> None:
    assert refusal({"s": SITE}, _event(site="elsewhere")) == ("unknown_site", "site 'elsewhere' is in no site file")
    code, reason = refusal({"s": SITE}, _event(device="e9")) or ("", "")
    assert (code, "e9" in reason) == ("unknown_device", True)


def test_a_device_named_with_another_building_kind_or_model_is_refused() -> None:
    for change in ({"building": "b2"}, {"kind": DeviceKind.GATE}, {"model": "elev-st-b"}):
        code, _ = refusal({"s": SITE}, _event(**change)) or ("", "")
        assert code == "device_mismatch", change
