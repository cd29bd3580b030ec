"""The campus device fleet of seed 002: ESP32 controllers switching lights and fans.

One controller (``ESP01``, ``ESP02`` …) per classroom (``CR-101``, ``CR-102`` …) meters
its devices (``light_1``, ``fan_1`` …, each on its own switch ``sw1``, ``sw2`` …) and
publishes every ``interval_s`` (30 s) one telemetry document per device in the seed's
shape, a heartbeat, and its status (``online`` when it connects, retained; the broker
publishes its Last Will, ``offline``, when the connection is lost).

Devices are on during the class periods of the campus timetable (Asia/Kolkata, weekdays),
switched on and off by hand around the bell, fans mostly in the hot months, and now and
then lights left on until the evening guard round. With :class:`Faults` the fleet does
what real fleets do: firmware resets (energy counter, uptime and sequence number back to
zero), offline spells (the Last Will, readings buffered in RAM up to a limit, then a
burst of them on return), out-of-order publishes, repeated messages (a resend after a
lost PUBACK), and clocks that are off and drift.

Pure generation: no I/O and no clock; time comes from arguments (epoch seconds). The
same (classrooms, devices, seed, start) is the same stream of events, however
:meth:`DeviceFleetSimulator.advance` is chunked: each controller draws from its own
numpy Generators, seeded by (seed, controller, local day) where a day's schedule and
faults come from, so any day can be computed on its own.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

import numpy as np

from wattline.domain import timeutil

TIMEZONE = "Asia/Kolkata"
KINDS = ("telemetry", "status", "heartbeat")

# numpy stream ids: (seed, controller, [day,] stream)
_S_INIT, _S_NOISE, _S_SCHEDULE, _S_FAULTS = 1, 2, 3, 4


# -- the fleet -------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    device_id: str       # light_1, fan_2
    kind: str            # "light" | "fan"
    rated_w: float       # nameplate power, W
    switch: str          # the controller's switch feeding it: sw1, sw2 ...
    draw_factor: float   # this unit's real draw / rated (its meter integrates rated × factor)

    @property
    def draw_w(self) -> float:
        return self.rated_w * self.draw_factor


@dataclass(frozen=True)
class Controller:
    index: int
    esp32_name: str      # ESP01
    classroom: str       # CR-101
    devices: tuple[Device, ...]
    firmware_ver: str
    phase_s: int         # offset of its readings within the interval, s


@dataclass(frozen=True)
class Timetable:
    """Class periods (local wall times) on teaching weekdays of ``timezone``."""

    timezone: str = TIMEZONE
    periods: tuple[tuple[time, time], ...] = (
        (time(9, 0), time(9, 50)), (time(10, 0), time(10, 50)), (time(11, 0), time(11, 50)),
        (time(12, 0), time(12, 50)), (time(14, 0), time(14, 50)), (time(15, 0), time(15, 50)),
        (time(16, 0), time(16, 50)))
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    occupancy: float = 0.8         # chance a classroom holds a given period
    on_jitter_s: float = 180.0     # switched on within ± this of the bell
    off_lag_s: float = 300.0       # switched off up to this after the period
    merge_gap_s: float = 900.0     # nobody switches off for a break shorter than this
    hot_months: frozenset[int] = frozenset({3, 4, 5, 6, 7, 8, 9, 10})
    fan_use_hot: float = 0.95      # chance the fans run in an occupied period, hot months
    fan_use_cool: float = 0.4
    left_on_prob: float = 0.05     # chance a device is left on after its last period ...
    guard_round: time = time(19, 0)  # ... until the guard's round (+ up to an hour)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, per controller. :meth:`none` is a perfect fleet."""

    resets_per_day: float = 0.05       # firmware resets (Poisson)
    offline_per_day: float = 0.3       # offline spells (Poisson)
    offline_min_s: float = 120.0       # spell length: log-uniform between these
    offline_max_s: float = 1800.0
    buffer_messages: int = 240         # readings kept in RAM while offline (oldest dropped)
    boot_s: float = 8.0                # a reset is this long without readings nor connection
    out_of_order_prob: float = 0.01    # a telemetry message published after the next one
    duplicate_prob: float = 0.005      # a telemetry message published twice
    clock_offset_sd_s: float = 2.0     # device clock offset after an NTP sync
    clock_drift_ppm_sd: float = 20.0   # and its drift

    @classmethod
    def none(cls) -> "Faults":
        return cls(resets_per_day=0.0, offline_per_day=0.0, out_of_order_prob=0.0, duplicate_prob=0.0,
                   clock_offset_sd_s=0.0, clock_drift_ppm_sd=0.0)


