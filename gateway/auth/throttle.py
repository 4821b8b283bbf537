"""Failed-login throttling per client address, shared by the SMTP and IMAP listeners of one process."""

from __future__ import annotations

import time
from collections import deque


class LoginThrottle:
    """Counts failed logins per client address in a sliding window; past the limit, logins are refused.

    A refused address is told to come back later without its password even being checked, which caps the
    guessing rate and keeps the KDF from being used to burn our CPU.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def blocked(self, address: str) -> bool:
        return len(self._recent(address, time.monotonic())) >= self.limit

    def retry_after(self, address: str) -> float:
        failures = self._recent(address, time.monotonic())
        return max(0.0, failures[0] + self.window - time.monotonic()) if failures else 0.0

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self._recent(address, now)
        self._failures.setdefault(address, deque()).append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray from many addresses
            oldest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[oldest]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
