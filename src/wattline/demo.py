"""``wattline demo``: the whole system on the embedded default, no other service.

Sets up an organization, work order 456 with plants 123 and 124 (Solarman) and 125
(Sungrow iSolarCloud) on the emulated vendor clouds (served on loopback by this
process), backfills them with progress bars, prints the seed-000 summaries, adds the campus of
seeds 002/004 (``demo_campus``: classrooms of metered devices fed by the simulated
fleet, through Mosquitto when ``WATTLINE_MQTT_URL`` is set, else through the HTTP ingest
path), then serves the API and dashboard with a 15-minute sync schedule so the data
stays live. Running it again reuses what is stored: the backfill resumes instead of
starting over, and the campus feed resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wattline import demo_campus, provisioning
from wattline.context import AppContext
from wattline.jobs.backfill import backfill_plant
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS, CloudConfig, PlantProfile
from wattline.simulator.vendor_cloud.server import BackgroundCloud  # noqa: F401 - the demo's cloud, used by the CLI
from wattline.store import demo_setup_repo, plant_queries, registry
from wattline.store.engines import write_transaction

ORG = "Demo Solar O&M"
WORK_ORDER_ID = 456


@dataclass(frozen=True)
class DemoPlant:
    plant_id: int
    name: str
    vendor: str
    vendor_plant_id: str
    timezone: str
    latitude: float
    longitude: float
    capacity_kw: float


PLANTS = (
    DemoPlant(123, "Berlin Rooftop 123", "solarman", "64786338", "Europe/Berlin", 52.52, 13.40, 500.0),
    DemoPlant(124, "Madrid Carport 124", "solarman", "64786339", "Europe/Madrid", 40.42, -3.70, 800.0),
    DemoPlant(125, "Jaipur Field 125", "sungrow", "5001250", "Asia/Kolkata", 26.91, 75.79, 300.0),
)


def cloud_config(since_ts: int) -> CloudConfig:
    cfg = CloudConfig()
    for p in PLANTS:
        profile = PlantProfile(start_operating_ts=since_ts, capacity_kw=p.capacity_kw, latitude=p.latitude,
                               longitude=p.longitude, timezone=p.timezone, name=p.name)
        getattr(cfg, p.vendor).plants[p.vendor_plant_id] = profile
    return cfg


def set_up(ctx: AppContext, base_url: str, since_ts: int) -> dict[str, int]:
    """Idempotent: creates what is missing, points the vendor accounts at ``base_url``."""
    accounts = {}
    # the write lock from BEGIN: a second demo on the same data directory waits for this
    # one's set-up instead of failing to upgrade its read ('database is locked')
    with write_transaction(ctx.dbs.main) as conn:
        org = registry.ensure_organization(conn, ORG, "Europe/Berlin")
        demo_setup_repo.set_auto_sync(conn, org, 15)
        for vendor in ("solarman", "sungrow"):
            name = f"{vendor} (emulated)"
            account_id = demo_setup_repo.vendor_account_id(conn, org, name)
            if account_id is None:
                # the emulated clouds on loopback are not quota-limited
                accounts[vendor] = provisioning.add_vendor_account(
                    conn, ctx.settings, vendor, name, DEFAULT_CREDENTIALS[vendor], base_url=base_url,
                    organization_id=org, rate_limits=provisioning.UNLIMITED)
            else:
                accounts[vendor] = account_id
                demo_setup_repo.set_base_url(conn, account_id, base_url)
        for p in PLANTS:
            if registry.asset_by_id(conn, p.plant_id) is None:
                provisioning.add_vendor_plant(
                    conn, p.name, p.vendor, p.vendor_plant_id, p.timezone, asset_id=p.plant_id,
                    organization_id=org, vendor_account_id=accounts[p.vendor], start_operating_time=since_ts,
                    capacity_kw=p.capacity_kw, latitude=p.latitude, longitude=p.longitude)
        if not demo_setup_repo.group_exists(conn, WORK_ORDER_ID):
            registry.add_group(conn, "Work order 456", "work_order", [p.plant_id for p in PLANTS],
                               group_id=WORK_ORDER_ID, organization_id=org)
    return accounts


async def backfill_all(ctx: AppContext, console: Console) -> list:
    results = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[records]:>7} records"), TimeElapsedColumn(), console=console) as bar:
        tasks = {p.plant_id: bar.add_task(p.name, total=None, records=0) for p in PLANTS}
        for p in PLANTS:
            def progress(pr, task=tasks[p.plant_id]):
                bar.update(task, total=pr.total_chunks, completed=pr.chunk, records=pr.records)

            result = await backfill_plant(ctx, p.plant_id, on_progress=progress)
            bar.update(tasks[p.plant_id], completed=result.chunksProcessed,
                       total=max(result.chunksProcessed, bar.tasks[tasks[p.plant_id]].total or 1))
            results.append(result)
    return results


def print_summary(ctx: AppContext, console: Console) -> None:
    t = Table("plant", "today kWh", "month MWh", "year MWh", "total MWh", "power kW", "updated (UTC)",
              title="plant_aggregates / work_order_aggregates", caption=", ".join(
                  f"{p.plant_id}: {p.name} ({p.vendor})" for p in PLANTS))
    fields = ("daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh", "total_energy_mwh", "current_power_kw")

    def row(label: str, s: dict) -> None:
        updated = (s.get("last_update_time") or "-").replace("T", " ")[5:16]
        t.add_row(label, *(f"{s.get(k) or 0:.3f}" for k in fields), updated)

    for p in PLANTS:
        row(str(p.plant_id), plant_queries.summary(ctx.dbs.telemetry, p.plant_id) or {})
    row(f"WO {WORK_ORDER_ID}", plant_queries.work_order_summary(ctx.dbs.telemetry, WORK_ORDER_ID) or {})
    console.print(t)


def campus(ctx: AppContext, console: Console, *, port: int = 8000) -> demo_campus.Campus:
    """Set up the demo campus, feed it the fleet's messages up to now, print its classrooms."""
    c = demo_campus.set_up(ctx)
    try:
        result = demo_campus.feed(ctx, c, mqtt_url=ctx.settings.mqtt_url)
    except (TimeoutError, OSError) as exc:  # the broker unreachable or too slow: the embedded path
        console.print(f"[yellow]campus: no feed through Mosquitto ({exc}); using the HTTP ingest path[/yellow]")
        result = demo_campus.feed(ctx, c)
    demo_campus.print_summary(ctx, c, result, console, port=port)
    return c
