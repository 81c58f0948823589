"""Writing the history to InfluxDB: line protocol in batches to the v1 `/write`, with the original timestamps.

A year of readings is millions of points, too many for influxdb_client's `Point` at tens of microseconds each.
`SeriesEncoder` writes the points of one series with the series key the project's own encoder made
(facmon.historian.lines, rules.fire_intact) and the fields formatted the way `Point` formats them; the first point of
every series is made both ways and must come out the same, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import islice

from facmon.kernel.influx import BlockingInfluxClient, InfluxSettings
from facmon.kernel.model import Value

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH = 10_000
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


class EncoderMismatch(RuntimeError):
    """The fast encoder and the project's encoder disagree: a bug here, never silently written."""


def nanoseconds(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1) * 1000


def _bool(value: Value) -> str:
    return "true" if value else "false"


def _int(value: Value) -> str:
    return f"{value}i"


def _float(value: Value) -> str | None:
    # As influxdb_client's Point: non-finite floats are left out, whole ones lose their ".0".
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    text = str(number)
    return text[:-2] if text.endswith(".0") else text


def _str(value: Value) -> str:
    return '"' + str(value).translate(_ESCAPE_STRING) + '"'


_FORMAT: dict[type, Callable[[Value], str | None]] = {bool: _bool, int: _int, float: _float, str: _str}


def value_text(value: Value) -> str | None:
    """One field value as line protocol writes it (None: left out)."""
    return _FORMAT[type(value)](value)


_NAMES: dict[str, str] = {}


def _name(name: str) -> str:
    escaped = _NAMES.get(name)
    if escaped is None:
        escaped = _NAMES[name] = name.translate(_ESCAPE_KEY)
    return escaped


def fields_text(values: Mapping[str, Value]) -> str:
    """The fields of a point as influxdb_client's Point writes them: sorted by name, typed by the value."""
    parts = []
    for name in sorted(values):
        value = values[name]
        text = _FORMAT[type(value)](value)
        if text is not None:
            parts.append(f"{_name(name)}={text}")
    return ",".join(parts)


def series_key(line: str) -> str:
    """The measurement and tags of a line: everything before the first space that is not escaped."""
    index = 0
    while True:
        index = line.index(" ", index)
        if line[index - 1] != "\\":
            return line[:index]
        index += 1


class SeriesEncoder:
    """Points of one series. `reference(values, at)` is the project's encoder: the first point, and every fields
    text asked for with `fields`, are made both ways and must agree."""

    def __init__(self, reference: Callable[[Mapping[str, Value], datetime], str]) -> None:
        self._reference = reference
        self.key = ""

    def fields(self, values: Mapping[str, Value], at: datetime) -> str:
        """The fields text of `values`, checked against the project's encoder (at the time `at`)."""
        text = fields_text(values)
        expected = self._reference(values, at)
        self.key = self.key or series_key(expected)
        if f"{self.key} {text} {nanoseconds(at)}" != expected:
            raise EncoderMismatch(f"{self.key} {text} {nanoseconds(at)!r} != {expected!r}")
        return text

    def line(self, values: Mapping[str, Value], at: datetime) -> str:
        text = fields_text(values) if self.key else self.fields(values, at)
        return f"{self.key} {text} {nanoseconds(at)}"


class InfluxWriter:
    """Batches of lines to `/write` (precision ns), and a SHA-256 of everything written, in order. A request InfluxDB
    does not carry out raises facmon.kernel.influx's `InfluxError`.

    One request at a time, in order, sent from a thread of its own: the next batch is made while InfluxDB takes
    the one before (on a 2-core machine making a year's lines and InfluxDB parsing them take about as long)."""

    def __init__(self, url: str, db: str, *, username: str | None = None, password: str | None = None) -> None:
        self.db = db
        settings = InfluxSettings(url, db, username=username, password=password, timeout_s=60.0)
        self._influx = BlockingInfluxClient(settings)
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-write")
        self._digest = hashlib.sha256()
        self.points: dict[str, int] = {}

    def ensure_database(self) -> None:
        self._influx.create_database()

    def write(self, lines: Iterable[str], measurement: str | None = None) -> None:
        """`measurement`: the one all `lines` are points of, counted by batch; without it each line is looked at."""
        sending: Future[None] | None = None
        it = iter(lines)
        while batch := list(islice(it, BATCH)):
            body = "\n".join(batch).encode()
            if sending is not None:
                sending.result()
            sending = self._sender.submit(self._influx.write, body)
            self._count(batch, body, measurement)
        if sending is not None:
            sending.result()

    def _count(self, batch: Sequence[str], body: bytes, measurement: str | None) -> None:
        self._digest.update(body + b"\n")
        if measurement is not None:
            self.points[measurement] = self.points.get(measurement, 0) + len(batch)
            return
        for line in batch:
            name = line[: line.index(",")]
            self.points[name] = self.points.get(name, 0) + 1

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._sender.shutdown()
        self._influx.close()
