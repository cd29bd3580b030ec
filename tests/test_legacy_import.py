"""``wattline import-legacy``: the predecessor's switch log through the one pipeline.

Totals are checked against hand computations (60 W for 2 h 30 min = 0.150 kWh), on
SQLite and PostgreSQL; a re-run writes nothing; bad files are listed by line and
write nothing; the CLI (a subprocess) prints the table and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from world import make_ctx
from wattline import provisioning
from wattline.domain import timeutil
from wattline.jobs.device_telemetry import ingest_documents
from wattline.jobs.legacy_import import LegacyImportError, import_legacy
from wattline.sources.devices import TelemetryPayload, parse_document
from wattline.sources.legacy_import import read_legacy
from wattline.store import device_registry, queries

TZ = "Asia/Kolkata"
DAY = date(2025, 11, 5)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "legacy"
HEADER = "timestamp,esp32_name,device_id,classroom,event,rated_power_w,legacy_total_kwh\n"

# a 60 W light on 09:00-11:30 (2 h 30 min: 0.150 kWh) and a 75 W fan on 09:05-09:45 and
# 10:00-10:12 (40 + 12 min at 75 W: 0.065 kWh), then changed to 100 W at 10:06 (6 min at
# 75 W + 6 min at 100 W instead: 0.0075 + 0.010 -> 0.0675 kWh in all)
LOG = HEADER + """\
2025-11-05T09:00:00+05:30,ESP01,light_1,CR-101,on,60,0.148
2025-11-05T11:30:00+05:30,ESP01,light_1,CR-101,off,60,
2025-11-05T09:05:00+05:30,ESP01,fan_1,CR-101,on,75,0.070
2025-11-05T09:45:00+05:30,ESP01,fan_1,CR-101,off,,
2025-11-05T10:00:00+05:30,ESP01,fan_1,CR-101,on,75,
2025-11-05T10:06:00+05:30,ESP01,fan_1,CR-101,on,100,
2025-11-05T10:12:00+05:30,ESP01,fan_1,CR-101,off,,
"""
LIGHT_MWH = 150_000  # 60 W x 9000 s / 3.6
FAN_MWH = 67_500  # 75 W x 2400 s + 75 W x 360 s + 100 W x 360 s


def _read(text: str | bytes):
    return read_legacy(text.encode() if isinstance(text, str) else text, now=timeutil.parse_instant(
        "2026-01-01T00:00:00Z"))


def _counts(dbs) -> tuple[int, int, int]:
    with dbs.telemetry.connect() as c:
        raw = c.exec_driver_sql("SELECT COUNT(*) FROM raw_events").scalar()
        readings = c.exec_driver_sql("SELECT COUNT(*) FROM readings").scalar()
    with dbs.main.connect() as c:
        assets = c.exec_driver_sql("SELECT COUNT(*) FROM assets").scalar()
    return raw, readings, assets


def _series(dbs, esp="ESP01", dev="light_1", org=1) -> dict[str, int]:
    with dbs.main.connect() as conn:
        return device_registry.device(conn, org, esp, dev)["series"]


# ------------------------------------------------------------------ the source, pure


def test_the_step_function_integrates_to_the_hand_computation():
    log = _read(LOG)
    assert log.ok and log.format == "csv" and log.rows == 7
    light, fan = ({d.device_id: d for d in log.devices}[k] for k in ("light_1", "fan_1"))
    assert light.step_energy_milli_wh() == LIGHT_MWH and light.on_time_s() == 9000
    assert fan.step_energy_milli_wh() == FAN_MWH and light.legacy_total_kwh == 0.148
    # each event a document, and one a second before each change of power with the power and state until then
    start = timeutil.parse_instant("2025-11-05T09:00:00+05:30")
    end = start + 9000
    assert [(p.ts - start, p.power_w, p.switch_on) for p in light.points()] == [
        (-1, 0.0, False), (0, 60.0, True), (9000 - 1, 60.0, True), (9000, 0.0, False)]
    # both ways the ledger may integrate them give the step's integral: the power and
    # state held from each reading (the switch rule) ...
    for dev, expected in ((light, LIGHT_MWH), (fan, FAN_MWH)):
        pts = dev.points()
        held = sum(a.power_w * (b.ts - a.ts) for a, b in zip(pts, pts[1:]) if a.switch_on) / 3.6
        on_time = sum(b.ts - a.ts for a, b in zip(pts, pts[1:]) if a.switch_on)
        # ... and the trapezoid (the half seconds cancel)
        trapezoid = sum((a.power_w + b.power_w) / 2 * (b.ts - a.ts) for a, b in zip(pts, pts[1:])) / 3.6
        assert held == pytest.approx(expected) and trapezoid == pytest.approx(expected)
        assert on_time == dev.on_time_s()
    for d in light.documents():
        assert isinstance(parse_document(d), TelemetryPayload)
    assert light.span() == (start - 1, end)
    assert light.documents() == _read(LOG).devices[1].documents()  # the same log, the same documents


def test_json_lines_read_like_csv():
    csv_log = read_legacy((EXAMPLES / "activity_log.csv").read_bytes())
    jsonl_log = read_legacy((EXAMPLES / "activity_log.jsonl").read_bytes())
    assert csv_log.ok and jsonl_log.ok and jsonl_log.format == "jsonl"
    assert [d.documents() for d in csv_log.devices] == [d.documents() for d in jsonl_log.devices]


@pytest.mark.parametrize("body, line, words", [
    (HEADER + "2025-11-05T09:00:00+05:30,ESP01,light_1,CR-101,flicker,60,\n", 2, "event must be on or off"),
    (HEADER + "2025-11-05T09:00:00+05:30,ESP01,light_1,CR-101,on,,\n", 2, "needs rated_power_w"),
    (HEADER + "2025-11-05T09:00:00,ESP01,light_1,CR-101,on,60,\n", 2, "no UTC offset"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light 1,CR-101,on,60,\n", 2, "must not contain spaces"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,-60,\n", 2, ">= 0"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60\n", 2, "6 fields, the header has 7"),
    (HEADER + "2027-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60,\n", 2, "in the future"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60,\n", 2, "still on at its last event"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60,\n2025-11-05T09:00:00Z,ESP01,light_1,CR-101,off,,\n",
     3, "two events of ESP01/light_1"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60,1.0\n2025-11-05T10:00:00Z,ESP01,light_1,CR-101,off,,2.0\n",
     3, "legacy_total_kwh of ESP01/light_1 is 1"),
    (HEADER + "2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60,\n2025-11-05T10:00:00Z,ESP01,light_1,CR-102,off,,\n",
     3, "is in classroom 'CR-101'"),
    ("when,esp32_name,device_id,classroom,event\n", 1, "missing column(s) timestamp; unknown column(s) when"),
    ('{"timestamp": "2025-11-05T09:00:00Z", "esp32_name": "ESP01", "device_id": "light_1", "classroom": "CR-101", '
     '"event": "on", "rated_power_w": "lots"}\n{"nope": 1}\n[1]\n{bad json\n', 1, "rated_power_w must be a number"),
    (b"timestamp,esp32_name,device_id,classroom,event\n2025-11-05T09:00:00Z,ESP\xff1,light_1,CR-101,on\n", 2,
     "not UTF-8: byte 0xff at column 25"),
    ("", 0, "empty"),
])
def test_bad_files_are_listed_by_line(body, line, words):
    log = _read(body)
    assert not log.ok and not log.devices
    assert log.errors[0].line == line and words in log.errors[0].reason, log.errors


def test_every_bad_line_is_listed():
    body = ('{"timestamp": "2025-11-05T09:00:00Z", "esp32_name": "ESP01", "device_id": "light_1", '
            '"classroom": "CR-101", "event": "on", "rated_power_w": "lots"}\n\n{"nope": 1}\n[1]\n{bad json\n')
    log = _read(body)
    assert [e.line for e in log.errors] == [1, 3, 4, 5] and log.rows == 4
    assert "unknown field(s) nope" in log.errors[1].reason and "not JSON" in log.errors[3].reason


# ------------------------------------------------------------------ through the pipeline


def test_the_ledger_gets_the_hand_computed_totals_and_a_rerun_writes_nothing(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.ensure_organization(conn)
        provisioning.add_classroom(conn, "CR-101", TZ)  # its devices are added
    # the light sent a message the next day while it was unknown: kept, then replayed when the import registers it
    later = {"esp32_name": "ESP01", "device_id": "light_1", "classroom": "CR-101", "power_w": 60.0,
             "timestamp": "2025-11-06T09:00:00+05:30", "switch_state": True}
    kept, _ = ingest_documents(ctx.pipeline, dbs.main_reader, 1, [later], source="mqtt")
    assert kept.unknown_device == 1
    report = import_legacy(ctx, _read(LOG))
    assert report.classrooms_added == [] and report.devices_added == ["ESP01/fan_1", "ESP01/light_1"]
    assert report.replayed == 1
    assert report.accepted == report.documents == 4 + 10 and report.repeats == 0 and report.kept == 0
    by = {d.device_id: d for d in report.devices}
    # every ledger entry is rounded to whole milli-Wh: at most half of one per entry (2 per on-spell)
    assert abs(by["light_1"].ledger_milli_wh - LIGHT_MWH) <= 1
    assert abs(by["fan_1"].ledger_milli_wh - FAN_MWH) <= 3
    assert round(by["light_1"].ledger_milli_wh / 1e6, 3) == 0.150
    # the switch rule's on-time is the log's: 2 h 30 min, and 40 + 12 min
    assert by["light_1"].ledger_on_time_s == 9000 and by["fan_1"].ledger_on_time_s == 52 * 60
    assert by["light_1"].difference_kwh == pytest.approx(0.150 - 0.148, abs=2e-6)

    # the ledger is what the aggregates and reports read: the day's energy is the same
    light = _series(dbs)
    start, end = timeutil.day_bounds(DAY, TZ)
    (day,) = queries.energy_buckets(dbs.telemetry, light["power"], "day", start, end, TZ)
    assert day.energy_milli_wh == by["light_1"].ledger_milli_wh
    # every entry holding energy starts where the switch is on
    with dbs.telemetry.connect() as c:
        on = dict(c.exec_driver_sql(f"SELECT ts, value FROM readings WHERE series_id = {light['switch_state']}").all())
        entries = c.exec_driver_sql(
            f"SELECT start_ts, delta_milli_wh FROM readings WHERE series_id = {light['power']} "
            "AND delta_milli_wh IS NOT NULL").all()
    assert entries and all(on[s] == 1.0 for s, delta in entries if delta)

    before = _counts(dbs)
    again = import_legacy(ctx, _read(LOG))
    assert again.accepted == 0 and again.repeats == again.documents and again.devices_added == []
    assert _counts(dbs) == before
    assert [d.to_dict() for d in again.devices] == [d.to_dict() for d in report.devices]


def test_a_bad_file_or_a_conflicting_registry_writes_nothing(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.ensure_organization(conn)
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", method="counter")
    before = _counts(dbs)
    with pytest.raises(LegacyImportError) as bad:
        import_legacy(ctx, _read(LOG.replace(",on,60,0.148", ",on,sixty,0.148")))
    assert [(e.line, e.reason) for e in bad.value.errors] == [(2, "rated_power_w must be a number, not 'sixty'")]
    with pytest.raises(LegacyImportError) as conflict:
        import_legacy(ctx, _read(LOG))
    assert conflict.value.errors[0].line == 4 and "registered as a counter device" in conflict.value.errors[0].reason
    assert _counts(dbs) == before
    with pytest.raises(provisioning.RegistryError, match="unknown organization"):
        import_legacy(ctx, _read(LOG), "No Such Campus")
    dry = import_legacy(ctx, _read(LOG.replace("fan_1", "fan_9")), dry_run=True)
    assert dry.devices_added == ["ESP01/fan_9", "ESP01/light_1"] and _counts(dbs) == before
    assert {d.device_id: d.new_milli_wh for d in dry.devices} == {"fan_9": FAN_MWH, "light_1": LIGHT_MWH}


# ------------------------------------------------------------------ the CLI


def _run(tmp_path, *args):
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    env.pop("WATTLINE_MAIN_URL", None)
    env.pop("WATTLINE_TELEMETRY_URL", None)
    return subprocess.run([sys.executable, "-m", "wattline.cli", "import-legacy", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_prints_old_new_and_difference_the_same_on_a_rerun(tmp_path):
    sample = EXAMPLES / "activity_log.csv"
    first = _run(tmp_path, sample)
    assert first.returncode == 0, first.stderr
    assert "ESP01/light_1" in first.stdout and "0.3180" in first.stdout and "0.3200" in first.stdout
    assert "24 new, 0 already in the ledger" in first.stdout
    second = _run(tmp_path, sample)
    assert "0 new, 24 already in the ledger" in second.stdout
    table = lambda out: out.split("└")[0]  # noqa: E731 - the table, without the counts below it
    assert table(second.stdout) == table(first.stdout)
    data = json.loads(_run(tmp_path, sample, "--format", "json").stdout)
    light = next(d for d in data["devices"] if d["esp32_name"] == "ESP01" and d["device_id"] == "light_1")
    assert light["legacy_total_kwh"] == 0.318 and light["new_total_from"] == "ledger"
    assert round(light["new_total_kwh"], 3) == 0.320 and data["accepted"] == 0 and data["repeats"] == 24


def test_the_cli_rejects_a_non_utf8_file_by_line_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(HEADER.encode() + b"2025-11-05T09:00:00Z,ESP01,light_1,CR-101,on,60,\n"
                    + "2025-11-05T10:00:00Z,ESP01,light_1,CR-10\u00e9,off,,\n".encode("latin-1"))
    p = _run(tmp_path, bad)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"{bad}:3: not UTF-8: byte 0xe9" in p.stderr and "nothing written" in p.stderr
    assert not (tmp_path / "data" / "telemetry.db").exists()  # refused before the databases were opened
