"""Sign-in throttling: failed sign-ins are counted per (username, address) and per
address in a sliding window; past the limit a sign-in is refused with 429 before
any password is hashed, until the oldest failure leaves the window.

The counts live in this process (the dashboard's sign-in is served by the API
process); several API processes each keep their own, so the limit is per process.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from wattline import clock

WINDOW_S = 15 * 60
PER_USER_AND_ADDRESS = 5  # failures of one username from one address per window
PER_ADDRESS = 30  # failures from one address (any usernames) per window
MAX_KEYS = 100_000  # memory bound: the oldest keys are forgotten first


@dataclass(frozen=True)
class Refusal:
    retry_after_s: int


class SigninThrottle:
    def __init__(self, window_s: int = WINDOW_S, per_user_and_address: int = PER_USER_AND_ADDRESS,
                 per_address: int = PER_ADDRESS):
        self.window_s, self.limits = window_s, {"user": per_user_and_address, "address": per_address}
        self._failures: dict[tuple, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> dict[str, tuple]:
        return {"user": ("user", username.strip().lower(), address), "address": ("address", address)}

    def check(self, username: str, address: str) -> Refusal | None:
        """A refusal (with seconds to wait) if either limit is reached, else None."""
        now = clock.now()
        with self._lock:
            wait = 0.0
            for kind, key in self._keys(username, address).items():
                times = self._recent(key, now)
                if len(times) >= self.limits[kind]:
                    wait = max(wait, times[0] + self.window_s - now)
        return Refusal(max(1, int(wait + 0.999))) if wait > 0 else None

    def failed(self, username: str, address: str) -> None:
        now = clock.now()
        with self._lock:
            for key in self._keys(username, address).values():
                self._recent(key, now).append(now)
            while len(self._failures) > MAX_KEYS:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str, address: str) -> None:
        """A good password clears that user's count from that address (not the address's)."""
        with self._lock:
            self._failures.pop(self._keys(username, address)["user"], None)

    def _recent(self, key: tuple, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
