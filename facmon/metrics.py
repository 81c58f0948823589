"""The process's own counters: what was read, published, written, rejected and why.

Deliberately small: named integer counters with labels, readable as a dict and as Prometheus text.
"""

from __future__ import annotations

from collections import Counter
from threading import Lock


class Counters:
    def __init__(self) -> None:
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = Lock()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] += amount

    def get(self, name: str, **labels: str) -> int:
        """The counter for exactly these labels; with no labels, the sum over all label sets."""
        with self._lock:
            if labels:
                return self._values[(name, tuple(sorted(labels.items())))]
            return sum(v for (n, _), v in self._values.items() if n == name)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for (name, labels), value in sorted(self._values.items()):
                label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                out[f"facmon_{name}{{{label_text}}}" if labels else f"facmon_{name}"] = value
            return out

    def prometheus(self) -> str:
        """The counters in Prometheus' text exposition format (every counter a `counter`)."""
        lines: list[str] = []
        typed: set[str] = set()
        for key, value in self.snapshot().items():
            name = key.split("{", 1)[0]
            if name not in typed:
                typed.add(name)
                lines.append(f"# TYPE {name} counter")
            lines.append(f"{key} {value}")
        return "\n".join(lines) + "\n"


# One set per process; components take it as a parameter so tests can hand in their own.
METRICS = Counters()