@dataclass(frozen=True)
class DeviceFleet:
    controllers: tuple[Controller, ...]
    seed: int = 0
    timetable: Timetable = field(default_factory=Timetable)
    faults: Faults = field(default_factory=Faults)
    interval_s: int = 30
    heartbeat_s: int = 30

    @property
    def device_count(self) -> int:
        return sum(len(c.devices) for c in self.controllers)

    def controller(self, esp32_name: str) -> Controller:
        for c in self.controllers:
            if c.esp32_name == esp32_name:
                return c
        raise KeyError(esp32_name)


_LIGHT_W = (18.0, 20.0, 36.0, 40.0)
_FAN_W = (50.0, 60.0, 75.0)


def campus_fleet(classrooms: int, devices: int, seed: int = 0, *, timetable: Timetable | None = None,
                 faults: Faults | None = None, first_room: int = 101, interval_s: int = 30) -> DeviceFleet:
    """``classrooms`` controllers with ``devices`` devices each (lights and fans alternating,
    lights first), deterministic per ``seed``; controller ``i`` does not depend on how many
    others there are."""
    if classrooms < 1 or devices < 1:
        raise ValueError("a fleet needs at least one classroom and one device per classroom")
    if interval_s < 1:
        raise ValueError("interval_s must be >= 1")
    ctrls = []
    for i in range(classrooms):
        rng = np.random.default_rng([seed, i, _S_INIT])
        devs, counts = [], {"light": 0, "fan": 0}
        for k in range(devices):
            kind = "light" if k % 2 == 0 else "fan"
            counts[kind] += 1
            rated = float(rng.choice(_LIGHT_W if kind == "light" else _FAN_W))
            devs.append(Device(f"{kind}_{counts[kind]}", kind, rated, f"sw{k + 1}",
                               round(float(rng.uniform(0.93, 1.03)), 4)))
        ctrls.append(Controller(i, f"ESP{i + 1:02d}", f"CR-{first_room + i}", tuple(devs),
                                f"v2.0.{int(rng.integers(0, 4))}", int(rng.integers(0, interval_s))))
    return DeviceFleet(tuple(ctrls), seed, timetable or Timetable(), faults or Faults(), interval_s)


# -- the timetable: when each device is on -------------------------------------------


def _local_ts(day: date, t: time, tz: str) -> float:
    return datetime.combine(day, t, tzinfo=timeutil.zone(tz)).timestamp()


def _local_day(ts: float, tz: str) -> date:
    return datetime.fromtimestamp(ts, timeutil.zone(tz)).date()


