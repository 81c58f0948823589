"""Slows down password guessing: after a few failures for a username or from a client, each further attempt has to
wait, twice as long each time, up to a cap. A success for the username clears its count.

Kept in memory: a restart forgives, which is acceptable for slowing guessing down (the passwords are Argon2id
hashed and at least 10 characters), and it keeps a failed login from writing to the database.
"""

from __future__ import annotations

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


@dataclass
class LoginThrottle:
    free_failures: int = FREE_FAILURES
    first_delay_s: float = FIRST_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    _records: dict[str, _Record] = field(default_factory=dict)

    def wait_s(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until an attempt for these keys (e.g. user:<name>, client:<ip>) may be made; 0 when it may now."""
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

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        if len(self._records) >= MAX_KEYS:
            self._forget_old(now)
        for key in keys:
            record = self._records.setdefault(key, _Record())
            record.failures += 1
            record.last_failure = now

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, r in self._records.items() if now - r.last_failure >= FORGET_AFTER_S]:
            del self._records[key]
        if len(self._records) >= MAX_KEYS:  # under a spray of names: keep the most recent half
            keep = sorted(self._records.items(), key=lambda kv: kv[1].last_failure)[MAX_KEYS // 2 :]
            self._records = dict(keep)
