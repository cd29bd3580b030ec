"""``wattline simulate``: the simulator live (a round per interval) or replaying a period.

    wattline simulate --interval 5m [--sites 3] [--seed 0] [--rounds K]
    wattline simulate replay --from 2024-01-01T00:00Z --to 2024-02-01T00:00Z [--step 5m]

Both go through the pipeline like any other source. Live mode stops cleanly on
SIGINT/SIGTERM: the round in progress completes, its state is saved, exit code 0
(a second signal interrupts at once).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Optional

import typer
from rich.console import Console

from wattline.domain import timeutil

simulate_app = typer.Typer(
    help="Simulated PV/battery/load sites: live rounds (default) or a replay of a period.",
    invoke_without_command=True,
)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> int:
    """Seconds from ``30s``, ``1m``, ``5m``, ``15m``, ``1h``, ``1d`` or plain seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not m or int(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not an interval like 30s, 1m, 5m, 15m, 1h")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def _fmt_interval(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _fleet(sites: int, seed: int):
    from wattline.simulator import default_sites

    if sites < 1:
        raise typer.BadParameter("--sites must be >= 1")
    return default_sites(sites, seed)


def simulator_ports(app_ctx):
    """The simulator's collaborators over an open context: the pipeline, the
    provisioning service for its sites, the state repository of the telemetry database."""
    from wattline.provisioning import SiteProvisioner
    from wattline.simulator.ports import SimulatorPorts
    from wattline.store.simulator_state_repo import SimulatorStateRepo

    return SimulatorPorts(pipeline=app_ctx.pipeline, sites=SiteProvisioner(app_ctx.dbs.main),
                          state=SimulatorStateRepo(app_ctx.dbs.telemetry))


def _print_round(result) -> None:
    clock = timeutil.iso(result.ts)
    width = max((len(line.name) for line in result.lines), default=10)
    for line in result.lines:
        soc = f"{line.soc_pct:5.1f} %" if line.soc_pct is not None else "    - "
        grid = f"{line.grid_kw:+9.2f}" if abs(line.grid_kw) >= 0.005 else f"{0.0:9.2f}"
        console.print(f"{clock}  {line.site_id}  {line.name:<{width}}  solar {line.solar_kw:9.2f} kW  "
                      f"SOC {soc}  load {line.load_kw:9.2f} kW  grid {grid} kW", soft_wrap=True)
    for sid, reason in sorted(result.errors.items()):
        console.print(f"{clock}  {sid}  [red]error:[/red] {reason}", soft_wrap=True)
    saved = "" if result.state_saved else "  [yellow]state not saved[/yellow]"
    console.print(f"[dim]{clock}  round done: {len(result.lines)} sites, {result.readings} readings, "
                  f"{len(result.errors)} errors, {result.seconds * 1000:.0f} ms[/dim]{saved}", soft_wrap=True)


@simulate_app.callback()
def simulate(
    ctx: typer.Context,
    interval: str = typer.Option("5m", help="round interval: 30s, 1m, 5m, 15m, 1h ..."),
    sites: int = typer.Option(3, help="number of simulated sites (default_sites(n, seed))"),
    seed: int = typer.Option(0, help="fleet seed: the same (sites, seed) is the same fleet"),
    rounds: Optional[int] = typer.Option(None, help="stop after this many rounds (default: until signalled)"),
) -> None:
    """Live mode: one reading per metric per site each interval, through the pipeline."""
    ctx.obj = {"sites": sites, "seed": seed}
    if ctx.invoked_subcommand is not None:
        return
    interval_s = parse_interval(interval)
    if rounds is not None and rounds < 1:
        raise typer.BadParameter("--rounds must be >= 1")
    fleet = _fleet(sites, seed)

    from wattline import logs
    from wattline.context import open_context
    from wattline.simulator.service import LiveService, install_signal_handlers

    app_ctx = open_context()
    logs.configure(app_ctx.settings.log_level)
    stop = threading.Event()
    restore_handlers = install_signal_handlers(stop)
    try:
        service = LiveService(simulator_ports(app_ctx), fleet, interval_s)
        rep = service.restore_report
        console.print(f"simulating {len(service.sites)} sites (seed {seed}) every {_fmt_interval(interval_s)}; "
                      f"state restored for {len(rep.restored)}, fresh for {len(rep.fresh)}"
                      + (f", fast-forwarded {len(rep.fast_forwarded)}" if rep.fast_forwarded else "")
                      + ("; Ctrl+C to stop" if rounds is None else f"; {rounds} round(s)"), soft_wrap=True)
        for sid, note in sorted(rep.notes.items()):
            console.print(f"[yellow]{sid}: {note}[/yellow]", soft_wrap=True)
        for sid, reason in sorted(service.registration_errors.items()):
            console.print(f"[red]{sid}: {reason}[/red]", soft_wrap=True)
        n = service.run_forever(stop, max_rounds=rounds, on_round=_print_round)
        why = "stop requested" if stop.is_set() else "done"
        console.print(f"{why}: stopped after {n} round(s), state saved")
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130)
    finally:
        restore_handlers()
        app_ctx.close()


