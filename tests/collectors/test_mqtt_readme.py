"""A third-party MQTT tool (Debian's mosquitto_pub) plays each device by the commands in its driver's README.

Every `mosquitto_pub` line of the README runs against a real Mosquitto with the collector listening: lines marked
`# rejected: <reason>` must be dead-lettered for that reason, every other line must decode. So the README cannot
drift from the driver file.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import yaml

from collectors.registry import MQTT_DRIVERS
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter
from tests.collectors.mqtt_support import Recorder, collecting, make_collector, mqtt_device
from tests.simulators.support import assert_no_leaked_tasks, wait_until
from tests.support import tool

MOSQUITTO_PUB = tool("mosquitto_pub", "mosquitto-clients")


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


def _commands(readme: str) -> list[tuple[list[str], str | None]]:
    """(argv, expected rejection reason or None) for each mosquitto_pub line of the README."""
    out = []
    for line in readme.splitlines():
        if not line.startswith("mosquitto_pub "):
            continue
        command, _, comment = line.partition("  # ")
        reason = comment.removeprefix("rejected: ").strip() if comment.startswith("rejected: ") else None
        out.append((shlex.split(command), reason))
    return out


@pytest.mark.parametrize("model", sorted(MQTT_DRIVERS))
async def test_the_readme_commands_play_the_device(model: str, mosquitto: Mosquitto, topic_prefix: str) -> None:
    readme = (MQTT_DRIVERS[model].parent / "README.md").read_text(encoding="utf-8")
    entry = re.search(r"`(\{id: [^`]*\})`", readme)
    assert entry, "the README shows the site file entry its commands are for"
    device = yaml.safe_load(entry.group(1))
    assert device["model"] == model
    commands = _commands(readme)
    assert sum(r is None for _, r in commands) >= 3
    assert sum(r is not None for _, r in commands) >= 3

    rec, metrics = Recorder(), Counters()
    collector = make_collector(
        mosquitto.port, topic_prefix, [mqtt_device(device["id"], model, device["vendor_id"])], rec, metrics=metrics
    )
    rejections: Counter[str] = Counter()
    async with collecting(collector):
        for argv, reason in commands:
            before = len(rec.out)
            # The README's broker is localhost:1883 and its topics are the vendor's; here: our broker and prefix.
            args = [a.replace("1883", str(mosquitto.port)) for a in argv[1:]]
            topic = args.index("-t") + 1
            args[topic] = f"{topic_prefix}/{args[topic]}"
            proc = await asyncio.create_subprocess_exec(MOSQUITTO_PUB, *args, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 10)
            assert proc.returncode == 0, err.decode()
            shown = " ".join(argv)
            await wait_until(lambda n=before: len(rec.out) > n, what=f"an outcome of: {shown}")
            new = rec.out[before:]
            rejected = [m for m in new if isinstance(m, DeadLetter)]
            if reason is None:
                assert not rejected, f"{shown}: {rejected}"
            else:
                assert len(rejected) == len(new) == 1, f"{shown}: {new}"
                rejections[reason] += 1
                assert metrics.get("mqtt_rejected", device=device["id"], reason=reason) == rejections[reason], shown
    assert len(rec.rejected()) == sum(r is not None for _, r in commands)