def day_schedule(fleet: DeviceFleet, controller: Controller, day: date) -> dict[str, list[tuple[float, float]]]:
    """Per device id, the on-intervals ``[start, end)`` (epoch s) of local ``day``."""
    tt = fleet.timetable
    rng = np.random.default_rng([fleet.seed, controller.index, day.toordinal(), _S_SCHEDULE])
    teaching = day.weekday() in tt.weekdays
    occupied = rng.random(len(tt.periods)) < tt.occupancy
    fan_use = tt.fan_use_hot if day.month in tt.hot_months else tt.fan_use_cool
    guard = _local_ts(day, tt.guard_round, tt.timezone)
    out: dict[str, list[tuple[float, float]]] = {}
    for d in controller.devices:
        # a fixed number of draws per device, whether used or not, keeps the streams aligned
        leads = rng.uniform(-tt.on_jitter_s, tt.on_jitter_s, len(tt.periods))
        lags = rng.uniform(0.0, tt.off_lag_s, len(tt.periods))
        uses = rng.random(len(tt.periods))
        left_on, guard_delay = rng.random() < tt.left_on_prob, float(rng.uniform(0, 3600))
        spans = []
        if teaching:
            for (start, end), occ, lead, lag, use in zip(tt.periods, occupied, leads, lags, uses):
                if not occ or (d.kind == "fan" and use >= fan_use):
                    continue
                spans.append((round(_local_ts(day, start, tt.timezone) + lead),
                              round(_local_ts(day, end, tt.timezone) + lag)))
        merged: list[tuple[float, float]] = []
        for a, b in spans:
            if merged and a - merged[-1][1] < tt.merge_gap_s:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        if merged and left_on:
            merged[-1] = (merged[-1][0], max(merged[-1][1], round(guard + guard_delay)))
        out[d.device_id] = merged
    return out


class _Schedules:
    """Cached day schedules of one controller."""

    def __init__(self, fleet: DeviceFleet, controller: Controller):
        self.fleet, self.controller = fleet, controller
        self._days: dict[date, dict[str, list[tuple[float, float]]]] = {}

    def day(self, d: date):
        s = self._days.get(d)
        if s is None:
            if len(self._days) > 8:
                self._days.pop(min(self._days))
            s = self._days[d] = day_schedule(self.fleet, self.controller, d)
        return s

    def _days_of(self, t0: float, t1: float) -> Iterator[date]:
        tz = self.fleet.timetable.timezone
        d, last = _local_day(t0, tz), _local_day(t1, tz)
        while d <= last:
            yield d
            d += timedelta(days=1)

    def is_on(self, device_id: str, ts: float) -> bool:
        for a, b in self.day(_local_day(ts, self.fleet.timetable.timezone))[device_id]:
            if a <= ts < b:
                return True
        return False

    def on_seconds(self, device_id: str, t0: float, t1: float) -> float:
        total = 0.0
        for d in self._days_of(t0, t1):
            for a, b in self.day(d)[device_id]:
                total += max(0.0, min(b, t1) - max(a, t0))
        return total


def on_seconds(fleet: DeviceFleet, esp32_name: str, device_id: str, start_ts: float, end_ts: float) -> float:
    """Seconds device ``device_id`` of ``esp32_name`` is switched on within [start, end)."""
    return _Schedules(fleet, fleet.controller(esp32_name)).on_seconds(device_id, start_ts, end_ts)


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """Something a controller does at simulated instant ``at`` (epoch s, true time).

    ``kind`` is a message kind (``telemetry``, ``status``, ``heartbeat``: publish
    ``payload`` to ``<prefix>/<esp32_name>/<kind>``, retained if ``retain``) or a link
    change: ``connect`` (open the connection with the Last Will, then the status online
    message follows) or ``disconnect`` (the connection is lost without a DISCONNECT, so
    the broker publishes the Last Will).
    """

    at: float
    esp32_name: str
    kind: str
    payload: dict | None = None
    retain: bool = False
    redelivery: bool = False   # the same message again (a resend after a lost PUBACK)
    buffered: bool = False     # measured while offline, published on return
    measured_at: float | None = None  # telemetry: the true instant of the reading
    late: bool = False         # published after a later reading of its controller (out of order)

    @property
    def is_message(self) -> bool:
        return self.kind in KINDS


def encode(payload: dict) -> bytes:
    """The bytes on the wire: compact JSON."""
    return json.dumps(payload, separators=(",", ":")).encode()


def will_payload(controller: Controller) -> dict:
    """The Last Will a controller registers when it connects (fixed then: no timestamp)."""
    return {"esp32_name": controller.esp32_name, "classroom": controller.classroom, "status": "offline"}


