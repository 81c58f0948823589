"""The process's own counters: what was read, published, written, rejected and why.

`Counters` is built in `main` (or a test) and handed to every component; there is no module-level instance. It
keeps a `prometheus_client` registry of its own, so two systems in one process (tests, benchmarks) never mix their
figures, and `/metrics` is `prometheus_client`'s exposition of that registry.

Components count with `inc(name, **labels)`: the counter `facmon_<name>_total` is made on first use with those label
names, and a later use with other label names is a bug that raises. Levels that are read when scraped (an outbox's
backlog, a broker connection) are registered once as gauges with `gauge(name, read)`. Durations whose spread matters
(how late polls start) are histograms, `histogram(name, buckets)`, observed by the component that times them.

`inc` is called per message on hot paths: the labelled child of a counter is looked up in prometheus_client once
per label set and kept (its own lookup checks and converts the labels each time, a quarter of a busy gateway's CPU).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from threading import Lock
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "facmon_"
# The media type of the text exposition format that `prometheus()` returns.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Gauges(Collector):
    """Gauges computed when scraped, so a level is never stale and costs nothing between scrapes."""

    def __init__(self) -> None:
        self.read: dict[str, tuple[str, Callable[[], float]]] = {}
        # Values read beforehand, in the thread that owns what the gauges read, for an exposition written in another.
        self.values: dict[str, float] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        values = self.values
        for name, (help_text, read) in sorted(self.read.items()):
            value = values[name] if values is not None and name in values else read()
            yield GaugeMetricFamily(name, help_text, value=value)


class Counters:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._counters: dict[str, tuple[Counter, tuple[str, ...]]] = {}
        # (name, label items) -> what to call `inc` on: the counter's child for those labels, or the counter.
        self._children: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        self._lock = Lock()
        self._exposing = Lock()
        self._gauges = _Gauges()
        self.registry.register(self._gauges)
        self._histograms: dict[str, Histogram] = {}

    def _counter(self, name: str, label_names: tuple[str, ...]) -> Counter:
        known = self._counters.get(name)
        if known is None:
            with self._lock:
                known = self._counters.get(name)
                if known is None:
                    counter = Counter(PREFIX + name, name.replace("_", " "), label_names, registry=self.registry)
                    known = self._counters[name] = (counter, label_names)
        counter, names = known
        if names != label_names:
            raise ValueError(f"counter {name!r} is labelled {list(names)}, not {list(label_names)}")
        return counter

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(labels.items()))
        child = self._children.get(key)
        if child is None:
            names = tuple(sorted(labels))
            counter = self._counter(name, names)
            child = self._children[key] = counter.labels(**labels) if names else counter
        child.inc(amount)

    def counting(self, name: str, **labels: str) -> Callable[[], None]:
        """Adds one to the counter `name` for these labels, looked up once: for a caller that counts the same thing
        per message and keeps this (an `inc` looks its labels up each time, three times the cost)."""
        self.inc(name, 0, **labels)
        child = self._children[(name, tuple(labels.items()))]
        return cast(Callable[[], None], child.inc)

    def get(self, name: str, **labels: str) -> int:
        """The counter for exactly these labels; with no labels, the sum over all label sets (0 if never counted)."""
        known = self._counters.get(name)
        if known is None:
            return 0
        total = 0.0
        for metric in known[0].collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return int(total)

    def gauge(self, name: str, read: Callable[[], float], help_text: str = "") -> None:
        """A level read when scraped, e.g. the outbox's backlog; registering a name again replaces its reader."""
        self._gauges.read[PREFIX + name] = (help_text or name.replace("_", " "), read)

    def histogram(self, name: str, buckets: tuple[float, ...], help_text: str = "") -> Histogram:
        """The histogram `facmon_<name>` (unlabelled), made on first use; later uses get the same one."""
        with self._lock:
            known = self._histograms.get(name)
            if known is None:
                known = self._histograms[name] = Histogram(
                    PREFIX + name, help_text or name.replace("_", " "), buckets=buckets, registry=self.registry
                )
        return known

    def prometheus(self) -> str:
        """Every counter and gauge in Prometheus' text exposition format."""
        return generate_latest(self.registry).decode()

    async def prometheus_off_loop(self) -> str:
        """`prometheus()` without holding up the event loop: the gauges are read here (what they read belongs to
        the loop), the text is written in a worker thread. prometheus_client takes hundreds of milliseconds for a
        gateway's thousands of per-device counters, which in the loop would start every poll due meanwhile late."""
        values = {name: read() for name, (_, read) in self._gauges.read.items()}
        return await asyncio.to_thread(self._exposition, values)

    def _exposition(self, values: dict[str, float]) -> str:
        with self._exposing:  # one exposition at a time, with the values read for it
            self._gauges.values = values
            try:
                return generate_latest(self.registry).decode()
            finally:
                self._gauges.values = None
