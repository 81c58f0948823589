"""Dashboard JSON and InfluxQL templates, expanded the way Grafana does before it sends a query to InfluxDB.

Grafana (public/app/plugins/datasource/influxdb, and rangeutil / kbn for intervals) replaces, in a raw query:

- `$timeFilter` with `time >= <from>ms and time <= <to>ms`;
- `$__interval` with the range over the panel's max data points, rounded to a "nice" interval and never under the
  datasource's `timeInterval`, written as `10s`, `1m`, ...; `$__interval_ms` with the same in milliseconds;
- a template variable with its value, regex-escaped when the variable is multi-value or has "All": one value as
  itself, several as `(a|b)` (All is every value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
DATASOURCE_UID = "facmon-influxdb"

# rangeutil.roundInterval: (upper bound of the raw interval, the interval it rounds to), in milliseconds.
_ROUND = [
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000), (3_500, 2_000),
    (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000), (90_000, 60_000),
    (210_000, 120_000), (450_000, 300_000), (1_050_000, 600_000), (2_100_000, 1_800_000), (6_300_000, 3_600_000),
    (15_000_000, 7_200_000), (45_000_000, 21_600_000), (64_800_000, 43_200_000), (129_600_000, 86_400_000),
]  # fmt: skip
_REGEX_SPECIALS = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard file, by file stem."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def round_interval_ms(raw_ms: float) -> int:
    for bound, rounded in _ROUND:
        if raw_ms < bound:
            return rounded
    return 604_800_000 if raw_ms < 1_209_600_000 else 2_592_000_000


def parse_interval_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    if match is None:
        raise ValueError(f"not an interval: {text!r}")
    unit = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[match.group(2)]
    return int(match.group(1)) * unit


def format_interval(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def escape(value: str) -> str:
    return _REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)


def variable_value(values: Sequence[str], *, multi: bool) -> str:
    if not multi:
        return values[0]
    escaped = [escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand(
    query: str,
    *,
    start: datetime,
    end: datetime,
    variables: Mapping[str, Sequence[str]],
    max_data_points: int = 1000,
    min_interval: str = "10s",
) -> str:
    from_ms, to_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    interval_ms = max(round_interval_ms((to_ms - from_ms) / max_data_points), parse_interval_ms(min_interval))
    builtins = {
        "timeFilter": f"time >= {from_ms}ms and time <= {to_ms}ms",
        "__interval_ms": str(interval_ms),
        "__interval": format_interval(interval_ms),
        "__from": str(from_ms),
        "__to": str(to_ms),
    }
    values = {name: variable_value(vals, multi=True) for name, vals in variables.items()} | builtins

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"unknown variable ${name} in {query!r}")
        return values[name]

    # $name, ${name} and [[name]]; longest names first so $__interval_ms is not read as $__interval.
    return re.sub(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)", replace, query)
