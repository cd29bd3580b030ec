"""Benchmark the simulator's replay: site-steps per second, wall time, peak memory.

Usage::

    .venv/bin/python bench/simulate.py [--sites 100] [--days 365] [--step 300]
                                       [--repeat 2] [--mode both|full|stream]

Modes (each runs in its own process so peak memory is its own):

* ``full``   -- ``replay()``: every metric of every site kept in memory (per-site arrays).
* ``stream`` -- ``ReplayRun.chunks()``: same computation, chunks consumed and dropped.

Baselines, measured in the same run as MACHINE-LIMITS.md asks: the textbook
per-site pvlib chain (get_solarposition, get_clearsky, get_total_irradiance,
sapm_cell, pvwatts_dc, inverter.pvwatts) on a few site-weeks, PV only; and the
first touch of as much fresh memory as ``replay()`` keeps, which on this VM
varies several-fold with how much memory the host has reclaimed.

The first run in a fresh process pays one-off costs (Linke turbidity lookups,
first touch of the output memory), so each mode runs ``--repeat`` times and
prints every run.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

T0 = 1704067200  # 2024-01-01T00:00Z


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_mode(mode: str, n_sites: int, days: int, step_s: int, repeat: int, seed: int) -> None:
    from wattline.simulator import METRICS, ReplayRun, default_sites, replay

    sites = default_sites(n_sites, seed)
    end = T0 + days * 86400
    rates = []
    for i in range(repeat):
        gc.collect()
        t = time.perf_counter()
        if mode == "full":
            result = replay(sites, T0, end, step_s)
            steps = len(result.ts)
            out_mb = sum(a.nbytes for a in result.data.values()) / 2**20
        else:
            run = ReplayRun(sites, T0, end, step_s)
            steps = 0
            for chunk in run.chunks():
                steps += len(chunk.ts)
            out_mb = 0.0
        wall = time.perf_counter() - t
        site_steps = steps * n_sites
        rates.append(site_steps / wall)
        print(f"{mode} run {i + 1}: wall_s {wall:.2f}  site_steps {site_steps}  site_steps_per_s {site_steps / wall:,.0f}")
        if mode == "full":
            del result
    print(f"{mode} metrics: {len(METRICS)}")
    print(f"{mode} best site_steps_per_s: {max(rates):,.0f}")
    print(f"{mode} median site_steps_per_s: {float(np.median(rates)):,.0f}")
    if mode == "full":
        print(f"{mode} output_mb: {out_mb:,.0f}")
    print(f"{mode} peak_rss_mb: {_peak_rss_mb():,.0f}")


def baseline(n_sites: int = 2, days: int = 14, step_s: int = 300) -> float:
    """Site-steps/s of the per-site pandas pvlib chain (PV only)."""
    import pandas as pd
    import pvlib

    from wattline.simulator import default_sites

    warnings.simplefilter("ignore")
    times = pd.date_range(pd.Timestamp(T0, unit="s", tz="UTC"), periods=days * 86400 // step_s, freq=f"{step_s}s")
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    t = time.perf_counter()
    for site in default_sites(n_sites, 0):
        loc = pvlib.location.Location(site.latitude, site.longitude, site.timezone, site.altitude_m)
        sp = loc.get_solarposition(times)
        cs = loc.get_clearsky(times, solar_position=sp)
        poa = pvlib.irradiance.get_total_irradiance(site.tilt_deg, site.azimuth_deg, sp["apparent_zenith"], sp["azimuth"],
                                                    cs["dni"], cs["ghi"], cs["dhi"])
        tc = pvlib.temperature.sapm_cell(poa["poa_global"], 20.0, 2.0, **params)
        dc = pvlib.pvsystem.pvwatts_dc(poa["poa_global"], tc, site.pv_capacity_kwp, -0.0037)
        pvlib.inverter.pvwatts(dc, site.inverter_ac_kw / 0.965)
    return n_sites * len(times) / (time.perf_counter() - t)


def touch_baseline(megabytes: float) -> float:
    """Seconds to allocate and first-touch ``megabytes`` of fresh memory (own process).

    On this VM freed memory goes back to the host, so the first touch of a large
    block costs anywhere from ~0.25 to ~3 s per GB: the same cost ``replay()`` pays
    for keeping every metric in memory.
    """
    code = ("import numpy as np, time; t = time.perf_counter(); "
            f"a = np.ones(int({megabytes} * 2**20 / 8)); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--step", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=["both", "full", "stream"], default="both")
    args = ap.parse_args()

    if args.mode != "both":
        run_mode(args.mode, args.sites, args.days, args.step, args.repeat, args.seed)
        return

    print(f"sites: {args.sites}")
    print(f"days: {args.days}")
    print(f"step_s: {args.step}")
    print(f"site_steps per run: {args.sites * (args.days * 86400 // args.step):,}")
    print(f"cpus: {os.cpu_count()}")
    for mode in ("full", "stream"):
        cmd = [sys.executable, __file__, "--mode", mode, "--sites", str(args.sites), "--days", str(args.days),
               "--step", str(args.step), "--repeat", str(args.repeat), "--seed", str(args.seed)]
        sys.stdout.flush()
        subprocess.run(cmd, check=True)
    base = baseline()
    print(f"baseline per-site pvlib chain (PV only): site_steps_per_s {base:,.0f}")
    from wattline.simulator import METRICS

    per_site_step = sum(np.dtype(m.dtype).itemsize for m in METRICS.values())
    out_mb = per_site_step * args.sites * (args.days * 86400 // args.step) / 2**20
    print(f"baseline first touch of {out_mb:,.0f} MB fresh memory (the size replay() keeps): {touch_baseline(out_mb):.2f} s")


if __name__ == "__main__":
    main()
