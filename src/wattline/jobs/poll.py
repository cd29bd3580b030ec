"""Minute polling (seed 003): the latest values of every active system, through the
one pipeline, one session row per poll.

A :class:`Poller` lives as long as its process (``wattline serve``, ``wattline poll``):

* each system is polled at its vendor's ``poll_interval_s`` (adapter class; 60 s by
  default), judged from the start of its last poll (``system_poll_state``);
* polls run as asyncio tasks under one semaphore (bounded concurrency, no batches
  waiting for their slowest member), each under its own timeout, so a slow or failing
  system never delays another;
* a system whose previous poll still runs is skipped and counted, never queued;
* a scheduled tick (``start_due(spread=True)``) spreads its polls over the minute,
  each system at a fixed place of its own (``spread_offset_s``), so a fleet's answers
  arrive evenly instead of all at the tick and are written as they come (Prometheus
  spreads its scrapes the same way); such a poll claims its system when its place
  comes, and is skipped as an overrun only if the previous one, a tick earlier, still
  runs then;
* calls go through the account's shared rate limiter (``ctx.limiters``); time spent
  waiting for it does not count against the poll's timeout (the vendor is not slow,
  the account is busy), but a wait longer than ``limiter_wait_s`` fails the poll at
  once with the code ``rate_limited`` (a clear "rate-limited" error, not a timeout);
* polls that finish close together are written together: one pipeline batch, one
  sessions transaction (a poll waits at most 50 ms for company);
* after :data:`~wattline.domain.systems.FAILURES_TO_ERROR` consecutive failures a
  system shows ``error``, and ``active`` again on its next success.

Database work runs in worker threads, never on the event loop. A poll claims its
system in ``system_poll_state`` (a lease of the timeout plus a minute), so two
processes (``wattline serve`` and ``wattline poll``) never poll one system at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

from wattline import clock, logs
from wattline.context import AppContext
from wattline.domain import systems as rules
from wattline.jobs.fetching import VendorSession, fetch_log_rows, records_to_batch
from wattline.jobs.plants import VendorPlantInfo
from wattline.jobs.sync import concat
from wattline.sources.vendors.errors import VendorError
from wattline.sources.vendors.models import FetchResult, VendorRecord
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import registry_version, sessions_repo, sync_logs_repo, systems_repo
from wattline.store.device_telemetry import raw_event_ids
from wattline.store.engines import write_transaction

log = logs.get("wattline.poll")
DEFAULT_INTERVAL_S = 60
TICK_S = 60  # the scheduler's ticks (wattline serve, wattline poll, the workers' minute job)
# a spread window ends this long before the next tick: the last places' claims (behind
# a write batch on SQLite) and starts are done before it (5 s left 231 of 10,000 polls
# still waiting for their claims at the next tick, skipped)
SPREAD_MARGIN_S = 10
SLACK_S = 5  # a tick a few seconds early (scheduler jitter) still counts as due
CONNECTIONS_PER_ACCOUNT = 32
LEASE_MARGIN_S = 60  # a claim outlives the poll's timeout by this much (writing), then expires
LIMITER_WAIT_S = 30.0  # the longest a poll waits for its account's limiter before failing as rate-limited
# the poll writer per telemetry database: (most polls a batch, batches at once). SQLite
# has one writer: a second batch only waits for its lock (10,000 systems: 9.8 ms of batch
# time a poll with 2 slots of 128, 5.3 ms with 1 of 512). PostgreSQL writes batches side
# by side, each holding an advisory lock per series (~11 a poll) until it commits: 2 x 128
# keeps a poller near 2,800 of the server's 6,400 default lock slots.
SQLITE_WRITER = (512, 1)
POSTGRES_WRITER = (128, 2)


def writer_defaults(dialect: str) -> tuple[int, int]:
    """The poll writer's (most polls a batch, batches at once) for a telemetry database."""
    return SQLITE_WRITER if dialect == "sqlite" else POSTGRES_WRITER


# The fleet's registry as last read, per main database handle: (registry version,
# systems, transform versions). Shared by the process's pollers (the engine's ``poll``
# job makes one a tick); read again whenever the version moved (see Poller._registry).
_REGISTRIES: weakref.WeakKeyDictionary[Any, tuple[int, list[VendorPlantInfo], dict]] = weakref.WeakKeyDictionary()


