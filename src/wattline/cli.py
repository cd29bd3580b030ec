"""The ``wattline`` command."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from wattline.domain import timeutil

app = typer.Typer(help="Wattline: energy telemetry you can trust and bill on.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
assets_app = typer.Typer(help="Assets: plants, systems, sites, devices, meters.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(assets_app, name="assets")

console = Console()
err = Console(stderr=True)


def _ctx():
    from wattline.context import open_context
    from wattline.store.mqtt_db_errors import is_database_unavailable

    try:
        return open_context()
    except Exception as exc:  # a database that is down or refuses us: say so, no traceback
        if not is_database_unavailable(exc):
            raise
        cause = getattr(exc, "orig", None) or exc
        _fail(f"cannot open the database: {str(cause).strip().splitlines()[0]}", code=1)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations of both databases (and the job engine's schema when WATTLINE_JOBS_URL is set)."""
    from wattline.config import get_settings
    from wattline.store.engines import dispose_engine, make_engine
    from wattline.store.migrate import upgrade_all

    s = get_settings()
    s.ensure_data_dir()
    main, tel = make_engine(s.main_database_url), make_engine(s.telemetry_database_url)
    upgrade_all(main, tel)
    dispose_engine(main)
    dispose_engine(tel)
    console.print("main and telemetry databases are up to date")
    if s.jobs_url:  # the job engine's queue: procrastinate's schema (idempotent), never the URL
        import asyncio

        from wattline.jobs.engine import apply_schema, engine_app

        async def queue() -> None:
            eng = engine_app(s.jobs_url)
            async with eng.open_async():
                await apply_schema(eng)

        asyncio.run(queue())
        console.print("job engine queue (procrastinate schema, WATTLINE_JOBS_URL) is up to date")


@assets_app.command("add")
def assets_add(
    name: str,
    kind: str = typer.Option(..., help="plant | system | site | device | meter"),
    timezone: str = typer.Option(..., help="IANA timezone, e.g. Europe/Berlin"),
    vendor: Optional[str] = typer.Option(None, help="vendor type, e.g. solarman, sungrow"),
    vendor_id: Optional[str] = typer.Option(None, "--vendor-id", help="the vendor's plant id"),
    asset_id: Optional[int] = typer.Option(None, "--id", help="explicit asset id"),
    start: Optional[str] = typer.Option(None, help="start of operation (ISO-8601), where a backfill begins"),
) -> None:
    """Register an asset. A plant with --vendor gets the points its vendor reports and
    the organization's account of that vendor."""
    from wattline import provisioning
    from wattline.sources.vendors.errors import UnknownVendorError

    start_ts = None
    if start:
        try:
            start_ts = timeutil.parse_instant(start)
        except ValueError as exc:
            _fail(f"--start: {exc}")
    if vendor and not vendor_id:
        _fail("--vendor needs --vendor-id")
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            if vendor:
                if kind != "plant":
                    _fail("only plants have vendors here: use --kind plant")
                new_id = provisioning.add_vendor_plant(conn, name, vendor, vendor_id, timezone, asset_id=asset_id,
                                                       start_operating_time=start_ts)
            else:
                new_id = provisioning.add_asset(conn, name, kind, timezone, asset_id=asset_id,
                                                start_operating_time=start_ts)
    except (provisioning.RegistryError, UnknownVendorError) as exc:
        _fail(str(exc))
    console.print(f"asset {name!r} added with id {new_id}")


@assets_app.command("list")
def assets_list() -> None:
    """List assets."""
    from wattline.store import registry

    ctx = _ctx()
    table = Table("id", "name", "kind", "timezone", "vendor", "vendor id")
    with ctx.dbs.main.connect() as conn:
        for r in registry.list_assets(conn):
            table.add_row(str(r["id"]), r["name"], r["kind"], r["timezone"], r["vendor_type"] or "",
                          r["vendor_plant_id"] or "")
    console.print(table)


