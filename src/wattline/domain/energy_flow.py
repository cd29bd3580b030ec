"""Energy flow of a site: who feeds whom among solar, battery, grid and load.

From the four balance terms of a home or small site — solar generation, load, battery
power and grid power — :func:`split_flows` states the flows the energy-flow (Sankey)
chart draws: solar→load, solar→battery, solar→grid, battery→load, battery→grid,
grid→load and grid→battery. It works on powers (W, one instant) and on energies (Wh,
one interval) alike; :func:`power_flows_w` and :func:`energy_flows_wh` name the unit.

Sign conventions (the values as they are stored, after the adapters)
--------------------------------------------------------------------
* ``solar`` >= 0 (generation), ``load`` >= 0 (consumption);
* ``grid`` + import, − export, for every vendor (Selectronic's SP PRO reports import
  negative; its adapter flips the sign);
* ``battery`` (``battery_w``): **+ discharging, − charging, for every vendor** —
  Wattline's one convention: a positive term is power a source delivers to the site,
  as for the grid's import. Selectronic (SP PRO), SolarEdge and Fronius' local
  Solar API (``P_Akku``) report it so; the Fronius push contract and Mondo report
  + charging and their adapters flip it (tests/vendors/test_battery_sign.py holds
  every adapter to it). :func:`split_flows` still takes ``battery_positive`` for
  data signed otherwise (a simulator, a test).

The balance is ``solar + grid_import + battery_discharge = load + grid_export +
battery_charge``. Priorities (what a person reads from such a chart): solar serves
the load first, then charges the battery, then is exported; the load takes what it
still needs from the battery, then from the grid; the grid charges the battery only
with what solar left uncovered; a battery that exports does so last. For one
instant (one direction per battery and grid) and a balanced input, these flows are
exact: what leaves each source equals its value and what reaches each sink equals
its value. Measured inputs rarely balance exactly (losses, rounding, points read
moments apart): no flow then exceeds its source or its sink, and the mismatch is
returned as ``imbalance`` (sources minus sinks).

For an interval, split each short sub-interval (a few minutes, where the battery
has one direction) and sum: the split of summed energies would net a battery that
charged at noon and discharged at night to nothing. :func:`split_flows` takes
arrays for that (one element per sub-interval).

A missing term: a missing battery is 0 (no battery); one missing term among solar,
load and grid is derived from the balance (clipped at 0); with two or more missing
the flows cannot be stated (:data:`None` from :func:`power_flows_w`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

SOURCES = ("solar", "battery", "grid")
SINKS = ("load", "battery", "grid")
# (from, to) in drawing order
FLOWS = (("solar", "load"), ("solar", "battery"), ("solar", "grid"), ("battery", "load"), ("battery", "grid"),
         ("grid", "load"), ("grid", "battery"))

DISCHARGING, CHARGING = "discharging", "charging"
# what a positive stored battery_w means: one convention, whatever the vendor
STORED_BATTERY_POSITIVE = DISCHARGING

# the point keys that carry each balance term, in order of preference
POINT_KEYS: dict[str, tuple[str, ...]] = {
    "solar": ("solar_w", "power"),  # Solarman and Sungrow report only "power" (solar)
    "load": ("load_w",),
    "battery": ("battery_w",),
    "grid": ("grid_w",),
}


def battery_convention(vendor_type: str | None) -> str:
    """What a positive stored ``battery_w`` means: "discharging", for every vendor (the
    adapters map to it; kept as a function so callers need not know)."""
    return STORED_BATTERY_POSITIVE


@dataclass(frozen=True)
class FlowSplit:
    """Flows between the nodes, in the unit of the inputs (W or Wh).

    Attributes
    ----------
    flows : dict
        ``(from, to)`` -> value (float, or numpy array for array inputs), >= 0, for
        every pair of :data:`FLOWS`.
    imbalance : float or numpy.ndarray
        Sources minus sinks of the inputs (0 for a balanced input).
    """

    flows: dict[tuple[str, str], float | np.ndarray]
    imbalance: float | np.ndarray

    def totals(self) -> dict[tuple[str, str], float]:
        """Each flow summed over all elements (the flows of an interval split per sub-interval)."""
        return {k: float(np.sum(v)) for k, v in self.flows.items()}


def split_flows(solar, load, battery, grid, battery_positive: str = DISCHARGING) -> FlowSplit:
    """Split the balance terms into flows between solar, battery, grid and load.

    Parameters
    ----------
    solar : float or array-like
        Solar generation (W or Wh), >= 0; negatives (inverter standby draw) count as 0.
    load : float or array-like
        Site consumption, same unit, >= 0; negatives count as 0.
    battery : float or array-like
        Battery power or energy, same unit, signed per ``battery_positive``.
    grid : float or array-like
        Grid power or energy, same unit: + import, − export.
    battery_positive : str, default "discharging"
        What a positive ``battery`` means: "discharging" or "charging".

    Returns
    -------
    FlowSplit
        Flows >= 0 of every pair in :data:`FLOWS` (arrays for array inputs) and the
        imbalance (sources minus sinks).

    Notes
    -----
    Each element has one battery direction and one grid direction (a net value). For a
    balanced element the flows conserve energy: solar = solar→load + solar→battery +
    solar→grid, load = solar→load + battery→load + grid→load, and so on for every node.
    """
    if battery_positive not in (DISCHARGING, CHARGING):
        raise ValueError(f"battery_positive must be {DISCHARGING!r} or {CHARGING!r}, not {battery_positive!r}")
    s = np.maximum(np.asarray(solar, np.float64), 0.0)
    ld = np.maximum(np.asarray(load, np.float64), 0.0)
    b = np.asarray(battery, np.float64)
    if battery_positive == CHARGING:
        b = -b
    g = np.asarray(grid, np.float64)
    s, ld, b, g = np.broadcast_arrays(s, ld, b, g)
    b_dis, b_chg = np.maximum(b, 0.0), np.maximum(-b, 0.0)
    g_imp, g_exp = np.maximum(g, 0.0), np.maximum(-g, 0.0)

    solar_load = np.minimum(s, ld)
    need = ld - solar_load
    battery_load = np.minimum(b_dis, need)
    need = need - battery_load
    grid_load = np.minimum(g_imp, need)
    solar_left = s - solar_load
    solar_battery = np.minimum(solar_left, b_chg)
    solar_left = solar_left - solar_battery
    solar_grid = np.minimum(solar_left, g_exp)
    grid_battery = np.minimum(g_imp - grid_load, b_chg - solar_battery)
    battery_grid = np.minimum(b_dis - battery_load, g_exp - solar_grid)
    values = (solar_load, solar_battery, solar_grid, battery_load, battery_grid, grid_load, grid_battery)
    imbalance = (s + b_dis + g_imp) - (ld + b_chg + g_exp)
    scalar = np.ndim(solar_load) == 0
    flows = {k: (float(v) if scalar else v) for k, v in zip(FLOWS, values)}
    return FlowSplit(flows, float(imbalance) if scalar else imbalance)


def complete_terms(solar: float | None, load: float | None, battery: float | None, grid: float | None,
                   battery_positive: str = DISCHARGING) -> tuple[float, float, float, float] | None:
    """The four balance terms with a missing one filled in, or None if they cannot be.

    A missing battery is 0. One missing term among solar, load and grid is derived from
    ``solar + grid + battery_discharge = load`` (clipped at 0); two or more missing: None.
    Units as the inputs (W or Wh); signs as in :func:`split_flows`.
    """
    battery = 0.0 if battery is None else float(battery)
    b_dis = battery if battery_positive == DISCHARGING else -battery  # + discharging
    missing = [name for name, v in (("solar", solar), ("load", load), ("grid", grid)) if v is None]
    if len(missing) > 1:
        return None
    if missing == ["solar"]:
        solar = max(load - grid - b_dis, 0.0)
    elif missing == ["load"]:
        load = max(solar + grid + b_dis, 0.0)
    elif missing == ["grid"]:
        grid = load - solar - b_dis
    return float(solar), float(load), battery, float(grid)


def power_flows_w(solar_w: float | None, load_w: float | None, battery_w: float | None, grid_w: float | None,
                  battery_positive: str = DISCHARGING) -> FlowSplit | None:
    """Flows (W) of one instant from the site's powers (W); None if two or more of
    solar, load and grid are unknown. See :func:`split_flows` for the signs."""
    terms = complete_terms(solar_w, load_w, battery_w, grid_w, battery_positive)
    return None if terms is None else split_flows(*terms, battery_positive=battery_positive)


def energy_flows_wh(solar_wh, load_wh, battery_wh, grid_wh, battery_positive: str = DISCHARGING) -> FlowSplit:
    """Flows (Wh) of an interval from per-sub-interval energies (arrays, Wh, net per
    sub-interval; NaN where a term is unknown). Each element is completed as
    :func:`complete_terms` does (elements that cannot be are left out), split, and the
    flows are summed: :meth:`FlowSplit.flows` holds the interval's totals (floats)."""
    cols = [np.atleast_1d(np.asarray(x, np.float64)) for x in (solar_wh, load_wh, battery_wh, grid_wh)]
    s, ld, b, g = np.broadcast_arrays(*cols)
    s, ld, b, g = s.copy(), ld.copy(), np.nan_to_num(b, nan=0.0), g.copy()
    b_dis = b if battery_positive == DISCHARGING else -b
    miss = np.isnan(s).astype(int) + np.isnan(ld) + np.isnan(g)
    ok = miss <= 1
    fill_s, fill_l, fill_g = np.isnan(s) & ok, np.isnan(ld) & ok, np.isnan(g) & ok
    s[fill_s] = np.maximum(ld[fill_s] - g[fill_s] - b_dis[fill_s], 0.0)
    ld[fill_l] = np.maximum(s[fill_l] + g[fill_l] + b_dis[fill_l], 0.0)
    g[fill_g] = ld[fill_g] - s[fill_g] - b_dis[fill_g]
    split = split_flows(s[ok], ld[ok], b[ok], g[ok], battery_positive=battery_positive)
    return FlowSplit({k: float(np.sum(v)) for k, v in split.flows.items()}, float(np.sum(split.imbalance)))


def add_splits(splits: list[FlowSplit]) -> FlowSplit:
    """The flows of several sites added (a composite: each member split on its own, so
    one member's solar never feeds another's load)."""
    flows = {k: float(sum(float(np.sum(s.flows[k])) for s in splits)) for k in FLOWS}
    return FlowSplit(flows, float(sum(float(np.sum(s.imbalance)) for s in splits)))


def flow_list(split: FlowSplit | None, digits: int = 3) -> list[dict]:
    """``[{"from", "to", "value"}]`` in :data:`FLOWS` order, rounded to ``digits``
    decimals; zero flows are kept (the chart shows a 0 as a 0)."""
    if split is None:
        return []
    return [{"from": a, "to": b, "value": round(float(np.sum(split.flows[(a, b)])), digits)} for a, b in FLOWS]


def pick_terms(values: Mapping[str, float]) -> dict[str, float | None]:
    """The balance terms from point values by key (:data:`POINT_KEYS`), None where absent."""
    out: dict[str, float | None] = {}
    for term, keys in POINT_KEYS.items():
        out[term] = next((float(values[k]) for k in keys if values.get(k) is not None), None)
    return out