@dataclass
class _PollClock:
    """The running poll's timeout and what is left of its limiter-wait budget (s)."""

    timeout: asyncio.Timeout
    wait_left_s: float


_POLL: contextvars.ContextVar[_PollClock | None] = contextvars.ContextVar("poll_clock", default=None)


class RateLimitedWait(Exception):
    """A poll's call would wait longer than it may for its account's rate limiter."""

    code = "rate_limited"


class _PollLimiter:
    """The account's shared limiter as polls see it: while a poll waits for a slot its
    timeout is paused (and moved on by the wait); waits beyond the poll's budget
    (``limiter_wait_s`` in all) raise :class:`RateLimitedWait`. Everything else is the
    shared limiter's."""

    def __init__(self, inner) -> None:
        self._inner = inner

    async def acquire(self) -> None:
        poll = _POLL.get()
        if poll is None:  # not inside a poll
            return await self._inner.acquire()
        tm, loop = poll.timeout, asyncio.get_running_loop()
        deadline, t0 = tm.when(), loop.time()
        tm.reschedule(None)
        try:
            async with asyncio.timeout(max(poll.wait_left_s, 0.0)):
                await self._inner.acquire()
        except TimeoutError:
            raise RateLimitedWait("rate-limited: the account's rate limiter had no free call within "
                                  "the poll's limiter wait") from None
        finally:
            waited = loop.time() - t0
            poll.wait_left_s -= waited
            if deadline is not None:
                tm.reschedule(deadline + waited)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def in_shard(system_id: int, shard: tuple[int, int]) -> bool:
    """Whether ``system_id`` belongs to shard ``(k, n)`` of a tick split over n jobs."""
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, not {shard}")
    return system_id % n == k


def spread_offset_s(system_id: int, window_s: float) -> float:
    """When, within a tick's spread window of ``window_s`` seconds, a system's poll
    starts: a fixed share of the window per system, so it keeps its place minute after
    minute. Fibonacci hashing: consecutive ids land far apart, any range of ids evenly."""
    return ((int(system_id) * 0x9E3779B97F4A7C15) % 2**64) / 2**64 * max(window_s, 0.0)


def poll_interval_s(vendor_type: str) -> int:
    """Seconds between two polls of a system of this vendor."""
    return int(getattr(get_adapter_class(vendor_type), "poll_interval_s", DEFAULT_INTERVAL_S))


@dataclass
class PollOutcome:
    system_id: int
    vendor_type: str
    success: bool
    readings: int = 0
    started_at_ms: int = 0
    duration_ms: int = 0
    error: str | None = None
    status: str = "active"
    skipped: bool = False  # a spread tick's poll skipped at its start: the previous one still ran


@dataclass
class PollReport:
    """What one tick did: polls finished, systems skipped because still running, not due."""

    outcomes: list[PollOutcome] = field(default_factory=list)
    skipped_running: list[int] = field(default_factory=list)
    not_due: int = 0

    def to_dict(self) -> dict:
        ok = sum(o.success for o in self.outcomes)
        return {"polled": len(self.outcomes), "succeeded": ok, "failed": len(self.outcomes) - ok,
                "readings": sum(o.readings for o in self.outcomes), "skippedRunning": self.skipped_running,
                "notDue": self.not_due, "errors": [{"systemId": o.system_id, "vendor": o.vendor_type,
                                                    "error": o.error} for o in self.outcomes if not o.success]}


