"""The README's shell examples, read from the README itself, run on a live demo, each checked against what the
README says it shows.

Every command of the `sh` blocks of the sections below is run, in order, in one bash (so `TOKEN`, `fc`, `mq` and `WO`
carry from one to the next, as in a reader's terminal), with only the demo's ports put in. Each command must match one
expectation here: a new example in the README without one fails the test, so the README cannot drift from what runs.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SECTIONS = ("## What the demo shows, and where", "## Reports", "## Playing a device with third-party tools")


def commands(readme: str) -> list[str]:
    """The commands of the `sh` blocks in SECTIONS, continuation lines joined, comments kept."""
    found: list[str] = []
    for title in SECTIONS:
        start = readme.index(f"\n{title}\n")
        end = readme.find("\n## ", start + len(title) + 2)
        section = readme[start : end if end != -1 else len(readme)]
        for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
            found += [c for c in re.split(r"(?<!\\)\n", block) if c.strip()]
    return found


def _json(text: str) -> object:
    return json.loads(text)


def _items(text: str) -> list[dict[str, object]]:
    body = json.loads(text)
    assert isinstance(body, dict), body
    items = body["items"]
    assert isinstance(items, list)
    return items


def _ok(_out: str) -> None:
    """Sets a variable or defines a function; its rc is checked, its use by the commands after it."""


def _work_orders(out: str) -> None:
    items = _items(out)
    assert items, "the demo lists work orders"
    assert all("next_deadline" in item for item in items)


def _fault_devices(out: str) -> None:
    devices = json.loads(out)["items"]
    assert devices, "the scenario's faults are open"
    assert {d["state"] for d in devices} == {"fault"}


def _metrics(out: str) -> None:
    assert "facmon_modbus_polls_total{" in out
    assert "# TYPE facmon_gateway_published_total counter" in out


def _backbone(out: str) -> None:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 20
    assert all(line.startswith("facmon/v1/sunrise-garden/") for line in lines), lines[:3]


def _last_elevator_values(out: str) -> None:
    series = json.loads(out)["results"][0]["series"]
    assert sorted(s["tags"]["device"] for s in series) == ["b1-e1", "b1-e2", "b1-e3", "b2-e1", "b2-e2", "b2-e3"]


def _status(expected: str) -> Callable[[str], None]:
    def check(out: str) -> None:
        assert json.loads(out)["status"] == expected, out

    return check


def _assigned(out: str) -> None:
    assert json.loads(out)["assignee"] == "li-ming", out


def _noted(out: str) -> None:
    notes = [e for e in json.loads(out)["timeline"] if e["type"] == "note"]
    assert notes[-1]["note"] == "parts ordered", out


def _follow_up(out: str) -> None:
    assert json.loads(out)["outcome"] == "satisfied", out


def _on_call(out: str) -> None:
    body = json.loads(out)
    assert body["on_call"]["technician"]["id"] in ("li-ming", "wang-fang"), out


def _work_order_on_call(out: str) -> None:
    body = json.loads(out)
    assert body["supervisor"]["name"] == "Zhao Lei", out


def _deliveries(out: str) -> None:
    assert isinstance(json.loads(out), list)


def _push(out: str) -> None:
    topic, payload = out.strip().split(" ", 1)
    assert topic.startswith("facmon/v1/sunrise-garden/push/"), out
    assert json.loads(payload)["ack_url"], out


def _fire_alarms(out: str) -> None:
    assert _items(out), "the demo's past has fire alarms"


def _outcome(out: str) -> None:
    assert json.loads(out)["alarm"]["outcome"] == "false_alarm", out


def _fire_check(out: str) -> None:
    assert json.loads(out)["result"] == "passed", out


def _kpis(out: str) -> None:
    body = json.loads(out)
    assert body["elevator_arrival_compliance"]["denominator"] > 0, out
    assert body["fire_equipment_intact_rate"]["available"], out
    assert body["elevator_availability"]["available"], out


def _visit(out: str) -> None:
    assert json.loads(out)["note"] == "half-monthly items", out


def _visits(out: str) -> None:
    visits = json.loads(out)
    assert len(visits) > 20, "the past year's visits and the one just entered"


def _kpi_csv(out: str) -> None:
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows, out
    text = out.lower()
    assert "unavailable" not in text, "the report finds the demo's InfluxDB by itself"
    # Last month is all in the demo's generated year, every device heard in every 5 minutes of it.
    assert "insufficient data" not in text, out


def _registers(out: str) -> None:
    assert len(re.findall(r"^\[\d+\]:", out, re.MULTILINE)) >= 22, out


@dataclass(frozen=True)
class Expectation:
    pattern: str
    check: Callable[[str], None]
    # Shell run first, unseen: waits for what a reader would wait for (a live work order to act on).
    before: str = ""


# The scenario's work orders are `open` only until someone acts on them; wait (up to 4 min) for one.
_AN_OPEN_WORK_ORDER = (
    "for _ in $(seq 240); do fc 'localhost:8080/api/v1/work-orders?status=open&kind=elevator&limit=1' | "
    "python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)[\"items\"] else 1)' && break; sleep 1; done"
)


EXPECTATIONS = (
    Expectation(r"^TOKEN=\$\(curl .*/auth/login", _ok),
    Expectation(r"^fc\(\) \{", _ok),
    Expectation(r"^mq\(\) \{", _ok),
    Expectation(r"^fc localhost:8080/api/v1/work-orders \|", _work_orders),
    Expectation(r"^fc 'localhost:8080/api/v1/devices\?state=fault'", _fault_devices),
    Expectation(r"^fc localhost:8080/api/v1/metrics", _metrics),
    Expectation(r"^mosquitto_sub -p 18830 \$\(mq console\) -t 'facmon/v1/#'", _backbone),
    Expectation(r"^curl -sG http://127\.0\.0\.1:18086/query", _last_elevator_values),
    Expectation(r"^WO=\$\(", _ok, before=_AN_OPEN_WORK_ORDER),
    Expectation(r"/work-orders/\$WO/transitions", _status("acknowledged")),
    Expectation(r"/work-orders/\$WO/assign", _assigned),
    Expectation(r"/work-orders/\$WO/notes", _noted),
    Expectation(r"^DONE=\$\(", _ok),
    Expectation(r"/work-orders/\$DONE/follow-ups", _follow_up),
    Expectation(r"/on-call\?site=sunrise-garden&discipline=elevator", _on_call),
    Expectation(r"/work-orders/\$WO/on-call", _work_order_on_call),
    Expectation(r"/work-orders/\$WO/deliveries", _deliveries),
    Expectation(r"^mosquitto_sub -p 18830 \$\(mq console\) -t 'facmon/v1/\+/push/#'", _push),
    Expectation(r"^fc 'localhost:8080/api/v1/fire-alarms\?site=sunrise-garden' ", _fire_alarms),
    Expectation(r"^ALARM=\$\(", _ok),
    Expectation(r"/fire-alarms/\$ALARM/outcome", _outcome),
    Expectation(r"-X POST localhost:8080/api/v1/fire-checks", _fire_check),
    Expectation(r"/api/v1/kpis\?site=sunrise-garden'", _kpis),
    Expectation(r"-X POST localhost:8080/api/v1/devices/sunrise-garden/b1-e1/maintenance-visits", _visit),
    Expectation(r"^fc localhost:8080/api/v1/devices/sunrise-garden/b1-e1/maintenance-visits", _visits),
    Expectation(r"report insurance .*-o insurance\.pdf", _ok),
    Expectation(r"report kpi .*--format csv", _kpi_csv),
    Expectation(r"^mbpoll ", _registers),
    Expectation(r"^mosquitto_pub -p 18830 ", _ok),
)


def expectation_of(command: str) -> Expectation:
    matching = [e for e in EXPECTATIONS if re.search(e.pattern, command)]
    assert len(matching) == 1, f"README example without exactly one expectation in the test: {command!r}"
    return matching[0]


@dataclass(frozen=True)
class Ran:
    command: str
    output: str
    rc: int


def run_all(listed: list[str], folder: Path, ports: dict[str, str], env: dict[str, str]) -> list[Ran]:
    """Run the commands in one bash in `folder`, with the demo's ports put in; each one's output and exit status."""
    script = ["set +e"]
    for i, command in enumerate(listed):
        before = expectation_of(command).before
        for written, actual in ports.items():
            command, before = command.replace(written, actual), before.replace(written, actual)
        script += [before, f"printf '\\n@@@ start {i}\\n'", command, "printf '\\n@@@ rc %d\\n' $?"]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=folder, env=env, capture_output=True, text=True, timeout=900
    )
    parts = re.findall(r"@@@ start (\d+)\n(.*?)\n@@@ rc (\d+)\n", done.stdout, re.DOTALL)
    assert len(parts) == len(listed), f"not every example ran:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return [Ran(listed[int(i)], out, int(rc)) for i, out, rc in parts]


def check(ran: Ran, folder: Path) -> None:
    assert ran.rc == 0, f"{ran.command!r} exited with {ran.rc}:\n{ran.output[-2000:]}"
    expectation = expectation_of(ran.command)
    try:
        expectation.check(ran.output)
    except (AssertionError, ValueError, KeyError, TypeError) as exc:
        raise AssertionError(
            f"{ran.command!r} did not show what the README says: {exc!r}\n{ran.output[-2000:]}"
        ) from exc
