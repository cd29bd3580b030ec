"""``wattline import-legacy``: the predecessor's activity log into the ledger, through
the one pipeline, and its totals compared with the old system's.

The source (``sources.legacy_import``) has parsed and checked the whole file. Here the
registry is checked next (a device registered as a ``counter`` device cannot take
power-only history), before anything is written; then unknown classrooms and devices
are registered (``provisioning``; a new device measures by ``power``, and what it sent
while unknown is replayed, as ``wattline devices add`` does), the synthetic
documents go through :func:`~wattline.jobs.device_telemetry.ingest_documents` (source
``legacy``), and each device's ledger total over the log's span is read back.

The same file again produces the same documents: they are recognised as repeats and
nothing is written twice, and the totals printed are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wattline import clock, provisioning
from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.domain.devices import EnergyMethod, POWER
from wattline.jobs.device_telemetry import ingest_documents, replay_device
from wattline.sources.legacy_import import SOURCE, LegacyDevice, LegacyLog, LineError
from wattline.store import device_registry, ledger_totals, registry

CHUNK = 5000  # documents per pipeline call


class LegacyImportError(ValueError):
    """The file or the registry does not allow the import; ``errors`` by line. Nothing was written."""

    def __init__(self, errors: list[LineError]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


@dataclass
class DeviceComparison:
    """One device: the old system's total and the new one, both milli-Wh.

    ``ledger_milli_wh`` is the ledger's sum over the log's span (None in a dry run);
    ``computed_milli_wh`` the exact integral of the log's step function."""

    esp32_name: str
    device_id: str
    classroom: str
    events: int
    first_ts: int  # span of its synthetic readings, UTC epoch s
    last_ts: int
    first_event_ts: int
    last_event_ts: int
    legacy_total_kwh: float | None
    computed_milli_wh: int
    log_on_time_s: int
    ledger_milli_wh: int | None = None
    ledger_on_time_s: int | None = None

    @property
    def new_milli_wh(self) -> int:
        return self.computed_milli_wh if self.ledger_milli_wh is None else self.ledger_milli_wh

    @property
    def difference_kwh(self) -> float | None:
        """New minus old, kWh (None without an old total)."""
        if self.legacy_total_kwh is None:
            return None
        return round(self.new_milli_wh / 1e6 - self.legacy_total_kwh, 6)

    def to_dict(self) -> dict:
        return {"esp32_name": self.esp32_name, "device_id": self.device_id, "classroom": self.classroom,
                "events": self.events, "first_event": timeutil.iso(self.first_event_ts),
                "last_event": timeutil.iso(self.last_event_ts), "legacy_total_kwh": self.legacy_total_kwh,
                "new_total_kwh": self.new_milli_wh / 1e6, "new_total_milli_wh": self.new_milli_wh,
                "new_total_from": "computed" if self.ledger_milli_wh is None else "ledger",
                "difference_kwh": self.difference_kwh, "log_on_time_s": self.log_on_time_s,
                "ledger_on_time_s": self.ledger_on_time_s}


@dataclass
class LegacyImportReport:
    organization: str
    dry_run: bool
    rows: int
    documents: int
    devices: list[DeviceComparison] = field(default_factory=list)
    classrooms_added: list[str] = field(default_factory=list)
    devices_added: list[str] = field(default_factory=list)
    accepted: int = 0
    repeats: int = 0
    kept: int = 0  # documents kept out of the ledger (should be none: they were checked)
    classroom_mismatches: int = 0  # documents naming another classroom than the registry's (it wins)
    replayed: int = 0  # messages a new device had sent while unknown, now in the ledger

    def totals(self) -> dict:
        old = [d.legacy_total_kwh for d in self.devices if d.legacy_total_kwh is not None]
        new = sum(d.new_milli_wh for d in self.devices)
        return {"legacy_total_kwh": round(sum(old), 6) if old else None, "new_total_kwh": new / 1e6,
                "difference_kwh": (round(sum(d.difference_kwh for d in self.devices
                                             if d.difference_kwh is not None), 6) if old else None)}

    def to_dict(self) -> dict:
        return {"organization": self.organization, "dry_run": self.dry_run, "rows": self.rows,
                "documents": self.documents, "accepted": self.accepted, "repeats": self.repeats,
                "kept": self.kept, "classroom_mismatches": self.classroom_mismatches,
                "replayed": self.replayed,
                "classrooms_added": self.classrooms_added, "devices_added": self.devices_added,
                "devices": [d.to_dict() for d in self.devices], "total": self.totals()}


