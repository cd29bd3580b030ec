"""Metered campus devices: what a device is, its points, and the rules of its messages.

A device is an asset of kind ``device`` named by its controller and its id on that
controller (``ESP01`` / ``light_1``), unique per organization, in one classroom
(a group of kind ``classroom``), optionally fed through a switch (``sw1``) of its
controller. Its energy comes from a cumulative counter when its payloads carry
``energy_wh_total`` (method ``counter``), else from integrating ``power_w``
(method ``power``).

A source turns a device's messages into readings through a read-only
:class:`DeviceResolver`; this module holds the pure rules it applies.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from wattline.domain.metrics import MetricType
from wattline.domain.quality import GAP_FACTOR
from wattline.domain.readings import ReadingBatch
from wattline.domain.sources import PointDefinition

ASSET_KIND = "device"
CLASSROOM_KIND = "classroom"

# Seed 002 calls a pause of more than 10 minutes a gap; the ledger flags a step longer
# than GAP_FACTOR expected intervals, so the expected interval follows from it.
GAP_S = 600
EXPECTED_INTERVAL_S = int(GAP_S / GAP_FACTOR)

# A device clock this far ahead of the arrival is wrong, not early: quarantined.
MAX_FUTURE_S = 3600
# A device clock ahead of the arrival by more than this (and at most MAX_FUTURE_S) has
# drifted: its message is taken in and counted as drift. (Behind is not drift: a
# device that was offline sends its buffered messages late, legitimately.)
DRIFT_S = 120

# why a message is kept out of the ledger (device_quarantine.kind)
UNKNOWN_DEVICE = "unknown_device"  # replayed once the device is registered
FUTURE = "future"  # device clock more than MAX_FUTURE_S ahead of the arrival
INVALID = "invalid"  # not a valid telemetry document

# a controller name, device id or switch: what a topic level and an asset name can hold
# (ASCII spelled out: JSON Schema validators and pydantic disagree on what "\s" is)
NAME_PATTERN = r"^[^\x00-\x20\x7f/+#]+$"
NAME_MAX = 64

# point keys of a device
ENERGY_TOTAL = "energy_total"  # kWh counter, from energy_wh_total (Wh)
POWER = "power"  # kW, from power_w (W)
SWITCH_STATE = "switch_state"  # 1 = the device's switch on, 0 = off


class EnergyMethod(str, enum.Enum):
    """How a device's energy is obtained."""

    COUNTER = "counter"  # differences of the cumulative energy_wh_total
    POWER = "power"  # integration of power_w over time

    @property
    def energy_point(self) -> str:
        """The point whose ledger is the device's energy."""
        return ENERGY_TOTAL if self is EnergyMethod.COUNTER else POWER


def device_points(method: EnergyMethod) -> list[PointDefinition]:
    """The points of a device measured by ``method``.

    Parameters
    ----------
    method : EnergyMethod
        ``counter``: an ``energy_total`` counter (kWh) besides ``power`` (kW) and
        ``switch_state`` (0/1); ``power``: no counter, the ledger integrates ``power``.

    Returns
    -------
    list of PointDefinition
        With an expected interval of :data:`EXPECTED_INTERVAL_S` seconds, so that a
        pause longer than :data:`GAP_S` seconds is a gap.
    """
    points = [
        PointDefinition(POWER, MetricType.POWER, expected_interval_s=EXPECTED_INTERVAL_S, vendor_field="power_w"),
        PointDefinition(SWITCH_STATE, MetricType.STATE, expected_interval_s=EXPECTED_INTERVAL_S,
                        vendor_field="switch_state", plausible_min=0.0, plausible_max=1.0),
    ]
    if method is EnergyMethod.COUNTER:
        # reset_ratio 0.9 (the default): a firmware reset brings the counter near zero
        points.insert(0, PointDefinition(ENERGY_TOTAL, MetricType.COUNTER, expected_interval_s=EXPECTED_INTERVAL_S,
                                         vendor_field="energy_wh_total"))
    return points


def name_problem(what: str, value: str) -> str | None:
    """Why ``value`` cannot be a controller name, device id or switch (``what``), or None.

    Such a name is 1-64 characters without spaces, control characters, ``/``, ``+`` or
    ``#`` (it is an MQTT topic level, and part of the device's asset name).
    """
    if not value or len(value) > NAME_MAX:
        return f"{what} must be 1-{NAME_MAX} characters"
    if re.match(NAME_PATTERN, value) is None:
        return f"{what} {value!r} must not contain spaces, control characters, '/', '+' or '#'"
    return None


