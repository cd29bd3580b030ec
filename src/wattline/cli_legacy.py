"""``wattline import-legacy FILE``: the predecessor's activity log into the ledger
(mounted by ``cli.py``). The format is documented in ``sources/legacy_import.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table


def mount(app: typer.Typer) -> None:
    app.command("import-legacy")(import_legacy_command)


def _kwh(milli_or_kwh: float | None) -> str:
    return "-" if milli_or_kwh is None else f"{milli_or_kwh:.4f}"


def import_legacy_command(
    file: Path = typer.Argument(..., help="CSV (header: timestamp,esp32_name,device_id,classroom,event,"
                                          "rated_power_w,legacy_total_kwh) or JSON lines"),
    organization: Optional[str] = typer.Option(None, help="organization name (default: the default organization)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and show the totals; write nothing"),
    fmt: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Import the old system's switch on/off log: synthetic telemetry through the
    pipeline, then per device the old total, the ledger's and the difference.
    A bad file is listed by line and nothing is written; a re-run writes nothing twice."""
    from wattline import clock, provisioning
    from wattline.cli import _ctx, _fail, console, err
    from wattline.jobs.legacy_import import LegacyImportError, import_legacy
    from wattline.sources.legacy_import import read_legacy_file

    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    if not file.is_file():
        _fail(f"no such file: {file}")
    try:
        log = read_legacy_file(file, now=clock.now_s())
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")

    def refuse(errors) -> None:
        if fmt == "json":
            sys.stdout.write(json.dumps({"file": str(file), "written": False, "errors": [
                {"line": e.line, "reason": e.reason} for e in errors]}, indent=2) + "\n")
        for e in errors:
            err.print(f"{file}:{e.line}: {e.reason}" if e.line else f"{file}: {e.reason}", markup=False,
                      highlight=False)
        err.print(f"{len(errors)} error(s): nothing written")
        raise typer.Exit(1)

    if not log.ok:
        refuse(log.errors)  # before the databases are even opened
    ctx = _ctx()
    try:
        report = import_legacy(ctx, log, organization, dry_run=dry_run)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    except LegacyImportError as exc:
        refuse(exc.errors)
    if fmt == "json":
        sys.stdout.write(json.dumps({"file": str(file), **report.to_dict()}, indent=2) + "\n")
        return
    new_from = "computed from the log" if dry_run else "from the ledger"
    t = Table(title=f"legacy import: {file.name}" + (" (dry run: nothing written)" if dry_run else ""))
    t.add_column("device", no_wrap=True)
    for name in ("classroom", "events", "on h", "old kWh", "new kWh", "diff kWh"):
        t.add_column(name, justify="left" if name == "classroom" else "right")
    for d in report.devices:
        on_s = d.log_on_time_s if d.ledger_on_time_s is None else d.ledger_on_time_s
        t.add_row(f"{d.esp32_name}/{d.device_id}", d.classroom, str(d.events), f"{on_s / 3600:.2f}",
                  _kwh(d.legacy_total_kwh),
                  _kwh(d.new_milli_wh / 1e6), "-" if d.difference_kwh is None else f"{d.difference_kwh:+.4f}")
    total = report.totals()
    t.add_row("total", "", str(sum(d.events for d in report.devices)), "", _kwh(total["legacy_total_kwh"]),
              _kwh(total["new_total_kwh"]),
              "-" if total["difference_kwh"] is None else f"{total['difference_kwh']:+.4f}")
    without = [f"{d.esp32_name}/{d.device_id}" for d in report.devices if d.legacy_total_kwh is None]
    t.caption = f"new: {new_from}" + (f"; no old total for {', '.join(without)}: the difference is over "
                                      "the other devices" if without else "")
    console.print(t)
    verb = "would add" if dry_run else "added"
    if report.classrooms_added:
        console.print(f"classrooms {verb}: {', '.join(report.classrooms_added)}")
    if report.devices_added:
        console.print(f"devices {verb} (method power): {', '.join(report.devices_added)}")
    if dry_run:
        console.print(f"{report.rows} rows, {report.documents} synthetic documents; nothing written")
    else:
        console.print(f"{report.rows} rows, {report.documents} synthetic documents: {report.accepted} new, "
                      f"{report.repeats} already in the ledger" + (f", {report.kept} kept out" if report.kept else ""))
        if report.replayed:
            console.print(f"replayed {report.replayed} messages the new devices had sent while unknown")
        if report.classroom_mismatches:
            console.print(f"{report.classroom_mismatches} documents name another classroom than the registry's "
                          "(the registry's is used)")
        if report.kept:
            raise typer.Exit(1)