class Poller:
    """Polls systems; holds the in-flight set and the vendor session of its process.

    ``timeout_s``: the most one system's poll may take (s), waits for the account's
    rate limiter not counted; ``spread_s``: a spread tick's window (s); default per
    vendor, :meth:`spread_window_s`; ``limiter_wait_s``: the longest one call of a poll waits
    for the limiter before the poll fails as ``rate_limited``; ``call_timeout_s``: one
    HTTP call's; ``concurrency``: polls at once (default: the ``poll_concurrency``
    setting, ``WATTLINE_POLL_CONCURRENCY``); ``writer_batch``, ``writer_slots``: the
    most polls written as one batch, and batches written at once (see :class:`_Writer`;
    default by database, :func:`writer_defaults`).
    """

    def __init__(self, ctx: AppContext, *, concurrency: int | None = None, timeout_s: float = 30.0,
                 call_timeout_s: float = 10.0, retry_waits_s: tuple[float, ...] | None = (0.5, 1.0),
                 limiter_wait_s: float = LIMITER_WAIT_S, writer_batch: int | None = None,
                 writer_slots: int | None = None, spread_s: float | None = None):
        self.ctx = ctx
        self.timeout_s = timeout_s
        self.spread_s = spread_s
        self.limiter_wait_s = limiter_wait_s
        if concurrency is None:
            concurrency = ctx.settings.poll_concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._session_kw = dict(timeout_s=call_timeout_s, retry_waits_s=retry_waits_s,
                                max_connections=min(concurrency, CONNECTIONS_PER_ACCOUNT),
                                wrap_limiter=_PollLimiter)
        # one HTTP pool per vendor account: httpcore's pool bookkeeping grows with its
        # connections per request (measured: 19 ms of CPU per poll with one pool of 256
        # connections for 300 systems, most of it in the pool)
        self._sessions: dict[int, VendorSession] = {}
        batch, slots = writer_defaults(ctx.dbs.telemetry.dialect.name)
        self._writer = _Writer(ctx, max_items=writer_batch or batch, max_flushes=writer_slots or slots)
        self._running: dict[int, asyncio.Task] = {}  # polls that hold their system's claim
        self._scheduled: dict[int, asyncio.Task] = {}  # spread polls waiting for their place
        self._claims = _Claims(self)
        self._making: dict[int, asyncio.Lock] = {}  # vendor account id -> making its adapter
        self._tick_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="poll-tick")
        self.overruns = 0  # polls skipped because the previous one still ran
        self.registry_reads = {"read": 0, "cached": 0}  # ticks that read the registry / reused it

    async def aclose(self) -> None:
        cancelled = list(self._running)
        waiting = list(self._running.values()) + list(self._scheduled.values())
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        if cancelled:  # their claims: free at once rather than when the lease ends
            await asyncio.to_thread(sessions_repo.release, self.ctx.dbs.telemetry, cancelled)
        for session in self._sessions.values():
            await session.aclose()
        self._sessions.clear()
        self._tick_thread.shutdown(wait=False)

    def _adapter(self, s: VendorPlantInfo):
        session = self._sessions.get(s.vendor_account_id)
        if session is None:
            session = self._sessions[s.vendor_account_id] = VendorSession(self.ctx, **self._session_kw)
        return session.adapter_for(s)

    async def _in_tick_thread(self, fn, *args):
        """A tick's query, on the poller's own thread: behind the writes of finished
        polls in the default executor a 10,000-system tick took 25-79 s to start."""
        return await asyncio.get_running_loop().run_in_executor(self._tick_thread, functools.partial(fn, *args))

    async def _adapter_off_loop(self, s: VendorPlantInfo):
        """The account's adapter; its first making (credentials decrypted, the limiter
        seeded from the call logs: a query) runs in a worker thread, one at a time per
        account, so a tick's thousands of first polls never block the event loop."""
        session = self._sessions.get(s.vendor_account_id)
        if session is not None and session.has_adapter(s.vendor_account_id):
            return self._adapter(s)
        lock = self._making.setdefault(s.vendor_account_id, asyncio.Lock())
        async with lock:
            session = self._sessions.get(s.vendor_account_id)
            if session is not None and session.has_adapter(s.vendor_account_id):  # made while we waited
                return self._adapter(s)
            return await asyncio.to_thread(self._adapter, s)

    # -- ticks --------------------------------------------------------------------------

    def spread_window_s(self, vendor_type: str) -> float:
        """The part of a tick's minute (or of a shorter interval) a spread tick's polls
        of this vendor start in: all of it but :data:`SPREAD_MARGIN_S`. Within the minute
        even for an hourly vendor, so the ticks' polls of a fleet spread the same way each
        minute."""
        if self.spread_s is not None:
            return max(self.spread_s, 0.0)
        return max(min(poll_interval_s(vendor_type), TICK_S) - SPREAD_MARGIN_S, 0.0)

    async def start_due(self, *, cause: str = "CRON", system_ids: list[int] | None = None,
                        force: bool = False, shard: tuple[int, int] | None = None, spread: bool = False,
                        ) -> tuple[list[asyncio.Task], PollReport]:
        """Start a poll of every due system not already being polled; returns at once
        with the started tasks (a scheduler tick never waits for a slow vendor).
        ``spread``: each poll starts at its system's place in the spread window
        (:func:`spread_offset_s`) rather than now: the scheduler's ticks."""
        if cause not in rules.POLL_CAUSES:
            raise ValueError(f"cause must be one of {rules.POLL_CAUSES}")
        called_at = asyncio.get_running_loop().time()  # places count from here, not from the queries' end
        systems, versions = await self._registry(system_ids)
        if shard is not None:  # ``(k, n)``: this tick polls the systems whose id is k modulo n
            systems = [s for s in systems if in_shard(s.plant_id, shard)]
        states = await self._in_tick_thread(sessions_repo.poll_states, self.ctx.dbs.telemetry,
                                             [s.plant_id for s in systems]) if systems else {}
        now_ms = int(clock.now() * 1000)
        report, tasks, overran, due = PollReport(), [], [], []
        for s in systems:
            last = states.get(s.plant_id, {}).get("last_poll_ms")
            if not force and last is not None and now_ms - last < (poll_interval_s(s.vendor_type) - SLACK_S) * 1000:
                report.not_due += 1
            elif s.plant_id in self._running and not spread:  # overrun: skip, never queue
                overran.append(s.plant_id)  # (a spread poll is judged at its place)
            else:
                due.append(s)
        if spread:  # each claims and starts at its place in the window, counted from the tick
            for s in due:
                if s.plant_id in self._scheduled:  # the previous spread tick's, not started yet
                    overran.append(s.plant_id)
                    continue
                at = called_at + spread_offset_s(s.plant_id, self.spread_window_s(s.vendor_type))
                task = asyncio.create_task(self._spread_poll(s, cause, versions, now_ms, at),
                                           name=f"poll-{s.plant_id}")
                self._scheduled[s.plant_id] = task
                tasks.append(task)
            due = []
        # the claim keeps another process (or a concurrent tick) from polling it too
        claimed = await self._in_tick_thread(sessions_repo.claim, self.ctx.dbs.telemetry,
                                          [s.plant_id for s in due], now_ms, self._lease_ms()) if due else set()
        for s in due:
            if s.plant_id not in claimed or s.plant_id in self._running:
                overran.append(s.plant_id)
                continue
            task = asyncio.create_task(self._poll(s, cause, versions, now_ms), name=f"poll-{s.plant_id}")
            self._track(s.plant_id, task)
            tasks.append(task)
        report.skipped_running = overran
        if overran:
            await self._count_overruns(overran)
        return tasks, report

    def _lease_ms(self) -> int:
        return int((self.timeout_s + self.limiter_wait_s + LEASE_MARGIN_S) * 1000)

    def _track(self, system_id: int, task: asyncio.Task) -> None:
        self._running[system_id] = task
        task.add_done_callback(lambda t, sid=system_id: self._running.pop(sid, None)
                               if self._running.get(sid) is t else None)

    async def _count_overruns(self, system_ids: list[int]) -> None:
        self.overruns += len(system_ids)
        log.warning("poll.overrun_skipped", count=len(system_ids), systems=system_ids[:50])
        await self._in_tick_thread(sessions_repo.count_overruns, self.ctx.dbs.telemetry, system_ids)

    async def _spread_poll(self, s: VendorPlantInfo, cause: str, versions: dict, tick_ms: int,
                           at: float) -> PollOutcome:
        """A spread tick's poll: at its place it claims its system (gathered with the
        others starting then into one claim) and polls, or, its previous poll still
        running there or elsewhere, is skipped as an overrun: judged when it would
        start, not at the tick, since the previous one started a whole tick earlier."""
        me = asyncio.current_task()
        # cancelled (shutdown) while its claim is being made: the claim, if made, lapses
        # with its lease (timeout + limiter wait + margin) rather than being released
        try:
            await asyncio.sleep(max(at - asyncio.get_running_loop().time(), 0.0))  # loop time of its place
            got = s.plant_id not in self._running and await self._claims.claim(s.plant_id)
        finally:
            if self._scheduled.get(s.plant_id) is me:
                self._scheduled.pop(s.plant_id)
        if not got:
            await self._count_overruns([s.plant_id])
            return PollOutcome(s.plant_id, s.vendor_type, False, skipped=True, error="still being polled")
        self._track(s.plant_id, me)
        return await self._poll(s, cause, versions, tick_ms)

    async def _registry(self, system_ids: list[int] | None) -> tuple[list[VendorPlantInfo], dict]:
        """The pollable systems and their points' transforms. The whole fleet's is kept
        between ticks and read again only when the registry's version moved (a system
        added, paused, removed; a point, transform or account edited): rebuilding 10,000
        systems and 113,000 series took up to 54 s of a tick's start."""
        if system_ids is not None:  # a few systems asked for by id: read them now
            systems = await self._in_tick_thread(systems_repo.pollable_systems, self.ctx.dbs.main_reader,
                                                 system_ids)
            return systems, await self._in_tick_thread(self._transforms, systems)
        reader = self.ctx.dbs.main_reader
        # the version first: a write committed after it shows as a new version next tick
        version = await self._in_tick_thread(registry_version.current, reader)
        cached = _REGISTRIES.get(reader)
        if version is not None and cached is not None and cached[0] == version:
            self.registry_reads["cached"] += 1
            return cached[1], cached[2]
        systems = await self._in_tick_thread(systems_repo.pollable_systems, reader, None)
        versions = await self._in_tick_thread(self._transforms, systems)
        if version is not None:
            _REGISTRIES[reader] = (version, systems, versions)
        else:
            _REGISTRIES.pop(reader, None)
        self.registry_reads["read"] += 1
        return systems, versions

    async def poll(self, *, cause: str = "CRON", system_ids: list[int] | None = None,
                   force: bool = False, shard: tuple[int, int] | None = None, spread: bool = False) -> PollReport:
        """One tick, waiting for the polls it started (``wattline poll --once``, the API,
        a worker's minute job)."""
        tasks, report = await self.start_due(cause=cause, system_ids=system_ids, force=force, shard=shard,
                                             spread=spread)
        done = await asyncio.gather(*tasks)
        report.outcomes = [o for o in done if not o.skipped]
        report.skipped_running += [o.system_id for o in done if o.skipped]
        return report

    # -- one system -----------------------------------------------------------------------

    def _transforms(self, systems: list[VendorPlantInfo]) -> dict[int, list[tuple[int, dict]]]:
        with self.ctx.dbs.main_reader.connect() as conn:
            return systems_repo.transform_versions(conn, [sid for s in systems for sid in s.series.values()])

    async def _poll(self, s: VendorPlantInfo, cause: str, versions: dict, tick_ms: int | None = None
                    ) -> PollOutcome:
        async with self._sem:  # bounds the vendor calls; writing does not hold a slot
            t0 = clock.now()
            fetched, code, error = FetchResult(), None, None
            try:
                async with asyncio.timeout(self.timeout_s) as tm:
                    _POLL.set(_PollClock(tm, self.limiter_wait_s))
                    adapter = await self._adapter_off_loop(s)
                    fetched = await adapter.fetch_latest(s.vendor_plant_id, s.timezone)
            except VendorError as exc:
                code, error = exc.code or type(exc).__name__, str(exc)
                fetched = exc.partial or FetchResult(calls=list(exc.calls or ()))
            except RateLimitedWait:
                code, error = RateLimitedWait.code, (f"rate-limited: the account's rate limiter had no free call "
                                                     f"within {self.limiter_wait_s:g} s (the vendor was not asked)")
            except TimeoutError:
                code, error = "timeout", f"no answer within {self.timeout_s:g} s"
            except Exception as exc:  # noqa: BLE001 - one system never stops the others
                code, error = type(exc).__name__, str(exc) or type(exc).__name__
        session, failures = await self._writer.write(_Fetched(s, cause, t0, fetched, code, error, versions, tick_ms))
        status = rules.effective_status("active", failures)
        if not session["success"]:
            log.warning("poll.failed", system_id=s.plant_id, vendor=s.vendor_type, error=session["error"],
                        consecutive_failures=failures, status=status)
        return PollOutcome(s.plant_id, s.vendor_type, session["success"], session["num_readings"],
                           session["started_at_ms"], session["duration_ms"], session["error"], status)


