"""Latest values in Redis: one hash per system (or other asset), written after each
commit, read by the API; and the composites each system feeds.

Keys (namespace e.g. ``prod:``, from ``WATTLINE_REDIS_NAMESPACE`` or ``WATTLINE_ENV``):

* ``<ns>latest:system:<system id>``: one field per point key, value
  ``{"value": 3.45, "timestamp": 1700000000, "unit": "kW"}`` (JSON; seed 003's shape).
* ``<ns>latest:asset:<asset id>``: other assets (plants, devices): one field per
  series id, value ``"<epoch s> <value>"``.
* ``<ns>subscriptions:system:<system id>``: a set of the ids of the composites the
  system is a member of (plus the member ``0``, so a system in no composite still has
  a set and is not looked up again); rebuilt from the database when a composite is
  created, changed or deleted (:meth:`RedisLatestValues.refresh_subscriptions`) and
  whenever it is missing.
* ``<ns>latest:composite:<composite id>``: a composite's rolled-up latest values as
  the API answers them (fields ``data``, JSON, and ``sig``, the fingerprint of the
  members and points they were computed from), with ``...:gen``, a counter. Every
  write of a system's values deletes the hashes of the composites its subscription
  set names and bumps their counters; a reader stores a hash only if the counter is
  still what it was before it read the members (:meth:`RedisLatestValues.store_composite`),
  so a roll-up computed from values older than a member's last write is never kept.

Which series belong to a system, and their point key and unit, come from the registry
(``main_reader``), looked up once per series and kept. A write only replaces a field
with a reading at least as new (a Lua script compares the timestamps, whatever the
shape), so a late batch never hides a newer value.

Redis is a cache here, never a dependency: when a call fails, reads are answered by
the database and writes are kept in memory (newest per series, bounded) and sent once
Redis answers again, with the subscription sets that could not be rebuilt. For
``retry_after_s`` after a failure Redis is not tried at all, so an outage costs no
timeout per request. One warning per outage is logged; every fallback read and failed
call is counted (``wattline_latest_values_*`` metrics). A series Redis does not hold
(a Redis restarted empty, data older than the cache) is read from the database and
written back.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Iterable, Mapping, NamedTuple, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, select

from wattline import logs, metrics
from wattline.domain.latest import LatestRead, LatestValue, LatestValueStore
from wattline.store import composites_repo
from wattline.store.tables import points, systems

log = logs.get("wattline.latest")

# KEYS: the hashes; ARGV: (key index, field, ts, stored text) quadruples. Replace a
# field when the held reading is not newer; a held text is "<ts> <value>" (assets) or
# JSON with a "timestamp" (systems). One call for a whole batch.
_SET_IF_NEWER = """
for i = 1, #ARGV, 4 do
  local key = KEYS[tonumber(ARGV[i])]
  local held = redis.call('HGET', key, ARGV[i + 1])
  local held_ts = nil
  if held then
    if string.sub(held, 1, 1) == '{' then
      local ok, obj = pcall(cjson.decode, held)
      if ok and type(obj) == 'table' then held_ts = tonumber(obj['timestamp']) end
    else
      held_ts = tonumber(string.match(held, '^(%S+)'))
    end
  end
  if (not held_ts) or held_ts <= tonumber(ARGV[i + 2]) then
    redis.call('HSET', key, ARGV[i + 1], ARGV[i + 3])
  end
end
return 0
"""
# KEYS: the subscription sets of the systems just written; ARGV[1]: the namespace.
# Drop the cached roll-up of every composite a set names and bump its counter; return
# the (1-based) indexes of the sets that are missing (rebuilt from the database by the
# caller). The composite keys are built here from the sets' members: this cache runs on
# one Redis, not a cluster.
_INVALIDATE_COMPOSITES = """
local missing = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    for _, cid in ipairs(redis.call('SMEMBERS', key)) do
      if cid ~= '0' then
        local ck = ARGV[1] .. 'latest:composite:' .. cid
        redis.call('DEL', ck)
        redis.call('INCR', ck .. ':gen')
      end
    end
  else
    table.insert(missing, i)
  end
end
return missing
"""
# KEYS: the composite's hash, its counter; ARGV: counter as read before the members
# ("" when absent), fingerprint, data JSON, ttl s. Store only if no member was written since.
_STORE_COMPOSITE = """
local gen = redis.call('GET', KEYS[2]) or ''
if gen ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'sig', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""
NO_COMPOSITE = "0"  # the member that makes a system's subscription set exist when it feeds none
COMPOSITE_TTL_S = 86_400  # a deleted composite's cached roll-up does not linger
MAX_PENDING = 100_000  # series whose newest value waits for Redis to come back