@dataclass
class FleetStats:
    """Counts of the events returned so far; `resets` and `dropped_by_device` as generated
    (each controller's stream is computed up to its next event, so they may run a little ahead)."""

    telemetry: int = 0        # telemetry messages published (repeats included)
    heartbeats: int = 0
    statuses: int = 0
    resets: int = 0
    offline_spells: int = 0   # disconnects, resets included
    buffered: int = 0         # telemetry published late from the offline buffer
    dropped_by_device: int = 0  # readings lost because the buffer was full or the device rebooted
    out_of_order: int = 0
    duplicates: int = 0


@dataclass
class _Downtime:
    """Merged intervals without a connection (offline spells, reboots) and the resets,
    expanded lazily a UTC day at a time, in order."""

    fleet: DeviceFleet
    controller: Controller
    next_day: int              # next UTC day number to expand
    intervals: deque = field(default_factory=deque)  # (start, end), merged, sorted
    resets: deque = field(default_factory=deque)

    def expand_through(self, ts: float) -> None:
        # spells last < 1 day, so anything overlapping ts starts on its day or the one before
        while self.next_day <= math.floor(ts / 86400) + 1:
            self._expand(self.next_day)
            self.next_day += 1

    def _expand(self, day: int) -> None:
        f = self.fleet.faults
        rng = np.random.default_rng([self.fleet.seed, self.controller.index, day, _S_FAULTS])
        n_resets, n_spells = int(rng.poisson(f.resets_per_day)), int(rng.poisson(f.offline_per_day))
        resets = np.sort(day * 86400 + rng.uniform(0, 86400, n_resets))
        starts = day * 86400 + rng.uniform(0, 86400, n_spells)
        lo, hi = math.log(max(f.offline_min_s, 1.0)), math.log(max(f.offline_max_s, f.offline_min_s, 1.0))
        lengths = np.minimum(np.exp(rng.uniform(lo, hi, n_spells)), 86000.0)  # the lazy expansion needs < 1 day
        new = sorted([(round(float(s), 3), round(float(s + n), 3)) for s, n in zip(starts, lengths)]
                     + [(round(float(r), 3), round(float(r + f.boot_s), 3)) for r in resets])
        self.resets.extend(round(float(r), 3) for r in resets)
        for a, b in new:
            if self.intervals and a <= self.intervals[-1][1]:
                last = self.intervals.pop()
                self.intervals.append((last[0], max(last[1], b)))
            else:
                self.intervals.append((a, b))


@dataclass
class _State:
    boot_at: float
    boot_until: float
    seq: int
    energy_wh: list[float]
    integrated_to: float
    clock_offset_s: float
    drift_ppm: float
    synced_at: float
    rssi_base: float
    online: bool = False
    buffer: deque = field(default_factory=deque)
    held: FleetEvent | None = None  # a telemetry message overtaken by the next one


