"""The simulator as a telemetry source: registry entries, live rounds, replays.

Like every other source, the simulator only *produces* readings and hands them to
the pipeline (one entry point, rule "sources never write tables"). It is given its
collaborators as :class:`~wattline.simulator.ports.SimulatorPorts`: the pipeline, the
provisioning service for its sites and points, and a state repository keeping each
site's battery, counters and last simulated instant, so that a restarted live
service continues exactly where it stopped. It imports no store.

* :func:`register_sites` -- one ``site`` asset per :class:`SiteSpec` and one point
  per simulated metric (idempotent).
* :class:`LiveService` -- a round = one reading per metric per site for the
  interval that just ended, one :class:`ReadingBatch` for the whole fleet;
  :meth:`LiveService.run_forever` aligns rounds to the wall clock and stops
  cleanly between rounds.
* :func:`replay_into_db` -- vectorised replay of a period, ingested in bounded
  batches with a progress callback.

Replaying *as vendor-cloud history* (what a vendor API would serve for a plant)
is not done here: the emulated clouds compute it on demand with
:func:`wattline.simulator.plant.plant_history`.

Consistency of a restart
------------------------
A round ingests first and saves state second (the pipeline owns its own
transaction, so the two cannot share one). The failure modes and what they leave:

* ingest fails: no readings; the sites' in-memory state is rolled back to the
  start of the round, so the next round re-simulates the interval (the simulator
  catches up a gap in sub-steps) and no energy is lost or counted twice;
* ingest succeeds, state save fails (or the process dies in between): the stored
  state is one or more rounds behind the stored readings. On restore the service
  looks up the newest stored reading of each site and fast-forwards the saved
  state to it. The simulator is deterministic, so this reproduces exactly the
  state the lost round had produced; the counters are then checked against the
  stored counter readings and, should they differ (state lost altogether, site
  spec changed), continued from the stored values so no counter ever goes back.
"""

from __future__ import annotations

from wattline import clock

import hashlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from wattline import logs
from wattline.domain.readings import ReadingBatch
from wattline.domain.sources import PointDefinition
from wattline.simulator.engine import COUNTERS, METRICS, SiteState
from wattline.simulator.live import STATE_VERSION, LiveSimulator, SiteSample, StepResult
from wattline.simulator.ports import SavedState, SimulatorPorts
from wattline.simulator.replay import ReplayRun, step_grid
from wattline.simulator.sites import SiteSpec

log = logs.get("wattline.simulator")

SOURCE = "simulator"
ASSET_PREFIX = "sim "
ANCHOR_METRIC = "load_energy_kwh"  # every site has it; its newest reading dates a site's data
DEFAULT_MAX_BATCH = 200_000

SeriesMap = dict[str, dict[str, int]]
ProgressCallback = Callable[[int, int], None]


# -- registry -----------------------------------------------------------------------


def asset_name(site: SiteSpec) -> str:
    """Name of a simulated site's asset (asset names are unique)."""
    return f"{ASSET_PREFIX}{site.name}"


def site_metrics(site: SiteSpec) -> list[str]:
    """Keys of :data:`METRICS` a site reports (battery metrics only with a battery)."""
    return [k for k, m in METRICS.items() if site.battery is not None or not m.battery]


