"""Mutable state of a running emulated cloud: tokens, faults, counters, plants.

The app serves on uvicorn's thread while tests read counters from theirs, so every
shared structure here is guarded by a ``threading.Lock``.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from .config import CloudConfig, PlantProfile, VendorSettings, default_profile, plant_seed


class TokenStore:
    """Session tokens with an expiry (by the cloud's injectable clock)."""

    def __init__(self, config: CloudConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}

    def issue(self, account: str, prefix: str = "") -> str:
        token = prefix + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = (account, self._config.clock() + self._config.token_ttl_s)
        return token

    def account(self, token: str | None) -> str | None:
        """The account a token belongs to, or None if unknown or expired."""
        if not token:
            return None
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None
            if self._config.clock() >= entry[1]:
                del self._tokens[token]
                return None
            return entry[0]

    def revoke_all(self) -> None:
        """Expire every token now (tests: force the re-login path)."""
        with self._lock:
            self._tokens.clear()


@dataclass(frozen=True)
class CallRecord:
    """One call the cloud answered (what tests count to prove "no refetch")."""

    vendor: str
    endpoint: str
    status: int
    fault: str | None = None
    plant_id: str | None = None
    window: tuple[str, str] | None = None  # as the vendor received it
    page: int | None = None
    records: int = 0
    error: str | None = None  # vendor-level refusal: "auth", "token", "param", "plant", "rate_limit"
    # when it was answered (monotonic s): a caller's calls per minute, as the vendor sees them
    at: float = field(default_factory=time.monotonic, compare=False)


class CloudStats:
    """Per-app call counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._calls.append(record)

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def count(self, vendor: str | None = None, endpoint: str | None = None, **match: object) -> int:
        """Calls matching vendor, endpoint and any CallRecord fields given (e.g. status=200)."""
        return sum(
            1
            for c in self.calls
            if (vendor is None or c.vendor == vendor)
            and (endpoint is None or c.endpoint == endpoint)
            and all(getattr(c, k) == v for k, v in match.items())
        )

    def served_data_pages(self, vendor: str | None = None) -> Counter:
        """(vendor, plant, window, page) -> times a data page was served: >1 is a refetch.

        Answers held by a ``"slow"`` fault are left out: the client may have given up.
        """
        return Counter(
            (c.vendor, c.plant_id, c.window, c.page)
            for c in self.calls
            if c.window is not None
            and c.status == 200
            and c.fault != "slow"  # a held answer may never have reached the client
            and (vendor is None or c.vendor == vendor)
        )

    def faults(self) -> Counter:
        """Injected faults so far, by kind."""
        return Counter(c.fault for c in self.calls if c.fault)

    def errors(self) -> Counter:
        """Vendor-level refusals so far (bad credentials, expired tokens, bad parameters)."""
        return Counter(c.error for c in self.calls if c.error)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()


class FaultInjector:
    """Seeded choice of a fault per call; scripted faults first."""

    def __init__(self, config: CloudConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._script = deque(config.scripted_faults)

    def draw(self) -> str | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._config.fault_rate <= 0 or not self._config.fault_kinds:
                return None
            if self._rng.random() >= self._config.fault_rate:
                return None
            return self._rng.choice(self._config.fault_kinds)

    def script(self, *faults: str | None) -> None:
        """Queue faults for the next calls (tests)."""
        with self._lock:
            self._script.extend(faults)

    def corruptions(self, n_records: int, fields: list[str]) -> list[tuple[int, str, str]]:
        """1-3 distinct (record index, field, mode) to corrupt on a malformed page."""
        if n_records <= 0:
            return []
        with self._lock:
            k = min(n_records, self._rng.randint(1, 3))
            picks = self._rng.sample(range(n_records), k)
            return [
                (i, self._rng.choice(fields), self._rng.choice(("missing", "non_numeric", "null")))
                for i in picks
            ]


class MinuteLimiter:
    """The cloud's own per-account calls-per-minute limit (fixed one-minute windows)."""

    def __init__(self, config: CloudConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def retry_after(self, account: str) -> int | None:
        """Seconds to wait if this call is over the limit, else None (and count it)."""
        limit = self._config.rate_limit_per_minute
        if not limit:
            return None
        now = self._config.clock()
        minute = int(now // 60)
        with self._lock:
            key = (account, minute)
            if self._counts[key] >= limit:
                return max(1, int(60 - now % 60))
            self._counts[key] += 1
            if len(self._counts) > 10_000:
                self._counts = Counter({k: v for k, v in self._counts.items() if k[1] >= minute})
            return None


class CloudState:
    """Everything one app instance holds."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.tokens = {"solarman": TokenStore(config), "sungrow": TokenStore(config)}
        self.stats = CloudStats()
        self.faults = FaultInjector(config)
        self.minute_limiter = MinuteLimiter(config)

    def settings(self, vendor: str) -> VendorSettings:
        return getattr(self.config, vendor)

    def plant(self, vendor: str, plant_id: str) -> PlantProfile | None:
        """The plant's profile (configured or default), None when unknown plants are errors."""
        profile = self.settings(vendor).plants.get(str(plant_id))
        if profile is not None:
            return profile if profile.seed is not None else _with_seed(profile, plant_id)
        if self.config.unknown_plants == "default":
            return default_profile(str(plant_id))
        return None

    def now(self) -> float:
        return self.config.clock()


def _with_seed(profile: PlantProfile, plant_id: str) -> PlantProfile:
    from dataclasses import replace

    return replace(profile, seed=plant_seed(plant_id))