def device_asset_name(esp32_name: str, device_id: str) -> str:
    """The asset name of a device: ``ESP01/light_1``."""
    return f"{esp32_name}/{device_id}"


@dataclass(frozen=True)
class RegisteredDevice:
    """A device as the registry knows it.

    ``series``: point key -> series id; ``timezone``: the device's IANA zone (its
    classroom's); ``switch``: the switch of its controller that feeds it, or None.
    """

    asset_id: int
    organization_id: int
    esp32_name: str
    device_id: str
    classroom_id: int
    classroom: str
    timezone: str
    method: EnergyMethod
    switch: str | None = None
    series: Mapping[str, int] = field(default_factory=dict)


class DeviceResolver(Protocol):
    """Read-only lookup of registered devices of one organization."""

    def resolve(self, esp32_name: str, device_id: str) -> RegisteredDevice | None:
        """The device ``device_id`` of controller ``esp32_name``; None if not registered."""
        ...


def switch_on(switch_state: Mapping[str, bool] | bool | None, switch: str | None) -> float | None:
    """The device's switch state from a payload's ``switch_state``.

    Parameters
    ----------
    switch_state : mapping of str to bool, or bool, or None
        The payload's field: the controller's switches by name (``{"sw1": true}``) or
        one state.
    switch : str or None
        The switch the device is bound to.

    Returns
    -------
    float or None
        1.0 (on) or 0.0 (off); None when the payload does not say: no field, a
        mapping without the bound switch, or an unbound device on a controller
        reporting several switches.
    """
    if switch_state is None:
        return None
    if isinstance(switch_state, bool):
        return 1.0 if switch_state else 0.0
    if switch is not None:
        state = switch_state.get(switch)
    elif len(switch_state) == 1:
        state = next(iter(switch_state.values()))
    else:
        return None
    return None if state is None else (1.0 if state else 0.0)


@dataclass(frozen=True)
class MessageKey:
    """What identifies one message of a device besides its content.

    ``sequence_no`` counts the messages of one run of the firmware (from 0 after a
    restart), ``uptime_s`` is the seconds since that restart and ``ts`` the device's
    clock (UTC epoch seconds).
    """

    asset_id: int
    sequence_no: int
    uptime_s: int
    ts: int


def same_message(a: MessageKey, b: MessageKey) -> bool:
    """Whether two messages are one message delivered twice.

    Parameters
    ----------
    a, b : MessageKey
        Device, sequence number, uptime (s) and device time (UTC epoch s).

    Returns
    -------
    bool
        True for the same device, sequence number and uptime, from the same run of
        the firmware. A run is known by its start, ``ts - uptime_s``: two runs that
        both reach sequence number ``n`` at uptime ``u`` start at least ``u``
        seconds apart (the first lasted that long), so their messages are at least
        ``u`` seconds apart; a redelivery (possibly restamped by a clock correction)
        is closer. A new run's first messages (sequence 0, a small uptime) are thus
        never taken for the previous run's.
    """
    if (a.asset_id, a.sequence_no, a.uptime_s) != (b.asset_id, b.sequence_no, b.uptime_s):
        return False
    return abs(a.ts - b.ts) < max(a.uptime_s, 1)


# -- messages, as a source hands them over ------------------------------------------


@dataclass(frozen=True)
class DeviceMessage:
    """A payload of a registered device that goes to the pipeline.

    ``index``: its position among the payloads given; ``raw_index``: its raw payload
    in the batch; ``key``: its sequence identity (None without ``sequence_no`` and
    ``uptime_seconds``); ``classroom_mismatch``: the payload names another classroom
    than the registry's.
    """

    index: int
    raw_index: int
    device: RegisteredDevice
    ts: int
    key: MessageKey | None
    classroom_mismatch: bool = False


@dataclass(frozen=True)
class KeptMessage:
    """A payload kept out of the ledger: ``kind`` is :data:`UNKNOWN_DEVICE` or
    :data:`FUTURE` (an invalid document has no device: see :data:`INVALID`);
    ``raw``: the payload exactly as it arrived."""

    index: int
    esp32_name: str
    device_id: str
    ts: int
    kind: str
    reason: str
    raw: Any


@dataclass
class DeviceBatch:
    """What a set of payloads comes to: the readings of the registered devices'
    messages (``batch``, its raw payloads those of ``messages``, in order) and the
    payloads kept out."""

    batch: ReadingBatch
    messages: list[DeviceMessage] = field(default_factory=list)
    kept: list[KeptMessage] = field(default_factory=list)

    @property
    def classroom_mismatches(self) -> int:
        return sum(m.classroom_mismatch for m in self.messages)