@simulate_app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    from_: str = typer.Option(..., "--from", help="start, ISO-8601 with offset (or epoch seconds)"),
    to: str = typer.Option(..., "--to", help="end (exclusive), ISO-8601 with offset (or epoch seconds)"),
    step: str = typer.Option("5m", help="sample interval: 1m, 5m, 15m, 1h ..."),
    sites: Optional[int] = typer.Option(None, help="number of simulated sites (default 3)"),
    seed: Optional[int] = typer.Option(None, help="fleet seed (default 0)"),
    metrics: Optional[str] = typer.Option(None, help="comma-separated metric keys (default: all)"),
) -> None:
    """Generate a period fast (vectorised) into the database, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from wattline.context import open_context
    from wattline.simulator.engine import METRICS
    from wattline.simulator.replay import step_grid
    from wattline.simulator.service import replay_into_db

    obj = ctx.obj or {}
    n_sites = sites if sites is not None else obj.get("sites", 3)
    fleet_seed = seed if seed is not None else obj.get("seed", 0)
    try:
        start_ts, end_ts = timeutil.parse_instant(from_), timeutil.parse_instant(to)
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    if end_ts <= start_ts:
        raise typer.BadParameter("--to must be after --from")
    step_s = parse_interval(step)
    wanted = None
    if metrics:
        wanted = [m.strip() for m in metrics.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in METRICS]
        if unknown:
            raise typer.BadParameter(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    fleet = _fleet(n_sites, fleet_seed)
    total = len(step_grid(start_ts, end_ts, step_s))

    app_ctx = open_context()
    t0 = time.perf_counter()
    try:
        with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("replay", total=total)
            res = replay_into_db(simulator_ports(app_ctx), fleet, start_ts, end_ts, step_s,
                                 lambda done, _total: bar.update(task, completed=done), metrics=wanted)
    finally:
        app_ctx.close()
    dt = time.perf_counter() - t0
    console.print(
        f"replayed {res.sites} sites x {res.steps} steps ({timeutil.iso(start_ts)} .. {timeutil.iso(end_ts)}, "
        f"every {_fmt_interval(step_s)}): {res.readings} readings, {res.ledger_entries} ledger entries, "
        f"{res.quarantined} quarantined, {res.batches} batches in {dt:.1f} s "
        f"({res.readings / max(dt, 1e-9):,.0f} readings/s)", soft_wrap=True)
    for sid, note in sorted(res.notes.items()):
        console.print(f"[yellow]{sid}: {note}[/yellow]", soft_wrap=True)
    if res.continued_from_state:
        console.print(f"continued from saved state: {', '.join(res.continued_from_state)}")
    if res.state_saved:
        console.print(f"state saved for {res.state_saved} site(s): live mode continues from the replay's end")


from wattline.cli_devices_sim import devices_command  # noqa: E402
simulate_app.command("devices")(devices_command)