class _Claims:
    """The claims of spread polls reaching their places close together, made as one
    (``sessions_repo.claim``): ten thousand systems over a minute are a few claim
    transactions a second, not 170."""

    def __init__(self, poller: Poller, max_wait_s: float = 0.1) -> None:
        self._poller = poller
        self.max_wait_s = max_wait_s
        self._pending: dict[int, asyncio.Future] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task] = set()  # held: the loop keeps only weak references

    async def claim(self, system_id: int) -> bool:
        loop = asyncio.get_running_loop()
        future = self._pending.get(system_id)
        if future is None:
            future = self._pending[system_id] = loop.create_future()
        if self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._start_flush)
        return await asyncio.shield(future)

    def _start_flush(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, {}
        p = self._poller
        try:
            got = await p._in_tick_thread(sessions_repo.claim, p.ctx.dbs.telemetry, list(pending),
                                          int(clock.now() * 1000), p._lease_ms())
        except Exception as exc:  # noqa: BLE001 - each waiting poll learns of it
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(exc)
            return
        for sid, fut in pending.items():
            if not fut.done():
                fut.set_result(sid in got)


@dataclass
class _Fetched:
    """One system's answer, waiting to be written."""

    system: VendorPlantInfo
    cause: str
    started: float  # epoch s
    fetched: FetchResult
    code: str | None
    error: str | None
    versions: dict
    #: the tick that started it (epoch ms): when the system is next due is counted from
    #: here, not from when the poll got a slot: a poll that waited 20 s for one is still
    #: due at the next minute's tick
    tick_ms: int | None = None


class _Writer:
    """Writes the polls that finish close together as one: one pipeline batch for all
    their readings, one transaction for their sessions (the pipeline's cost is mostly
    per batch). At most ``max_flushes`` batches are written at once; a poll waits at
    most ``max_wait_s`` for company when a slot is free, and while every slot is busy
    the polls that finish meanwhile gather into the next batch (up to ``max_items``),
    so batches grow with the backlog instead of queueing up small."""

    def __init__(self, ctx: AppContext, *, max_items: int = 128, max_wait_s: float = 0.05,
                 max_flushes: int = 2) -> None:
        if max_items < 1 or max_flushes < 1:
            raise ValueError("max_items and max_flushes must be at least 1")
        self.ctx = ctx
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        # On PostgreSQL a batch takes an advisory lock per series (~11 a system) until it
        # commits; six flushes of 256 polls at once ran the server's shared lock table out
        # ("out of shared memory", 6,400 locks by default). Bounded: ~2,800 a poller.
        self.max_flushes = max_flushes
        self._writing = 0  # batches being written
        self._pending: list[tuple[_Fetched, asyncio.Future, float]] = []  # (poll, its future, enqueued at)
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task] = set()
        #: batches written, polls in them, seconds spent writing (benches, progress lines)
        self.stats = {"batches": 0, "polls": 0, "write_s": 0.0}

    async def write(self, item: _Fetched) -> tuple[dict, int]:
        """The session written for ``item``, and the system's consecutive failures."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future, loop.time()))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        """Start batches while a slot is free and the pending polls fill one or the
        oldest has waited ``max_wait_s``; otherwise wait for that (or for a slot: a
        batch that ends calls this again)."""
        loop = asyncio.get_running_loop()
        while self._pending and self._writing < self.max_flushes:
            due_at = self._pending[0][2] + self.max_wait_s
            if len(self._pending) < self.max_items and loop.time() < due_at:
                if self._timer is None:
                    self._timer = loop.call_at(due_at, self._on_timer)
                return
            self._start()

    def _on_timer(self) -> None:
        self._timer = None
        self._schedule()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending = self._pending[:self.max_items], self._pending[self.max_items:]
        self._writing += 1
        task = asyncio.create_task(self._run([(i, f) for i, f, _ in items]))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _run(self, items: list[tuple[_Fetched, asyncio.Future]]) -> None:
        try:
            t0 = asyncio.get_running_loop().time()
            results = await asyncio.to_thread(self._write, [i for i, _ in items])
            self.stats["batches"] += 1
            self.stats["polls"] += len(items)
            self.stats["write_s"] += asyncio.get_running_loop().time() - t0
        except BaseException as exc:  # noqa: BLE001 - every waiting poll learns of it
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(exc)
            raise
        finally:
            self._writing -= 1
            self._schedule()  # the polls that gathered meanwhile
        for (_, fut), result in zip(items, results):
            if not fut.done():
                fut.set_result(result)

    def _write(self, items: list[_Fetched]) -> list[tuple[dict, int]]:
        """Readings through the pipeline, calls and rejected records logged, sessions
        written (blocking)."""
        batches, counts = [], []
        for it in items:
            s = it.system
            records = [_transformed(rec, s.series, it.versions) for rec in it.fetched.records]
            batch = records_to_batch(s, records, f"vendor:{s.vendor_type}") if records else None
            counts.append(len(batch) if batch is not None else 0)
            if counts[-1]:
                batches.append(batch)
        store_error = None
        if batches:
            try:
                self.ctx.pipeline.ingest(concat(batches), refresh_summaries=False)
            except Exception as exc:  # noqa: BLE001 - recorded in the sessions, not lost
                store_error = f"storing failed: {exc}"
                log.error("poll.store_failed", systems=[it.system.plant_id for it in items], error=str(exc))
        end = clock.now()
        sessions = []
        for it, n in zip(items, counts):
            error, code = it.error, it.code
            if store_error and n:
                error, code, n = error or store_error, code or "store", 0
            recs = it.fetched.records
            sessions.append(dict(
                system_id=it.system.plant_id, vendor_type=it.system.vendor_type, cause=it.cause,
                started_at_ms=int(it.started * 1000), duration_ms=int(round((end - it.started) * 1000)),
                success=error is None, vendor_error_code=code, error=error, num_readings=n, tick_ms=it.tick_ms,
                raw_event_id=raw_event_ids([recs[-1].raw])[0] if recs and n else None))
        return list(zip(sessions, self._record(items, sessions)))

    def _record(self, items: list[_Fetched], sessions: list[dict]) -> list[int]:
        """The calls' log rows and the sessions in one transaction (a round trip less
        than two); if that fails, the sessions alone. Each system's consecutive failures."""
        telemetry = self.ctx.dbs.telemetry
        try:
            call_logs = fetch_log_rows([(it.system, it.fetched) for it in items], "poll")
            with write_transaction(telemetry) as conn:
                sync_logs_repo.add_in(conn, call_logs)
                return sessions_repo.record_many_in(conn, sessions)
        except Exception as exc:  # noqa: BLE001 - the sessions still count
            log.error("poll.call_log_failed", systems=[it.system.plant_id for it in items], error=str(exc))
        try:
            return sessions_repo.record_many(telemetry, sessions)
        except Exception as exc:  # noqa: BLE001 - the telemetry database is down: say so, go on
            log.error("poll.sessions_not_written", systems=[x["system_id"] for x in sessions], error=str(exc))
            return [0 if x["success"] else rules.FAILURES_TO_ERROR for x in sessions]


def _transformed(rec: VendorRecord, series: dict[str, int], versions: dict) -> VendorRecord:
    """The record with each point's transform in force at its instant applied (the raw
    record stays as the vendor sent it)."""
    if not versions:
        return rec
    values = {k: rules.apply_transform(v, rules.transform_at(versions.get(series.get(k), ()), rec.ts))
              for k, v in rec.values.items()}
    return replace(rec, values=values)


async def poll_once(ctx: AppContext, *, cause: str = "USER", force: bool = False,
                    shard: tuple[int, int] | None = None, **kw) -> PollReport:
    """A throw-away poller for one tick (CLI ``--once``, an engine job, tests)."""
    poller = Poller(ctx, **kw)
    try:
        return await poller.poll(cause=cause, force=force, shard=shard)
    finally:
        await poller.aclose()
