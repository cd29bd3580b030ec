"""Latest values in Redis: one hash per asset, written after each commit, read by the API.

Key ``<namespace>latest:asset:<asset id>`` (namespace e.g. ``prod:``), one field per
series id, value ``"<epoch s> <value>"``. A write only replaces a field with a reading
at least as new (a Lua script compares the timestamps), so a late batch never hides
a newer value.

Redis is a cache here, never a dependency: when a call fails, reads are answered by
the database and writes are kept in memory (newest per series, bounded) and sent once
Redis answers again. For ``retry_after_s`` after a failure Redis is not tried at all,
so an outage costs no timeout per request. One warning per outage is logged; every
fallback read and failed call is counted (``wattline_latest_values_*`` metrics).
A series Redis does not hold (a Redis restarted empty, data older than the cache) is
read from the database and written back.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from wattline import logs, metrics
from wattline.domain.latest import LatestValue, LatestValueStore

log = logs.get("wattline.latest")

# KEYS: the assets' hashes; ARGV: (key index, field, ts, value) quadruples.
# Replace a field when the held reading is not newer. One call for a whole batch.
_SET_IF_NEWER = """
for i = 1, #ARGV, 4 do
  local key = KEYS[tonumber(ARGV[i])]
  local held = redis.call('HGET', key, ARGV[i + 1])
  local held_ts = held and tonumber(string.match(held, '^(%S+)'))
  if (not held_ts) or held_ts <= tonumber(ARGV[i + 2]) then
    redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2] .. ' ' .. ARGV[i + 3])
  end
end
return 0
"""
MAX_PENDING = 100_000  # series whose newest value waits for Redis to come back


class RedisLatestValues:
    """:class:`~wattline.domain.latest.LatestValueStore` in Redis, with a fallback store."""

    name = "redis"

    def __init__(self, client: redis.Redis, namespace: str, fallback: LatestValueStore, *,
                 retry_after_s: float = 5.0):
        self.client = client
        self.namespace = namespace
        self.fallback = fallback
        self.retry_after_s = retry_after_s
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self._pending: dict[int, LatestValue] = {}
        self._lost = False  # more was held back than MAX_PENDING

    @classmethod
    def from_url(cls, url: str, namespace: str, fallback: LatestValueStore, *, timeout_s: float = 0.5,
                 retry_after_s: float = 5.0) -> "RedisLatestValues":
        # short timeouts and no client-side retries: a down Redis must cost little
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                      retry=Retry(NoBackoff(), 0), decode_responses=True)
        return cls(client, namespace, fallback, retry_after_s=retry_after_s)

    def close(self) -> None:
        self.client.close()

    def key(self, asset_id: int) -> str:
        return f"{self.namespace}latest:asset:{int(asset_id)}"

    # -- interface -------------------------------------------------------------

    def write(self, values: Iterable[LatestValue]) -> None:
        values = list(values)
        if not values:
            return
        if self._skipping():
            self._keep(values)
            return
        try:
            self._catch_up()
            self._send(values)
        except Exception as exc:  # noqa: BLE001 - a cache must never fail the ingest it follows
            self._keep(values)
            self._failed("write", exc)
            return
        self._answered()

    def read(self, asset_id: int, series_ids: list[int]) -> dict[int, LatestValue]:
        if not series_ids:
            return {}
        if self._skipping():
            metrics.LATEST_FALLBACK_READS.labels("unavailable").inc()
            return self.fallback.read(asset_id, series_ids)
        try:
            self._catch_up()  # Redis must not answer with values older than the outage's
            held = self.client.hmget(self.key(asset_id), [str(s) for s in series_ids])
        except Exception as exc:  # noqa: BLE001 - any failure of the cache: the database answers
            self._failed("read", exc)
            metrics.LATEST_FALLBACK_READS.labels("unavailable").inc()
            return self.fallback.read(asset_id, series_ids)
        self._answered()
        out = {}
        for sid, text in zip(series_ids, held):
            parsed = _parse(text)
            if parsed is not None:
                out[sid] = LatestValue(asset_id, sid, *parsed)
        missing = [s for s in series_ids if s not in out]
        if missing:
            metrics.LATEST_FALLBACK_READS.labels("missing").inc()
            found = self.fallback.read(asset_id, missing)
            out.update(found)
            self.write(found.values())  # fill the cache for the next read
        return out

    # -- plumbing --------------------------------------------------------------

    def _send(self, values: list[LatestValue]) -> None:
        keys: dict[int, int] = {}  # asset id -> index in KEYS (1-based, as Lua counts)
        args: list[str] = []
        for v in values:
            k = keys.setdefault(v.asset_id, len(keys) + 1)
            args.extend((str(k), str(v.series_id), str(int(v.ts)), repr(float(v.value))))
        self._set_if_newer(keys=[self.key(a) for a in keys], args=args)

    def _catch_up(self) -> None:
        """Send what an outage held back. If more series were held than MAX_PENDING,
        Redis cannot be trusted: drop its hashes, reads refill them from the database."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            lost, self._lost = self._lost, False
        try:
            if lost:
                keys = list(self.client.scan_iter(match=f"{self.namespace}latest:asset:*", count=1000))
                for i in range(0, len(keys), 1000):
                    self.client.delete(*keys[i:i + 1000])
            if pending:
                self._send(pending)
        except redis.RedisError:
            with self._lock:
                self._lost = self._lost or lost
            self._keep(pending)
            raise

    def _skipping(self) -> bool:
        with self._lock:
            return self._down and time.monotonic() < self._retry_at

    def _failed(self, operation: str, exc: Exception) -> None:
        metrics.LATEST_REDIS_ERRORS.labels(operation).inc()
        with self._lock:
            first = not self._down
            self._down = True
            self._retry_at = time.monotonic() + self.retry_after_s
        if first:  # once per outage, not per request
            log.warning("latest.redis_unavailable", operation=operation, error=type(exc).__name__,
                        retry_after_s=self.retry_after_s)

    def _answered(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            log.info("latest.redis_available")

    def _keep(self, values: list[LatestValue]) -> None:
        """Hold the newest value per series until Redis answers (bounded)."""
        with self._lock:
            for v in values:
                held = self._pending.get(v.series_id)
                if held is None and len(self._pending) >= MAX_PENDING:
                    self._lost = True  # see _catch_up
                    continue
                if held is None or held.ts <= v.ts:
                    self._pending[v.series_id] = v


def _parse(text: str | None) -> tuple[int, float] | None:
    """(ts, value) of a hash field, or None for an absent or unreadable one (the
    database answers for it and the write-back replaces it)."""
    if text is None:
        return None
    ts, _, value = text.partition(" ")
    try:
        return int(ts), float(value)
    except ValueError:
        return None