@app.command("import")
def import_cmd(file: Path = typer.Argument(..., exists=False)) -> None:
    """Import readings from a CSV file: asset,point,ts,value,unit[,type]."""
    from wattline.sources.csv_import import CsvFormatError

    if not file.is_file():
        _fail(f"no such file: {file}")
    ctx = _ctx()
    try:
        report = _import_csv(ctx, file)
    except CsvFormatError as exc:
        _fail(str(exc))
    for e in report.rejected:
        err.print(f"line {e.line}: {e.reason}")
    for p in report.points_created:
        console.print(f"created point {p}")
    console.print(f"{report.rows} rows read, {report.written} written, {len(report.rejected)} rejected")
    if not report.ok:
        raise typer.Exit(1)


def _import_csv(ctx, path: Path):
    """The CSV source parses, provisioning registers the points it names, the pipeline
    ingests the batches the source builds with the read-only resolver."""
    from wattline import provisioning
    from wattline.sources.csv_import import ImportReport, RowError, read_csv
    from wattline.store.series_resolver import RegistrySeriesResolver

    readings = read_csv(path)
    with ctx.dbs.main.begin() as conn:
        registered = provisioning.register_points_by_name(conn, readings.registrations())
    report = ImportReport(rows=readings.rows_read, points_created=registered.created)
    resolver = RegistrySeriesResolver(ctx.dbs.main_reader)
    for batch, lines in readings.batches(resolver, registered.asset_ids, registered.refused):
        result = ctx.pipeline.ingest(batch)
        report.written += len(batch) - len(result.quarantined)
        by_key = {(int(s), int(t)): line for s, t, line in zip(batch.series_id, batch.ts, lines)}
        for q in result.quarantined:
            readings.rejected.append(RowError(by_key.get((q.series_id, q.ts), 0), q.reason))
    report.rejected = sorted(readings.rejected, key=lambda e: e.line)
    return report


def _series_query(asset: str, point: str, period: str, from_: str, to: str):
    """Validate a report's arguments; returns (context, asset row, point row, start, end)."""
    from wattline.domain.buckets import PERIODS
    from wattline.store import registry

    if period not in PERIODS:
        _fail(f"--period must be one of {', '.join(PERIODS)}")
    try:
        start, end = timeutil.parse_instant(from_), timeutil.parse_instant(to)
    except ValueError as exc:
        _fail(str(exc))
    if end <= start:
        _fail("--to must be after --from")
    ctx = _ctx()
    with ctx.dbs.main.connect() as conn:
        a = registry.asset_by_name(conn, asset)
        if a is None:
            _fail(f"unknown asset {asset!r}")
        p = registry.point(conn, a["id"], point)
        if p is None:
            _fail(f"asset {asset!r} has no point {point!r}")
    return ctx, a, p, start, end


@app.command("energy")
def energy_cmd(
    asset: str = typer.Option(...),
    point: str = typer.Option(...),
    period: str = typer.Option(..., help="5min | 15min | hour | day | month | year"),
    from_: str = typer.Option(..., "--from", help="ISO-8601 with offset"),
    to: str = typer.Option(..., "--to", help="ISO-8601 with offset (exclusive)"),
    fmt: str = typer.Option("table", "--format", help="table | json | csv"),
) -> None:
    """Energy per bucket in kWh over [from, to), with quality flags, its cost (priced on
    read by the cost versions in effect: wattline cost-versions) and the total."""
    from wattline.store import cost_versions_repo, queries

    if fmt not in ("table", "json", "csv"):
        _fail("--format must be table, json or csv")
    ctx, a, p, start, end = _series_query(asset, point, period, from_, to)
    if p["metric_type"] not in ("counter", "interval_energy", "power"):
        _fail(f"point {point!r} is a {p['metric_type']} series: energy needs counter, interval_energy or power")
    tz = a["timezone"]
    with ctx.dbs.main.connect() as conn:
        tariff = cost_versions_repo.tariff_for_asset(conn, a["id"])
    rows = queries.energy_buckets(ctx.dbs.telemetry, p["id"], period, start, end, tz, tariff=tariff)
    report = queries.energy_report(asset, point, period, tz, rows)
    if fmt == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["start", "end", "energy_kwh", "quality", "cost", "currency", "cost_quality"])
        for b in report["buckets"]:
            w.writerow([b["start"], b["end"], b["energy_kwh"], ";".join(b["quality"]),
                        "" if b["cost"] is None else b["cost"], b["currency"] or "", ";".join(b["cost_quality"])])
        w.writerow(["total", "", report["total_kwh"], "", "" if report["total_cost"] is None else report["total_cost"],
                    report["currency"] or "", ";".join(report["cost_quality"])])
    else:
        money = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        t = Table("start", "end", "energy kWh", "quality", "cost", "currency", "cost quality",
                  title=f"{asset} / {point} ({tz})")
        for b in report["buckets"]:
            t.add_row(b["start"], b["end"], f"{b['energy_kwh']:.3f}", ", ".join(b["quality"]), money(b["cost"]),
                      b["currency"] or "", ", ".join(b["cost_quality"]))
        t.add_row("total", "", f"{report['total_kwh']:.3f}", "", money(report["total_cost"]), report["currency"] or "",
                  ", ".join(report["cost_quality"]))
        console.print(t)