def spec_fingerprint(site: SiteSpec) -> str:
    """Short hash of a site's full spec: saved state only applies to the same spec."""
    text = json.dumps(site.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def register_sites(ports: SimulatorPorts, sites: Sequence[SiteSpec], interval_s: int = 300, *,
                   errors: dict[str, str] | None = None) -> SeriesMap:
    """Create (or find) one ``site`` asset per site and one point per metric, through
    the provisioning service (``ports.sites``).

    Idempotent: a second call finds the assets by name and returns the same series
    ids. Each site is registered in its own transaction; with ``errors`` given, a
    site that cannot be registered (e.g. an unknown timezone) is left out and its
    reason recorded there, otherwise the first failure raises.

    Returns
    -------
    dict of site id to (metric key -> series id)
    """
    out: SeriesMap = {}
    for site in sites:
        try:
            out[site.id] = _register_one(ports, site, int(interval_s))
        except Exception as exc:  # noqa: BLE001 - one bad site must not stop the fleet
            if errors is None:
                raise
            errors[site.id] = f"not registered: {type(exc).__name__}: {exc}"
            log.error("simulate.site_not_registered", site=site.id, error=str(exc))
    return out


def _register_one(ports: SimulatorPorts, site: SiteSpec, interval_s: int) -> dict[str, int]:
    points = [PointDefinition(k, METRICS[k].metric_type, expected_interval_s=interval_s)
              for k in site_metrics(site)]
    # the same name with another seed: the registrar updates location and capacity
    return ports.sites.ensure_site(asset_name(site), site.timezone, points, latitude=site.latitude,
                                   longitude=site.longitude, capacity_kw=site.pv_capacity_kwp)


# -- state persistence --------------------------------------------------------------


def _saved_state(site: SiteSpec, state: SiteState, interval_s: int, now: datetime) -> SavedState:
    doc = {"version": STATE_VERSION, "spec": spec_fingerprint(site), "interval_s": int(interval_s),
           "site": state.to_dict()}
    return SavedState(site.id, doc, state.last_ts, now)


def save_states(ports: SimulatorPorts, sites: Iterable[SiteSpec], states: Mapping[str, SiteState],
                interval_s: int) -> int:
    """Save the states of ``sites`` (one transaction); returns how many."""
    now = clock.now_dt()
    rows = [_saved_state(s, states[s.id], interval_s, now) for s in sites if s.id in states]
    if rows:
        ports.state.save(rows)
    return len(rows)


def load_states(ports: SimulatorPorts, sites: Sequence[SiteSpec]) -> tuple[dict[str, SiteState], dict[str, str]]:
    """Saved states of ``sites`` whose spec is unchanged, plus notes on the others."""
    by_id = {s.id: s for s in sites}
    out: dict[str, SiteState] = {}
    notes: dict[str, str] = {}
    if not by_id:
        return out, notes
    for key, doc in ports.state.load(sorted(by_id)).items():
        try:
            if isinstance(doc, str):
                doc = json.loads(doc)
            if doc.get("version") != STATE_VERSION:
                notes[key] = f"saved state has version {doc.get('version')!r}; starting fresh"
                continue
            if doc.get("spec") != spec_fingerprint(by_id[key]):
                notes[key] = "site spec changed since the state was saved; starting fresh"
                continue
            out[key] = SiteState.from_dict(doc["site"])
        except Exception as exc:  # noqa: BLE001 - a corrupt row costs that site its state only
            notes[key] = f"unreadable saved state ({type(exc).__name__}: {exc}); starting fresh"
    return out, notes


def _latest_readings(ports: SimulatorPorts, series: SeriesMap, site_ids: Iterable[str]) -> dict[str, int]:
    """Newest stored reading time of each site (by its anchor counter series)."""
    anchor = {series[s][ANCHOR_METRIC]: s for s in site_ids if ANCHOR_METRIC in series.get(s, {})}
    if not anchor:
        return {}
    return {anchor[sid]: ts for sid, ts in ports.state.newest_reading_ts(anchor).items()}


def _stored_counters(ports: SimulatorPorts, series: Mapping[str, int], ts: int) -> dict[str, float]:
    ids = {series[k]: k for k in COUNTERS if k in series}
    if not ids:
        return {}
    return {ids[sid]: v for sid, v in ports.state.values_at(ids, ts).items()}


# -- live mode ----------------------------------------------------------------------


@dataclass(frozen=True)
class SiteLine:
    """What the console shows of one site after a round."""

    site_id: str
    name: str
    ts: int
    solar_kw: float
    soc_pct: float | None
    load_kw: float
    grid_kw: float  # + import, - export


@dataclass
class RoundResult:
    ts: int
    lines: list[SiteLine] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    readings: int = 0
    state_saved: bool = False
    seconds: float = 0.0


@dataclass
class RestoreReport:
    restored: list[str] = field(default_factory=list)  # sites continuing from saved state
    fresh: list[str] = field(default_factory=list)  # sites starting anew
    fast_forwarded: dict[str, int] = field(default_factory=dict)  # site -> newest stored reading
    counters_adopted: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


class LiveService:
    """Live mode: every round, one reading per metric per site, through the pipeline.

    Parameters
    ----------
    ports : SimulatorPorts
        The pipeline, the site registrar and the state repository.
    sites : sequence of SiteSpec
        E.g. ``default_sites(n, seed)``: the fleet is a pure function of ``(n, seed)``.
    interval_s : int
        Round interval (60, 300, ...). Rounds fall on multiples of it.
    restore : bool
        Restore the saved state now (default; the sites are always registered).
    max_catchup_s : int
        Longest gap a restart or a late round simulates (see :class:`LiveSimulator`).
    """

    def __init__(self, ports: SimulatorPorts, sites: Sequence[SiteSpec], interval_s: int = 300, *,
                 restore: bool = True, max_catchup_s: int = 2 * 86400):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.ports = ports
        self.interval_s = int(interval_s)
        self.all_sites = tuple(sites)
        self.registration_errors: dict[str, str] = {}
        self.series = register_sites(ports, self.all_sites, self.interval_s, errors=self.registration_errors)
        self.sites = tuple(s for s in self.all_sites if s.id in self.series)
        self._by_id = {s.id: s for s in self.sites}
        self.sim = LiveSimulator(self.sites, self.interval_s, max_catchup_s=max_catchup_s)
        self.restore_report = self.restore() if restore else RestoreReport(fresh=[s.id for s in self.sites])

    # -- state -------------------------------------------------------------------

    def restore(self) -> RestoreReport:
        """Continue from the saved state, fast-forwarded to the newest stored readings."""
        report = RestoreReport()
        saved, report.notes = load_states(self.ports, self.sites)
        fresh = LiveSimulator(self.sites, self.interval_s).state_dict()["sites"]
        states: dict[str, SiteState] = {}
        for site in self.sites:
            if site.id in saved:
                states[site.id] = saved[site.id]
                report.restored.append(site.id)
            else:
                states[site.id] = SiteState.from_dict(fresh[site.id])
                report.fresh.append(site.id)
        latest = _latest_readings(self.ports, self.series, [s.id for s in self.sites])
        behind: dict[int, list[SiteSpec]] = {}
        for site in self.sites:
            ts = latest.get(site.id)
            last = states[site.id].last_ts
            if ts is not None and (last is None or ts > last):
                behind.setdefault(ts, []).append(site)
        for ts, group in behind.items():
            self._fast_forward(group, ts, states, report)
        self.sim.restore({"version": STATE_VERSION, "sites": {k: v.to_dict() for k, v in states.items()}})
        for sid, note in report.notes.items():
            log.warning("simulate.restore_note", site=sid, note=note)
        return report

    def _fast_forward(self, group: list[SiteSpec], ts: int, states: dict[str, SiteState],
                      report: RestoreReport) -> None:
        """Re-simulate the rounds whose readings were stored but whose state was not."""
        sim = LiveSimulator(group, self.interval_s, max_catchup_s=self.sim.max_catchup_s)
        sim.restore({"version": STATE_VERSION, "sites": {s.id: states[s.id].to_dict() for s in group}})
        step = sim.step(ts)
        for sample in step:
            site = self._by_id[sample.site_id]
            st = sim.site_state(site.id)
            stored = _stored_counters(self.ports, self.series[site.id], ts)
            differs = [k for k, v in stored.items()
                       if not math.isclose(st.counters_kwh.get(k, 0.0), v, rel_tol=1e-9, abs_tol=1e-9)]
            # the stored readings are the truth: continue exactly from them (in the normal
            # case they are bit-identical to the re-simulation anyway)
            st.counters_kwh.update(stored)
            if differs:
                report.counters_adopted.append(site.id)
                report.notes.setdefault(site.id, "saved state did not match the stored readings; "
                                                  "counters continue from the stored values")
            states[site.id] = st
            report.fast_forwarded[site.id] = ts
        for sid, reason in step.errors.items():
            report.notes[sid] = f"could not fast-forward to the stored readings: {reason}"

    def last_ts(self) -> int | None:
        """The newest instant any site has been simulated to."""
        known = [self.sim.site_state(s.id).last_ts for s in self.sites]
        known = [t for t in known if t is not None]
        return max(known) if known else None

    # -- rounds ------------------------------------------------------------------

    def _batch(self, samples: Sequence[SiteSample]) -> ReadingBatch:
        sid: list[int] = []
        ts: list[int] = []
        val: list[float] = []
        raw: list[int] = []
        payloads: list[dict[str, Any]] = []
        for sample in samples:
            series = self.series[sample.site_id]
            idx = len(payloads)
            payloads.append({"source": SOURCE, "site_id": sample.site_id, "ts": sample.ts,
                             "interval_s": sample.interval_s, "values": dict(sample.values)})
            for key, value in sample.values.items():
                s = series.get(key)
                if s is None:
                    continue
                sid.append(s)
                ts.append(sample.ts)
                val.append(value)
                raw.append(idx)
        return ReadingBatch(np.array(sid, np.int64), np.array(ts, np.int64), np.array(val, np.float64),
                            np.array(raw, np.int64), payloads, SOURCE)

    def _ingest(self, samples: list[SiteSample], errors: dict[str, str]) -> tuple[list[SiteSample], int]:
        """Ingest all samples in one batch; if that fails, site by site."""
        if not samples:
            return [], 0
        try:
            res = self.ports.pipeline.ingest(self._batch(samples), refresh_summaries=True)
            return samples, res.accepted + len(res.quarantined)
        except Exception as exc:  # noqa: BLE001
            log.warning("simulate.round_ingest_failed", error=f"{type(exc).__name__}: {exc}",
                        action="retrying site by site")
        ok, n = [], 0
        for sample in samples:
            try:
                res = self.ports.pipeline.ingest(self._batch([sample]), refresh_summaries=True)
            except Exception as exc:  # noqa: BLE001 - isolate the failing site
                errors[sample.site_id] = f"ingest failed: {type(exc).__name__}: {exc}"
                log.error("simulate.site_ingest_failed", site=sample.site_id, error=str(exc))
                continue
            ok.append(sample)
            n += res.accepted + len(res.quarantined)
        return ok, n

    def run_round(self, now_ts: int) -> RoundResult:
        """Simulate the interval ending at ``now_ts`` for every site, ingest, save state."""
        t0 = time.perf_counter()
        now_ts = int(now_ts)
        before = self.sim.state_dict()
        step: StepResult = self.sim.step(now_ts)
        result = RoundResult(ts=now_ts)
        result.errors.update(self.registration_errors)
        result.errors.update(step.errors)
        ingested, result.readings = self._ingest(list(step), result.errors)
        done = {s.site_id for s in ingested}
        failed = [s.site_id for s in step if s.site_id not in done]
        if failed:  # not stored: rewind them, the next round re-simulates the interval
            current = self.sim.state_dict()
            for sid in failed:
                current["sites"][sid] = before["sites"][sid]
            self.sim.restore(current)
        states = {sid: self.sim.site_state(sid) for sid in done}
        try:
            save_states(self.ports, [self._by_id[sid] for sid in sorted(done)], states, self.interval_s)
            result.state_saved = True
        except Exception as exc:  # noqa: BLE001 - readings are stored; restore fast-forwards
            log.error("simulate.state_not_saved", error=f"{type(exc).__name__}: {exc}",
                      note="a restart fast-forwards from the stored readings")
        for sample in ingested:
            v = sample.values
            result.lines.append(SiteLine(
                site_id=sample.site_id, name=self._by_id[sample.site_id].name, ts=sample.ts,
                solar_kw=v["solar_power_kw"], soc_pct=v.get("battery_soc_pct"), load_kw=v["load_power_kw"],
                grid_kw=v["grid_import_power_kw"] - v["grid_export_power_kw"]))
        for sid, reason in result.errors.items():
            if sid not in self.registration_errors:
                log.error("simulate.site_failed", site=sid, ts=now_ts, error=reason)
        result.seconds = time.perf_counter() - t0
        return result

    def first_round_ts(self, now: float) -> int:
        """The round to run at start: the interval boundary just passed, unless done already."""
        boundary = int(now // self.interval_s) * self.interval_s
        last = self.last_ts()
        if last is not None and boundary <= last:
            return boundary + self.interval_s
        return boundary

    def run_forever(self, stop_event: threading.Event, *, max_rounds: int | None = None,
                    on_round: Callable[[RoundResult], None] | None = None,
                    clock: Callable[[], float] = time.time,
                    wait: Callable[[float], bool] | None = None) -> int:
        """Run rounds on interval boundaries until ``stop_event`` is set.

        The first round runs at once for the boundary just passed (unless it was
        already simulated), the next ones when the wall clock reaches the next
        boundary. A stop request is honoured between rounds: the round in progress
        completes (readings and state saved). If rounds fall behind (a slow round,
        a suspended machine), the next round is the latest boundary and the gap is
        simulated in sub-steps. Returns the number of rounds run.

        ``clock`` and ``wait(seconds) -> stop requested`` are injectable for tests.
        """
        wait = wait or stop_event.wait
        iv = self.interval_s
        rounds = 0
        next_ts = self.first_round_ts(clock())
        while not stop_event.is_set():
            while (delay := next_ts - clock()) > 0:
                # short waits: a wall-clock jump (NTP, suspend) is noticed within 30 s
                if wait(min(delay, 30.0)) or stop_event.is_set():
                    return rounds
            ts = max(next_ts, int(clock() // iv) * iv)
            try:
                result = self.run_round(ts)
            except Exception:  # noqa: BLE001 - keep running; the next round catches up
                log.exception("simulate.round_failed", ts=ts)
                result = None
            if result is not None and on_round is not None:
                on_round(result)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            next_ts = ts + iv
        return rounds


def install_signal_handlers(stop_event: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop_event`` (finish the round, then exit); a second one
    interrupts at once (``KeyboardInterrupt``). Returns a function restoring the old
    handlers. Main thread only."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, _frame):
        if stop_event.is_set():
            raise KeyboardInterrupt
        # Event.set takes a lock the interrupted main thread may hold: set it from a thread
        # (nothing else here: printing from a signal handler can hit a reentrant write)
        threading.Thread(target=stop_event.set, daemon=True).start()

    for s in previous:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


# -- replay into the database --------------------------------------------------------


@dataclass
class ReplayIngestResult:
    sites: int
    steps: int
    readings: int = 0
    ledger_entries: int = 0
    quarantined: int = 0
    batches: int = 0
    seconds: float = 0.0
    continued_from_state: list[str] = field(default_factory=list)
    state_saved: int = 0
    notes: dict[str, str] = field(default_factory=dict)  # site id -> warning


def replay_into_db(ports: SimulatorPorts, sites: Sequence[SiteSpec], start_ts: int, end_ts: int, step_s: int = 300,
                   on_progress: ProgressCallback | None = None, *, metrics: Iterable[str] | None = None,
                   max_batch: int = DEFAULT_MAX_BATCH, series: SeriesMap | None = None,
                   save_state: bool = True) -> ReplayIngestResult:
    """Simulate ``sites`` at every multiple of ``step_s`` in ``[start_ts, end_ts)`` and
    ingest the readings through the pipeline, at most ``max_batch`` per batch.

    * A site whose saved live state ends exactly one step before the first sample
      continues from it (battery, counters); otherwise it starts fresh (counters 0).
    * With ``save_state``, sites whose saved state is older than the replay's end
      get the replay's final state, so live mode (or the next replay) continues
      from it.
    * ``on_progress(done_steps, total_steps)`` after each ingested chunk.
    * Rerunning a replay changes nothing (deterministic values, idempotent pipeline).
    """
    t0 = time.perf_counter()
    if max_batch <= 0:
        raise ValueError("max_batch must be > 0")
    sites = list(sites)
    series = series if series is not None else register_sites(ports, sites, step_s)
    wanted = list(metrics) if metrics is not None else list(METRICS)
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics: {unknown}")
    grid = step_grid(start_ts, end_ts, step_s)
    result = ReplayIngestResult(sites=len(sites), steps=len(grid))
    if not sites or not len(grid):
        return result

    saved, _ = load_states(ports, sites)
    first = int(grid[0])
    last = int(grid[-1])
    initial = {sid: st for sid, st in saved.items() if st.last_ts == first - step_s}
    result.continued_from_state = sorted(initial)
    for sid, ts in _latest_readings(ports, series, [s.id for s in sites]).items():
        if ts > last:
            # the pipeline re-derives the ledger entry up to that later reading (the gap's
            # delta split over its local days: 25 k readings before a 1.7-year gap, 0.3 s)
            result.notes[sid] = (f"has readings after this period (up to {ts}); the replay's counters "
                                 "start from 0, so the later data will follow a counter reset")
        elif ts < first and sid not in initial:
            result.notes[sid] = ("has earlier readings but no saved state ending one step before this "
                                 "period; counters start from 0 (recorded as a reset)")
    # per metric: rows of the sites that have that point, and their series ids
    plan = []
    for m in wanted:
        rows = [i for i, s in enumerate(sites) if m in series.get(s.id, {})]
        if rows:
            plan.append((m, np.array(rows), np.array([series[sites[i].id][m] for i in rows], np.int64)))
    per_step = max(1, sum(len(r) for _, r, _ in plan))
    chunk_elements = max(len(sites), max_batch * len(sites) // per_step)
    run = ReplayRun(sites, start_ts, end_ts, step_s, initial_state=initial,
                    metrics=[m for m, _, _ in plan], chunk_elements=chunk_elements)
    for chunk in run.chunks(on_progress):
        k = len(chunk.ts)
        sid = np.concatenate([np.repeat(ids, k) for _, _, ids in plan])
        ts = np.tile(chunk.ts, per_step)
        val = np.concatenate([chunk.data[m][rows].astype(np.float64).ravel() for m, rows, _ in plan])
        for a in range(0, len(sid), max_batch):
            b = a + max_batch
            batch = ReadingBatch(sid[a:b], ts[a:b], val[a:b], np.full(len(sid[a:b]), -1, np.int64), [], SOURCE)
            res = ports.pipeline.ingest(batch, refresh_summaries=False)
            result.readings += res.accepted
            result.ledger_entries += res.ledger_entries
            result.quarantined += len(res.quarantined)
            result.batches += 1
    if save_state:
        final = run.final_state()
        newer = [s for s in sites if s.id in series and (
            s.id not in saved or saved[s.id].last_ts is None or saved[s.id].last_ts < final[s.id].last_ts)]
        result.state_saved = save_states(ports, newer, final, step_s)
    result.seconds = time.perf_counter() - t0
    return result


__all__ = [
    "LiveService",
    "ReplayIngestResult",
    "RestoreReport",
    "RoundResult",
    "SiteLine",
    "asset_name",
    "install_signal_handlers",
    "load_states",
    "register_sites",
    "replay_into_db",
    "save_states",
    "site_metrics",
    "spec_fingerprint",
]
