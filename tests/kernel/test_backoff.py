"""The one capped exponential backoff: its steps double up to the cap, each delay a random share of its step."""

from __future__ import annotations

import itertools
import random

import pytest

from facmon.kernel.backoff import Backoff, backoff_delays


def test_steps_double_from_the_first_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0)
    assert [backoff.step(n) for n in range(1, 10)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.step(0) == backoff.step(-3) == 0.5  # no attempt yet counts as the first
    assert backoff.step(10_000) == 30.0  # no overflow however long it fails


def test_each_delay_is_between_half_its_step_and_the_step() -> None:
    backoff = Backoff(5.0, 300.0, random.Random(7))
    for attempt in range(1, 40):
        for _ in range(50):
            assert backoff.step(attempt) / 2 <= backoff.delay(attempt) <= backoff.step(attempt)


def test_the_jitter_spreads_the_delays_over_the_range() -> None:
    backoff = Backoff(1.0, 1.0, random.Random(3))
    delays = [backoff.delay(1) for _ in range(1000)]
    assert min(delays) < 0.55
    assert max(delays) > 0.95
    assert len(set(delays)) == 1000


def test_no_jitter_waits_the_whole_step_and_all_jitter_down_to_zero() -> None:
    assert [Backoff(1.0, 5.0, jitter=0.0).delay(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 5.0]
    assert all(0.0 <= Backoff(1.0, 5.0, random.Random(1), jitter=1.0).delay(2) <= 2.0 for _ in range(100))


def test_a_seeded_rng_gives_the_same_delays() -> None:
    first = list(itertools.islice(backoff_delays(0.1, 30.0, random.Random(42)), 20))
    again = list(itertools.islice(backoff_delays(0.1, 30.0, random.Random(42)), 20))
    other = list(itertools.islice(backoff_delays(0.1, 30.0, random.Random(43)), 20))
    assert first == again != other


def test_the_iterator_gives_the_per_attempt_delays_in_order() -> None:
    delays = list(itertools.islice(Backoff(0.1, 3.0, random.Random(5)).delays(), 12))
    backoff = Backoff(0.1, 3.0, random.Random(5))
    assert delays == [backoff.delay(n) for n in range(1, 13)]
    assert all(d <= 3.0 for d in delays)
    assert delays[-1] >= 1.5


def test_a_fresh_iterator_starts_over_from_the_first_step() -> None:
    rng = random.Random(9)
    delays = backoff_delays(0.1, 30.0, rng)
    for _ in range(10):
        next(delays)
    assert next(backoff_delays(0.1, 30.0, rng)) <= 0.1


@pytest.mark.parametrize(
    ("first", "cap", "jitter", "error"),
    [(0.0, 1.0, 0.5, "positive"), (1.0, -1.0, 0.5, "positive"), (1.0, 1.0, 1.5, "between 0 and 1")],
)
def test_nonsense_is_refused(first: float, cap: float, jitter: float, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Backoff(first, cap, jitter=jitter)