@app.command("stats")
def stats_cmd(
    asset: str = typer.Option(...),
    point: str = typer.Option(...),
    period: str = typer.Option(..., help="5min | 15min | hour | day | month | year"),
    from_: str = typer.Option(..., "--from", help="ISO-8601 with offset"),
    to: str = typer.Option(..., "--to", help="ISO-8601 with offset (exclusive)"),
    fmt: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """min / max / avg / last / count of a series' readings per bucket."""
    from wattline.store import queries

    ctx, a, p, start, end = _series_query(asset, point, period, from_, to)
    rows = queries.stat_buckets(ctx.dbs.telemetry, p["id"], period, start, end, a["timezone"])
    if fmt == "json":
        sys.stdout.write(json.dumps({"asset": asset, "point": point, "period": period, "unit": p["unit"],
                                     "timezone": a["timezone"], "buckets": rows}, indent=2) + "\n")
        return
    t = Table("start", "count", "min", "max", "avg", "last", title=f"{asset} / {point} [{p['unit']}]")
    fmt_v = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        t.add_row(r["start"], str(r["count"]), fmt_v(r["min"]), fmt_v(r["max"]), fmt_v(r["avg"]), fmt_v(r["last"]))
    console.print(t)


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    mqtt_prefix: str = typer.Option("autovolt", help="with WATTLINE_MQTT_URL: the ingester's topic prefix"),
    mqtt_group: Optional[str] = typer.Option(None, help="with WATTLINE_MQTT_URL: its shared-subscription group"),
) -> None:
    """Start the API (applies migrations first); with WATTLINE_MQTT_URL also the MQTT ingester."""
    import uvicorn

    from wattline import logs
    from wattline.api.app import create_app
    from wattline.config import get_settings

    logs.configure()
    url = get_settings().mqtt_url
    mqtt = {"url": url, "prefix": mqtt_prefix, "group": mqtt_group} if url else None
    uvicorn.run(create_app(schedule=True, mqtt=mqtt), host=host, port=port, log_config=None)


