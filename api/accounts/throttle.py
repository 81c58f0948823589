"""Slows down password guessing: after a few failures for a username or from a client, each further attempt has to
wait, twice as long each time, up to a cap. A success for the username clears its count.

An attempt is counted before its password is checked, in one step with the check of the wait (`attempt`, under a
lock: logins run in the server's thread pool). Counted only after the hash check, most of 60 concurrent guesses
passed the wait check while the first ones were still hashing; now no more than the free failures are checked.
A success takes back its count for the client (`succeeded`), so an office behind one address is not throttled by
its own good logins.

Kept in memory: a restart forgives, which is acceptable for slowing guessing down (the passwords are Argon2id
hashed and at least 10 characters), and it keeps a failed login from writing to the database. So the limit holds
per API process; several processes behind one address each allow their own free failures.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

FREE_FAILURES = 5
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 900.0
# A key with no failure for this long starts afresh.
FORGET_AFTER_S = 3600.0
MAX_KEYS = 100_000


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """One login attempt as the throttle saw it: the seconds it must wait (0: it was counted and may go ahead)."""

    keys: tuple[str, ...]
    at: float
    wait_s: float
    # Each key's last failure before this attempt was counted, so a success can put it back.
    previous: dict[str, float] = field(default_factory=dict)


@dataclass
class LoginThrottle:
    free_failures: int = FREE_FAILURES
    first_delay_s: float = FIRST_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    _records: dict[str, _Record] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attempt(self, keys: tuple[str, ...], now: float) -> Attempt:
        """Count an attempt for these keys (e.g. user:<name>, client:<ip>), or, when it must wait, count nothing and
        say how long. Counted as failed until `succeeded` says otherwise."""
        with self._lock:
            wait = self.wait_s(keys, now)
            if wait > 0:
                return Attempt(keys, now, wait)
            previous = {key: self._records[key].last_failure for key in keys if key in self._records}
            self._count(keys, now)
            return Attempt(keys, now, 0.0, previous)

    def wait_s(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until an attempt for these keys may be made; 0 when it may now."""
        return max((self._wait(key, now) for key in keys), default=0.0)

    def _wait(self, key: str, now: float) -> float:
        record = self._records.get(key)
        if record is None or record.failures < self.free_failures:
            return 0.0
        if now - record.last_failure >= FORGET_AFTER_S:
            del self._records[key]
            return 0.0
        delay: float = min(self.first_delay_s * 2.0 ** (record.failures - self.free_failures), self.max_delay_s)
        return max(0.0, record.last_failure + delay - now)

    def _count(self, keys: tuple[str, ...], now: float) -> None:
        if len(self._records) >= MAX_KEYS:
            self._forget_old(now)
        for key in keys:
            record = self._records.setdefault(key, _Record())
            record.failures += 1
            record.last_failure = now

    def succeeded(self, attempt: Attempt) -> None:
        """The attempt was a success: its first key (the username) starts afresh, the others (the client) lose its
        count, and their last failure is what it was before (unless another failure came since)."""
        with self._lock:
            self._records.pop(attempt.keys[0], None)
            for key in attempt.keys[1:]:
                record = self._records.get(key)
                if record is None:
                    continue
                record.failures -= 1
                if record.failures <= 0 or key not in attempt.previous:
                    del self._records[key]
                elif record.last_failure == attempt.at:
                    record.last_failure = attempt.previous[key]

    def _forget_old(self, now: float) -> None:
        for key in [k for k, r in self._records.items() if now - r.last_failure >= FORGET_AFTER_S]:
            del self._records[key]
        if len(self._records) >= MAX_KEYS:  # under a spray of names: keep the most recent half
            keep = sorted(self._records.items(), key=lambda kv: kv[1].last_failure)[MAX_KEYS // 2 :]
            self._records = dict(keep)