def import_legacy(ctx: AppContext, log: LegacyLog, organization: str | None = None, *,
                  dry_run: bool = False) -> LegacyImportReport:
    """Import a parsed log for ``organization`` (name; None: the default organization).

    Raises :class:`LegacyImportError` (nothing written) for a log with errors or a
    registry that conflicts with it, ``provisioning.RegistryError`` for an unknown
    organization. ``dry_run``: check and report the totals the ledger would get,
    writing nothing."""
    if not log.ok:
        raise LegacyImportError(log.errors)
    org_name = organization or registry.DEFAULT_ORG
    report = LegacyImportReport(org_name, dry_run, log.rows, log.documents)
    with ctx.dbs.main.connect() as conn:
        org = device_registry.organization_id(conn, org_name)
        if org is None and organization is not None:
            raise provisioning.RegistryError(f"unknown organization {organization!r}")
        rooms, known = _registry_state(conn, org, log.devices)
    errors = [LineError(d.first_line, f"{d.name} is registered as a {known[d.name]} device: its energy is its "
                                      "counter's, and the log has only power")
              for d in log.devices if known.get(d.name, EnergyMethod.POWER.value) != EnergyMethod.POWER.value]
    if errors:
        raise LegacyImportError(errors)
    report.classrooms_added = sorted({d.classroom for d in log.devices} - rooms)
    report.devices_added = [d.name for d in log.devices if d.name not in known]
    report.devices = [_comparison(d) for d in log.devices]
    if dry_run:
        return report

    with ctx.dbs.main.begin() as conn:
        org = provisioning.organization_named(conn, organization)
        for room in report.classrooms_added:
            provisioning.add_classroom(conn, room, organization_id=org)
        for d in log.devices:
            if d.name not in known:
                provisioning.add_device(conn, d.esp32_name, d.device_id, d.classroom,
                                        method=EnergyMethod.POWER.value, organization_id=org)
    for d in log.devices:  # what a new device sent while it was unknown goes to the ledger too
        if d.name not in known:
            report.replayed += replay_device(ctx.pipeline, ctx.dbs.main_reader, org, d.esp32_name,
                                             d.device_id).replayed
    docs = [doc for d in log.devices for doc in d.documents()]
    now = clock.now_s()
    for a in range(0, len(docs), CHUNK):
        result, invalid = ingest_documents(ctx.pipeline, ctx.dbs.main_reader, org, docs[a:a + CHUNK],
                                           source=SOURCE, now=now)
        report.accepted += result.accepted
        report.repeats += result.repeats
        report.kept += result.quarantined + result.unknown_device + len(invalid)
        report.classroom_mismatches += result.classroom_mismatches
    with ctx.dbs.main_reader.connect() as mconn, ctx.dbs.telemetry.connect() as tconn:
        for d, c in zip(log.devices, report.devices):
            series = device_registry.device(mconn, org, d.esp32_name, d.device_id)["series"]
            total = ledger_totals.series_total(tconn, series[POWER], c.first_ts, c.last_ts)
            c.ledger_milli_wh, c.ledger_on_time_s = total.energy_milli_wh, total.on_time_s
    return report


def _registry_state(conn, org: int | None, devices: list[LegacyDevice]) -> tuple[set[str], dict[str, str]]:
    """(names of the organization's classrooms, device name -> energy method of the
    log's devices already registered)."""
    if org is None:
        return set(), {}
    rooms = {r["name"] for r in device_registry.classrooms(conn, org)}
    known = {}
    for d in devices:
        row = device_registry.device(conn, org, d.esp32_name, d.device_id)
        if row is not None:
            known[d.name] = row["energy_method"]
    return rooms, known


def _comparison(d: LegacyDevice) -> DeviceComparison:
    first, last = d.span()
    return DeviceComparison(d.esp32_name, d.device_id, d.classroom, len(d.events), first, last,
                            d.events[0].ts, d.events[-1].ts,
                            d.legacy_total_kwh, d.step_energy_milli_wh(), d.on_time_s())