@app.command("backfill")
def backfill_cmd(plant_id: int = typer.Argument(..., help="the plant's asset id")) -> None:
    """Load a plant's history from its start (resumes where a previous run stopped)."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from wattline import logs
    from wattline.jobs.backfill import backfill_plant
    from wattline.jobs.plants import PlantNotFound, PlantNotSyncable

    from wattline.jobs.dispatch import defer_now, engine_configured

    logs.configure("WARNING")
    if engine_configured():  # a worker runs it; one plant is never backfilled by two at once
        from wattline.jobs.leases import plant_resource

        jid = defer_now("backfill", lock=plant_resource(plant_id), queueing_lock=f"backfill:{plant_id}", plant_id=plant_id)
        console.print_json(data={"deferred": jid, "plantId": plant_id,
                                 "note": None if jid else "a backfill of this plant is already queued"})
        return
    ctx = _ctx()
    with Progress(TextColumn("[bold]plant {task.fields[plant]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[records]} records {task.fields[note]}"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("backfill", total=None, plant=plant_id, records=0, note="")

        def progress(p):
            note = f"paused until {timeutil.iso(p.paused_until)} (quota)" if p.paused_until else ""
            bar.update(task, total=p.total_chunks, completed=p.chunk, records=p.records, note=note)

        try:
            result = asyncio.run(backfill_plant(ctx, plant_id, on_progress=progress))
        except (PlantNotFound, PlantNotSyncable, ValueError) as exc:
            _fail(str(exc))
    console.print_json(data=result.to_dict())
    if not result.success:
        raise typer.Exit(1)


@app.command("sync-all")
def sync_all_cmd() -> None:
    """Run the daily sync now for every plant of organizations with auto sync."""
    import asyncio

    from wattline import logs
    from wattline.jobs.dispatch import defer_now, engine_configured
    from wattline.jobs.sync import sync_all

    logs.configure("WARNING")
    if engine_configured():
        jid = defer_now("sync", lock="sync", queueing_lock="sync:None")
        console.print_json(data={"deferred": jid, "note": None if jid else "a sync is already queued"})
        return
    ctx = _ctx()
    result = asyncio.run(sync_all(ctx))
    console.print_json(data=result.to_dict())
    if not result.success:
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    port: int = typer.Option(8000, help="port of the API and dashboard"),
    since: str = typer.Option("2024-01-01", help="start of the plants' history (date or ISO time)"),
    cloud_port: int = typer.Option(0, help="port of the emulated vendor clouds (0: any free port)"),
    serve: bool = typer.Option(True, help="serve the API after the backfill"),
) -> None:
    """Set up work order 456 on the emulated vendor clouds, backfill it, serve the API."""
    import asyncio

    from wattline import demo, logs

    logs.configure("WARNING")
    try:
        since_ts = timeutil.parse_instant(since if "T" in since else f"{since}T00:00:00Z")
    except ValueError as exc:
        _fail(f"--since: {exc}")
    ctx = _ctx()
    with demo.BackgroundCloud(demo.cloud_config(since_ts), port=cloud_port) as cloud:
        console.print(f"emulated vendor clouds on {cloud.base_url}")
        demo.set_up(ctx, cloud.base_url, since_ts)
        asyncio.run(demo.backfill_all(ctx, console))
        demo.print_summary(ctx, console)
        demo.campus(ctx, console, port=port)  # classrooms fed by the device fleet
        if not serve:
            return
        import uvicorn

        from wattline.api.app import create_app

        console.print(f"API and dashboard on http://127.0.0.1:{port}/  (docs: /docs)")
        console.print("sign in: create a user with  wattline users create admin --role superadmin")
        logs.configure("INFO")
        uvicorn.run(create_app(ctx, schedule=True), host="127.0.0.1", port=port, log_config=None)


def _mount_sub_commands() -> None:
    """Command groups that live in their own modules (imported here, at the end, because
    they use this module's helpers)."""
    from wattline.cli_cost import cost_versions_app
    from wattline.cli_devices import mount as mount_devices
    from wattline.cli_legacy import mount as mount_legacy
    from wattline.cli_mqtt import mount as mount_mqtt
    from wattline.cli_orgs import mount as mount_orgs
    from wattline.cli_reconcile import mount as mount_reconcile
    from wattline.cli_security import tokens_app, users_app
    from wattline.cli_simulate import simulate_app
    from wattline.cli_vendors import vendors_app

    app.add_typer(vendors_app, name="vendors")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(users_app, name="users")
    app.add_typer(simulate_app, name="simulate")
    app.add_typer(cost_versions_app, name="cost-versions")
    mount_devices(app)  # classrooms, devices
    mount_mqtt(app)
    mount_reconcile(app)  # reconcile, review
    mount_legacy(app)  # import-legacy
    mount_orgs(app)  # orgs set --auto-register-devices
    from wattline.cli_amber import cost_app

    app.add_typer(cost_app, name="cost")  # cost from-amber
    from wattline.cli_poll import mount as mount_poll
    from wattline.cli_systems import mount as mount_systems

    mount_systems(app)  # systems add|list|share, composites add
    import wattline.cli_system_backfill  # noqa: F401  (systems backfill, on the systems group)
    mount_poll(app)  # poll [--once]
    from wattline.cli_points import mount as mount_points
    mount_points(app)  # points daily --catchup|--clear, cleanup
    import wattline.cli_worker  # noqa: F401  (worker, jobs defer|list|wait: the job engine)


_mount_sub_commands()

if __name__ == "__main__":  # pragma: no cover
    app()
