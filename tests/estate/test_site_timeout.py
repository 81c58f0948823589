"""A Modbus device's response timeout in the site file: checked by check-config, given to its poller."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.modbus.poller import ModbusPoller
from collectors.mqtt.collector import BrokerSettings
from facmon.estate.site import SiteFileError, load_site
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from gateway.families import Wiring, site_collectors

SITE = """\
site: {id: s1}
buildings:
  - id: b1
    devices:
      - {id: e1, kind: elevator, model: elev-gb-a, address: {host: 10.0.1.11}, timeout_s: 2.5}
      - {id: e2, kind: elevator, model: elev-gb-a, address: {host: 10.0.1.12}}
      - {id: fp1, kind: fire_panel, model: fire-gb-a, address: {host: 10.0.1.13}, timeout_s: 0.3}
"""

WRONG = """\
site: {id: s1}
buildings:
  - id: b1
    devices:
      - {id: e1, kind: elevator, model: elev-gb-a, address: {host: 10.0.1.11}, timeout_s: 0}
      - {id: e2, kind: elevator, model: elev-gb-a, address: {host: 10.0.1.12}, timeout_s: 61}
      - {id: c1, kind: camera, model: camera-a, timeout_s: 1}
"""


def test_each_modbus_device_is_polled_with_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    site = load_site(path)

    async def nowhere(_: object) -> None:
        pass

    wiring = Wiring(nowhere, nowhere, FakeClock(), Counters(), BrokerSettings("127.0.0.1", 1883))
    timeouts = {c.name: c.timing.timeout_s for c in site_collectors(site, wiring) if isinstance(c, ModbusPoller)}
    assert timeouts == {"poll-e1": 2.5, "poll-e2": 1.0, "poll-fp1": 0.3}


def test_check_config_names_a_timeout_out_of_range_or_on_an_mqtt_device(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(WRONG)
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].endswith("(e1): timeout_s: Input should be greater than 0")
    assert problems[1].endswith("(e2): timeout_s: Input should be less than or equal to 60")
    assert problems[2].endswith("(c1): timeout_s: only for devices read over Modbus TCP (elevator, fire panel)")
