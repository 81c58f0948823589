"""Capped exponential backoff with jitter: how long to wait before the next try after a failure.

Attempt n (counted from 1) waits a random share of its step `min(cap, first * 2**(n-1))`: between `1 - jitter` of
the step and the whole step (with the default jitter of 0.5: at least half). The randomness keeps many clients that
lost the same server (gateways, collectors, workers) from coming back in lockstep; pass a seeded `random.Random` for
a reproducible sequence.

Two ways to use it, the same numbers:

- per attempt, for callers that count attempts themselves or keep them in a database row:
  `Backoff(5.0, 300.0).delay(attempt)`;
- as an iterator, for a retry loop that starts afresh after each success:
  `delays = backoff_delays(0.1, 30.0, rng)` ... `await clock.sleep(next(delays))`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

# 2**62 times any sensible first step is past any sensible cap; a bound keeps huge attempt counts from overflowing.
_MAX_DOUBLINGS = 62


class Backoff:
    """The delays of one retry policy; `jitter` is the share of each step that is random (0: none, 1: all)."""

    def __init__(self, first_s: float, cap_s: float, rng: random.Random | None = None, *, jitter: float = 0.5) -> None:
        if first_s <= 0 or cap_s <= 0:
            raise ValueError(f"first_s and cap_s must be positive, got {first_s} and {cap_s}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
        self.first_s = first_s
        self.cap_s = cap_s
        self.jitter = jitter
        self._rng = rng or random.Random()

    def step(self, attempt: int) -> float:
        """The longest wait after failed attempt `attempt` (1 = the first failure; lower counts as 1)."""
        doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
        return min(self.cap_s, self.first_s * 2.0**doublings)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt`: a random share of `step(attempt)`."""
        return self.step(attempt) * self._rng.uniform(1.0 - self.jitter, 1.0)

    def delays(self) -> Iterator[float]:
        """`delay(1)`, `delay(2)`, ... without end."""
        attempt = 1
        while True:
            yield self.delay(attempt)
            attempt += 1


def backoff_delays(initial_s: float, max_s: float, rng: random.Random | None = None) -> Iterator[float]:
    """The delays of `Backoff(initial_s, max_s, rng)` one after the other; a fresh iterator starts over."""
    return Backoff(initial_s, max_s, rng).delays()