class SeriesPoint(NamedTuple):
    """Where a series' latest value lives: its asset, point key and unit, and whether
    the asset is a system (then the hash is ``latest:system:{id}``, by point key)."""

    asset_id: int
    key: str
    unit: str
    is_system: bool


class RedisLatestValues:
    """:class:`~wattline.domain.latest.LatestValueStore` in Redis, with a fallback store."""

    name = "redis"

    def __init__(self, client: redis.Redis, namespace: str, fallback: LatestValueStore, *,
                 retry_after_s: float = 5.0, main_reader: Engine | None = None):
        self.client = client
        self.namespace = namespace
        self.fallback = fallback
        self.retry_after_s = retry_after_s
        self.main_reader = main_reader  # None: every asset kept by series id
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._invalidate_composites = client.register_script(_INVALIDATE_COMPOSITES)
        self._store_composite = client.register_script(_STORE_COMPOSITE)
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self._pending: dict[int, LatestValue] = {}
        self._lost = False  # more was held back than MAX_PENDING
        self._dirty_subscriptions: set[int] = set()  # systems whose set could not be rebuilt
        self._points: dict[int, SeriesPoint] = {}

    @classmethod
    def from_url(cls, url: str, namespace: str, fallback: LatestValueStore, *, timeout_s: float = 0.5,
                 retry_after_s: float = 5.0, main_reader: Engine | None = None) -> "RedisLatestValues":
        # short timeouts and no client-side retries: a down Redis must cost little
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                      retry=Retry(NoBackoff(), 0), decode_responses=True)
        return cls(client, namespace, fallback, retry_after_s=retry_after_s, main_reader=main_reader)

    def close(self) -> None:
        self.client.close()

    def key(self, asset_id: int) -> str:
        """Hash of an asset that is not a system (fields: series ids)."""
        return f"{self.namespace}latest:asset:{int(asset_id)}"

    def system_key(self, system_id: int) -> str:
        """Hash of a system (fields: point keys)."""
        return f"{self.namespace}latest:system:{int(system_id)}"

    def subscriptions_key(self, system_id: int) -> str:
        """Set of the composite ids a system feeds."""
        return f"{self.namespace}subscriptions:system:{int(system_id)}"

    def composite_key(self, composite_id: int) -> str:
        """Hash of a composite's rolled-up latest values (fields ``sig``, ``data``)."""
        return f"{self.namespace}latest:composite:{int(composite_id)}"

    # -- interface -------------------------------------------------------------

    def write(self, values: Iterable[LatestValue]) -> None:
        values = [v for v in values if math.isfinite(v.value)]
        if not values:
            return
        try:
            self._describe([v.series_id for v in values])
        except Exception as exc:  # noqa: BLE001 - the registry did not answer: keep them for later
            self._keep(values)
            log.warning("latest.describe_failed", error=type(exc).__name__)
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
        return self.read_assets({asset_id: series_ids}).values

    def read_assets(self, wanted: Mapping[int, Sequence[int]]) -> LatestRead:
        wanted = {int(a): [int(s) for s in sids] for a, sids in wanted.items() if sids}
        if not wanted:
            return LatestRead({}, "redis")
        if self._skipping():
            metrics.LATEST_FALLBACK_READS.labels("unavailable").inc()
            return self.fallback.read_assets(wanted)
        try:
            places = self._describe([s for sids in wanted.values() for s in sids])
            self._catch_up()  # Redis must not answer with values older than the outage's
            pipe = self.client.pipeline(transaction=False)
            asked: list[tuple[int, list[int]]] = []
            for asset_id, sids in wanted.items():
                if self._is_system(asset_id, sids, places):
                    pipe.hmget(self.system_key(asset_id), [places[s].key for s in sids])
                else:
                    pipe.hmget(self.key(asset_id), [str(s) for s in sids])
                asked.append((asset_id, sids))
            held = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - any failure of the cache: the database answers
            self._failed("read", exc)
            metrics.LATEST_FALLBACK_READS.labels("unavailable").inc()
            return self.fallback.read_assets(wanted)
        self._answered()
        out: dict[int, LatestValue] = {}
        missing: dict[int, list[int]] = {}
        for (asset_id, sids), texts in zip(asked, held):
            for sid, text in zip(sids, texts):
                parsed = _parse(text)
                if parsed is None:
                    missing.setdefault(asset_id, []).append(sid)
                else:
                    out[sid] = LatestValue(asset_id, sid, *parsed)
        source = "redis"
        if missing:
            metrics.LATEST_FALLBACK_READS.labels("missing").inc()
            found = self.fallback.read_assets(missing).values
            if found:
                source = "database"
                out.update(found)
                self.write(found.values())  # fill the cache for the next read
        return LatestRead(out, source)

    # -- composites a system feeds --------------------------------------------

    def refresh_subscriptions(self, system_ids: Iterable[int]) -> None:
        """Rebuild ``subscriptions:system:{id}`` of these systems from the database (after
        a composite was created, changed or deleted: its old and new members). Never
        raises: sets Redis cannot take now are rebuilt when it answers again."""
        ids = sorted({int(s) for s in system_ids})
        if not ids:
            return
        if self._skipping():
            with self._lock:
                self._dirty_subscriptions.update(ids)
            return
        try:
            self._rebuild_subscriptions(ids)
        except Exception as exc:  # noqa: BLE001 - the composite is saved; the cache follows later
            with self._lock:
                self._dirty_subscriptions.update(ids)
            self._failed("write", exc)
            return
        self._answered()

    def subscriptions(self, system_id: int) -> set[int]:
        """Ids of the composites ``system_id`` feeds: Redis's set, rebuilt from the
        database when missing; the database's answer while Redis is down."""
        if self._skipping():
            return self._subscriptions_from_database([system_id])[system_id]
        key = self.subscriptions_key(system_id)
        try:
            self._catch_up()
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(key)
            pipe.smembers(key)
            exists, members = pipe.execute()
            if not exists:  # never built, or lost with a Redis restarted empty (or none: cheap)
                return self._rebuild_subscriptions([system_id])[system_id]
        except Exception as exc:  # noqa: BLE001
            self._failed("read", exc)
            return self._subscriptions_from_database([system_id])[system_id]
        self._answered()
        return {int(m) for m in members} - {int(NO_COMPOSITE)}

    def cached_composite(self, composite_id: int, signature: str) -> tuple[dict | None, str | None]:
        """(data, token): the composite's cached roll-up when it was computed from the
        same members and points (``signature``) and no member was written since, else
        None; ``token`` is what :meth:`store_composite` needs (None: do not store,
        Redis is not answering)."""
        if self._skipping():
            return None, None
        key = self.composite_key(composite_id)
        try:
            self._catch_up()  # an outage's values must invalidate before anything is served
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(key, ["sig", "data"])
            pipe.get(f"{key}:gen")
            (sig, data), gen = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - the members are read instead
            self._failed("read", exc)
            return None, None
        self._answered()
        if sig == signature and data is not None:
            try:
                return json.loads(data), gen or ""
            except ValueError:
                pass  # unreadable: computed again and replaced
        return None, gen or ""

    def store_composite(self, composite_id: int, token: str | None, signature: str, data: dict) -> bool:
        """Keep a roll-up computed after :meth:`cached_composite` gave ``token``; refused
        (False) when a member was written in between. Never raises."""
        if token is None or self._skipping():
            return False
        key = self.composite_key(composite_id)
        try:
            stored = self._store_composite(keys=[key, f"{key}:gen"],
                                           args=[token, signature, json.dumps(data, separators=(",", ":")),
                                                 COMPOSITE_TTL_S])
        except Exception as exc:  # noqa: BLE001
            self._failed("write", exc)
            return False
        self._answered()
        return bool(stored)

    # -- plumbing --------------------------------------------------------------

    def _subscriptions_from_database(self, system_ids: list[int]) -> dict[int, set[int]]:
        if self.main_reader is None:
            return {s: set() for s in system_ids}
        with self.main_reader.connect() as conn:
            return composites_repo.composites_of_systems(conn, system_ids)

    def _rebuild_subscriptions(self, system_ids: list[int]) -> dict[int, set[int]]:
        subs = self._subscriptions_from_database(system_ids)
        pipe = self.client.pipeline(transaction=True)  # a reader sees the old set or the new one
        for sid, composites in subs.items():
            pipe.delete(self.subscriptions_key(sid))
            pipe.sadd(self.subscriptions_key(sid), NO_COMPOSITE, *sorted(composites))
        pipe.execute()
        return subs

    def _describe(self, series_ids: Iterable[int]) -> dict[int, SeriesPoint]:
        """Asset, point key, unit and system-ness of each series (kept once looked up)."""
        wanted = set(series_ids)
        with self._lock:
            # not ``wanted - self._points.keys()``: that walks every key kept
            unknown = [s for s in wanted if s not in self._points]
        if unknown and self.main_reader is not None:
            found = _series_points(self.main_reader, sorted(unknown))
            with self._lock:
                self._points.update(found)
        with self._lock:
            return {s: self._points[s] for s in wanted if s in self._points}

    @staticmethod
    def _is_system(asset_id: int, series_ids: Sequence[int], places: Mapping[int, SeriesPoint]) -> bool:
        return bool(series_ids) and all(s in places and places[s].is_system and places[s].asset_id == asset_id
                                        for s in series_ids)

    def _send(self, values: list[LatestValue]) -> None:
        places = self._describe([v.series_id for v in values])
        keys: dict[str, int] = {}  # hash key -> index in KEYS (1-based, as Lua counts)
        args: list[str] = []
        for v in values:
            place = places.get(v.series_id)
            if place is not None and place.is_system:
                k = keys.setdefault(self.system_key(place.asset_id), len(keys) + 1)
                text = json.dumps({"value": float(v.value), "timestamp": int(v.ts), "unit": place.unit},
                                  separators=(",", ":"))
                args.extend((str(k), place.key, str(int(v.ts)), text))
            else:
                k = keys.setdefault(self.key(v.asset_id), len(keys) + 1)
                args.extend((str(k), str(v.series_id), str(int(v.ts)), f"{int(v.ts)} {float(v.value)!r}"))
        written = sorted({p.asset_id for p in places.values() if p.is_system})
        sub_keys = [self.subscriptions_key(s) for s in written]
        pipe = self.client.pipeline(transaction=False)
        self._set_if_newer(keys=list(keys), args=args, client=pipe)
        if written:  # after the values: a roll-up read from now on sees them
            self._invalidate_composites(keys=sub_keys, args=[self.namespace], client=pipe)
        answers = pipe.execute()
        missing = answers[-1] if written else []
        if missing:  # sets never built or lost: from the database, then drop what they name
            subs = self._rebuild_subscriptions([written[int(i) - 1] for i in missing])
            self._drop_composites({c for cs in subs.values() for c in cs})

    def _drop_composites(self, composite_ids: Iterable[int]) -> None:
        ids = sorted(set(composite_ids))
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for cid in ids:
            pipe.delete(self.composite_key(cid))
            pipe.incr(f"{self.composite_key(cid)}:gen")
        pipe.execute()

    def _catch_up(self) -> None:
        """Send what an outage held back. If more series were held than MAX_PENDING,
        Redis cannot be trusted: drop its hashes and subscription sets, reads refill
        them from the database."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            lost, self._lost = self._lost, False
            dirty, self._dirty_subscriptions = sorted(self._dirty_subscriptions), set()
        try:
            if lost:
                for pattern in ("latest:asset:*", "latest:system:*", "latest:composite:*", "subscriptions:system:*"):
                    keys = list(self.client.scan_iter(match=f"{self.namespace}{pattern}", count=1000))
                    for i in range(0, len(keys), 1000):
                        self.client.delete(*keys[i:i + 1000])
            if pending:
                self._send(pending)
            if dirty:
                self._rebuild_subscriptions(dirty)
        except redis.RedisError:
            with self._lock:
                self._lost = self._lost or lost
                self._dirty_subscriptions.update(dirty)
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


def _series_points(main_reader: Engine, series_ids: list[int]) -> dict[int, SeriesPoint]:
    out: dict[int, SeriesPoint] = {}
    with main_reader.connect() as conn:
        for i in range(0, len(series_ids), 500):
            chunk = series_ids[i:i + 500]
            for sid, aid, key, unit, system_id in conn.execute(
                    select(points.c.id, points.c.asset_id, points.c.key, points.c.unit, systems.c.asset_id)
                    .outerjoin(systems, systems.c.asset_id == points.c.asset_id)
                    .where(points.c.id.in_(chunk))):
                out[sid] = SeriesPoint(aid, key, unit, system_id is not None)
    return out


def _parse(text: str | None) -> tuple[int, float] | None:
    """(ts, value) of a hash field ("<ts> <value>" or a system's JSON), or None for an
    absent or unreadable one (the database answers for it and the write-back replaces it)."""
    if text is None:
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            return int(obj["timestamp"]), float(obj["value"])
        except (ValueError, TypeError, KeyError):
            return None
    ts, _, value = text.partition(" ")
    try:
        return int(ts), float(value)
    except ValueError:
        return None