def _controller_events(fleet: DeviceFleet, c: Controller, start_ts: float, stats: FleetStats) -> Iterator[FleetEvent]:
    """The endless event stream of one controller from ``start_ts``, in time order."""
    f, n = fleet.faults, len(c.devices)
    rng_init = np.random.default_rng([fleet.seed, c.index, int(start_ts), _S_INIT])
    rng = np.random.default_rng([fleet.seed, c.index, int(start_ts), _S_NOISE])
    sched = _Schedules(fleet, c)
    uptime0 = float(rng_init.uniform(3600, 10 * 86400))
    st = _State(boot_at=start_ts - uptime0, boot_until=start_ts - uptime0 + f.boot_s,
                seq=int(uptime0 // fleet.interval_s) * n,
                energy_wh=[float(rng_init.uniform(0, 20000)) for _ in c.devices], integrated_to=start_ts,
                clock_offset_s=float(rng_init.normal(0, f.clock_offset_sd_s)) if f.clock_offset_sd_s else 0.0,
                drift_ppm=float(rng_init.normal(0, f.clock_drift_ppm_sd)) if f.clock_drift_ppm_sd else 0.0,
                synced_at=start_ts, rssi_base=float(rng_init.uniform(-78, -42)))
    down = _Downtime(fleet, c, next_day=math.floor(start_ts / 86400))
    down.expand_through(start_ts)
    # a spell under way at the start: begin offline
    while down.intervals and down.intervals[0][1] <= start_ts:
        down.intervals.popleft()
    while down.resets and down.resets[0] < start_ts:
        down.resets.popleft()

    def device_time(t: float) -> float:
        return t + st.clock_offset_s + st.drift_ppm * 1e-6 * (t - st.synced_at)

    def stamp(t: float) -> str:
        return timeutil.iso(math.floor(device_time(t)))

    def uptime(t: float) -> int:
        return int(t - st.boot_at)

    def rssi() -> int:
        return int(round(st.rssi_base + rng.normal(0, 3)))

    def status_online(t: float) -> FleetEvent:
        return FleetEvent(t, c.esp32_name, "status", {
            "esp32_name": c.esp32_name, "classroom": c.classroom, "status": "online", "timestamp": stamp(t),
            "firmware_ver": c.firmware_ver, "uptime_seconds": uptime(t)}, retain=True)

    def publish_telemetry(ev: FleetEvent) -> Iterator[FleetEvent]:
        """Out-of-order holding and repeats on the way out."""
        if st.held is None and f.out_of_order_prob and rng.random() < f.out_of_order_prob:
            st.held = ev
            return
        yield ev
        if f.duplicate_prob and rng.random() < f.duplicate_prob:
            yield replace(ev, redelivery=True)
        if st.held is not None and st.held.measured_at < ev.measured_at:  # overtaken by a later reading
            held, st.held = st.held, None
            yield replace(held, at=ev.at, late=True)

    def flush_held(t: float) -> Iterator[FleetEvent]:
        if st.held is not None:
            held, st.held = st.held, None
            yield replace(held, at=t)

    t = start_ts
    k = math.ceil((start_ts - c.phase_s) / fleet.interval_s)
    t_read = c.phase_s + k * fleet.interval_s
    hb_phase = (c.phase_s + fleet.heartbeat_s / 2) % fleet.heartbeat_s
    t_hb = hb_phase + math.ceil((start_ts - hb_phase) / fleet.heartbeat_s) * fleet.heartbeat_s

    in_spell = bool(down.intervals) and down.intervals[0][0] <= start_ts
    if not in_spell:
        st.online = True
        yield FleetEvent(start_ts, c.esp32_name, "connect")
        yield status_online(start_ts)

    order = {"up": 0, "read": 1, "hb": 2, "down": 3, "reset": 4}
    while True:
        down.expand_through(max(t_read, t_hb, t))
        options = [(t_read, order["read"], "read"), (t_hb, order["hb"], "hb")]
        if down.intervals:
            a, b = down.intervals[0]
            options.append((b, order["up"], "up") if not st.online else (max(a, t), order["down"], "down"))
        if down.resets:
            options.append((down.resets[0], order["reset"], "reset"))
        t, _, what = min(options)

        if what == "read":
            t_read += fleet.interval_s
            if t < st.boot_until:
                continue  # booting: no readings
            for i, d in enumerate(c.devices):
                st.energy_wh[i] += d.draw_w * sched.on_seconds(d.device_id, st.integrated_to, t) / 3600.0
            st.integrated_to = t
            switches = {d.switch: sched.is_on(d.device_id, t) for d in c.devices}
            for i, d in enumerate(c.devices):
                st.seq += 1
                on = switches[d.switch]
                power = round(d.draw_w * (1 + float(rng.normal(0, 0.01))), 1) if on else 0.0
                ev = FleetEvent(t, c.esp32_name, "telemetry", {
                    "esp32_name": c.esp32_name, "classroom": c.classroom, "device_id": d.device_id,
                    "timestamp": stamp(t), "power_w": power, "energy_wh_total": round(st.energy_wh[i], 3),
                    "switch_state": dict(switches), "uptime_seconds": uptime(t), "status": "online",
                    "sequence_no": st.seq, "firmware_ver": c.firmware_ver, "wifi_rssi": rssi()}, measured_at=t)
                if st.online:
                    yield from publish_telemetry(ev)
                else:
                    if len(st.buffer) >= f.buffer_messages:
                        st.buffer.popleft()
                        stats.dropped_by_device += 1
                    st.buffer.append(ev)
        elif what == "hb":
            t_hb += fleet.heartbeat_s
            if st.online and t >= st.boot_until:
                yield FleetEvent(t, c.esp32_name, "heartbeat", {
                    "esp32_name": c.esp32_name, "classroom": c.classroom, "timestamp": stamp(t),
                    "uptime_seconds": uptime(t), "wifi_rssi": rssi(), "firmware_ver": c.firmware_ver,
                    "status": "online"})
        elif what == "down":
            st.online = False
            yield from flush_held(t)
            yield FleetEvent(t, c.esp32_name, "disconnect")
        elif what == "up":
            down.intervals.popleft()
            st.online = True
            yield FleetEvent(t, c.esp32_name, "connect")
            yield status_online(t)
            while st.buffer:
                ev = st.buffer.popleft()
                yield replace(ev, at=t, buffered=True)
        else:  # reset: RAM is gone (counters, sequence, buffer); the clock re-syncs on boot
            down.resets.popleft()
            stats.resets += 1
            stats.dropped_by_device += len(st.buffer)
            st.buffer.clear()
            st.boot_at, st.boot_until = t, t + f.boot_s
            st.seq = 0
            st.energy_wh = [0.0] * n
            st.integrated_to = st.boot_until  # the meter counts once the firmware runs
            st.synced_at = st.boot_until
            if f.clock_offset_sd_s:
                st.clock_offset_s = float(rng.normal(0, f.clock_offset_sd_s))
            if f.clock_drift_ppm_sd:
                st.drift_ppm = float(rng.normal(0, f.clock_drift_ppm_sd))


class DeviceFleetSimulator:
    """The fleet's events from ``start_ts`` on, in time order (ties: controller order)."""

    def __init__(self, fleet: DeviceFleet, start_ts: float):
        self.fleet = fleet
        self.start_ts = float(start_ts)
        self.now = float(start_ts)
        self.stats = FleetStats()
        self._streams = [_controller_events(fleet, c, self.start_ts, self.stats) for c in fleet.controllers]
        self._heads: list[FleetEvent | None] = [next(s) for s in self._streams]
        self._tiebreak = itertools.count()

    def advance(self, until_ts: float) -> list[FleetEvent]:
        """Every event with ``at < until_ts`` not returned yet."""
        if until_ts < self.now:
            raise ValueError("time runs forward only")
        heap = [(h.at, i, next(self._tiebreak), h) for i, h in enumerate(self._heads)]
        heapq.heapify(heap)
        out: list[FleetEvent] = []
        while heap and heap[0][0] < until_ts:
            _, i, _, ev = heapq.heappop(heap)
            out.append(ev)
            self._count(ev)
            nxt = next(self._streams[i])
            self._heads[i] = nxt
            heapq.heappush(heap, (nxt.at, i, next(self._tiebreak), nxt))
        self.now = float(until_ts)
        return out

    def _count(self, ev: FleetEvent) -> None:
        s = self.stats
        if ev.kind == "telemetry":
            s.telemetry += 1
            s.buffered += ev.buffered
            s.duplicates += ev.redelivery
            s.out_of_order += ev.late
        elif ev.kind == "heartbeat":
            s.heartbeats += 1
        elif ev.kind == "status":
            s.statuses += 1
        elif ev.kind == "disconnect":
            s.offline_spells += 1

    def messages(self, until_ts: float) -> list[FleetEvent]:
        """Only the messages of :meth:`advance` (no link events)."""
        return [e for e in self.advance(until_ts) if e.is_message]
