"""The CLI as a user runs it: a fresh data directory, real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "data")}
    env.pop("WATTLINE_MAIN_URL", None)
    env.pop("WATTLINE_TELEMETRY_URL", None)

    def _run(*args, check=True):
        p = subprocess.run([sys.executable, "-m", "wattline.cli", *args], env=env, capture_output=True,
                           text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"wattline {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    return _run


CSV = """asset,point,ts,value,unit,type
roof,import,2024-03-30T23:00:00Z,1000,kWh
roof,import,2024-03-31T12:00:00+02:00,1500,Wh
roof,import,2024-03-31T12:00:00+02:00,1.5,kWh,counter
roof,import,1711922400,1.5,MWh
roof,import,yesterday,3,kWh
roof,import,2024-04-02T00:00:00Z,x,kWh
garage,import,2024-04-02T00:00:00Z,1,kWh
roof,import,2024-04-02T00:00:00Z,1,kW,counter
roof,import,2024-04-03T00:00:00,5,kWh
roof,pv,2024-03-31T12:00:00+02:00,2000,W
roof,soc,2024-03-31T12:00:00+02:00,55,%
"""


def test_import_reports_bad_rows_writes_good_ones_and_energy_reads_them(run, tmp_path):
    run("assets", "add", "roof", "--kind", "meter", "--timezone", "Europe/Berlin")
    f = tmp_path / "readings.csv"
    f.write_text(CSV)
    p = run("import", str(f), check=False)
    assert p.returncode == 1
    bad_lines = sorted(int(l.split(":")[0].split()[1]) for l in p.stderr.splitlines() if l.startswith("line "))
    assert bad_lines == [6, 7, 8, 9, 10]
    assert "unknown asset 'garage'" in p.stderr and "no UTC offset" in p.stderr
    assert "11 rows read, 6 written, 5 rejected" in p.stdout

    out = run("energy", "--asset", "roof", "--point", "import", "--period", "day",
              "--from", "2024-03-31T00:00:00+01:00", "--to", "2024-04-02T00:00:00+02:00", "--format", "json")
    report = json.loads(out.stdout)
    assert report["timezone"] == "Europe/Berlin" and report["period"] == "day"
    # 1000 kWh at local midnight, 1.5 kWh (a reset) at noon, 1500 kWh at the next midnight:
    # 1.5 kWh after the reset + 1498.5 kWh until midnight, nothing on April 1st
    assert [b["energy_kwh"] for b in report["buckets"]] == [1500.0, 0.0]
    assert "reset" in report["buckets"][0]["quality"]
    assert report["buckets"][1]["quality"] == ["no_data"]
    assert report["total_kwh"] == 1500.0
    # the day ends at the next local midnight, 23 hours later (DST)
    assert report["buckets"][0]["start"] == "2024-03-31T00:00:00+01:00"
    assert report["buckets"][0]["end"] == "2024-04-01T00:00:00+02:00"

    csv_out = run("energy", "--asset", "roof", "--point", "import", "--period", "month",
                  "--from", "2024-03-01T00:00:00+01:00", "--to", "2024-05-01T00:00:00+02:00", "--format", "csv")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0] == "start,end,energy_kwh,quality,cost,currency,cost_quality"  # cost: issue 10
    assert lines[1].split(",")[2] == "1500.0" and lines[2].split(",")[2] == "0.0"
    assert lines[-1].startswith("total,,1500.0")


def test_import_rejects_undecodable_bytes_control_characters_and_extra_columns_by_line(run, tmp_path):
    run("assets", "add", "m1", "--kind", "meter", "--timezone", "UTC")
    f = tmp_path / "bad.csv"
    f.write_bytes(b"asset,point,ts,value,unit\n"
                  b"m1,energy,2026-01-01T00:00:00Z,1.5,kWh\n"
                  b"m1,ener\xffgy,2026-01-01T00:15:00Z,1.6,kWh\n"          # line 3: not UTF-8
                  b'"m1","ene\nrgy",2026-01-01T00:30:00Z,1.7,kWh\n'        # lines 4-5: a newline in a key
                  b"m1,energy,2026-01-01T00:45:00Z,1.8,kWh,extra\n"       # line 6: an extra column
                  b"m1,energy,2026-01-01T01:00:00Z,1.9,kWh\n")
    p = run("import", str(f), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "line 3: not UTF-8" in p.stderr
    assert "line 4: point 'ene\\nrgy' contains a newline" in p.stderr
    assert "line 6: expected at most 5 columns, as the header has, got 6" in p.stderr
    assert "5 rows read, 2 written, 3 rejected" in p.stdout
    out = json.loads(run("stats", "--asset", "m1", "--point", "energy", "--period", "day", "--from",
                         "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z", "--format", "json").stdout)
    assert [b["count"] for b in out["buckets"]] == [2]  # only the good rows, no point named with a newline


def test_import_twice_changes_nothing(run, tmp_path):
    run("assets", "add", "m", "--kind", "meter", "--timezone", "UTC")
    f = tmp_path / "r.csv"
    f.write_text("asset,point,ts,value,unit\n" + "".join(
        f"m,e,{1700000000 + i * 900},{i * 0.25},kWh\n" for i in range(200)))
    run("import", str(f))
    args = ("energy", "--asset", "m", "--point", "e", "--period", "hour", "--from", "2023-11-14T00:00:00Z",
            "--to", "2023-11-17T00:00:00Z", "--format", "json")
    first = run(*args).stdout
    run("import", str(f))
    assert run(*args).stdout == first
    assert json.loads(first)["total_kwh"] == 199 * 0.25


def test_clear_errors_for_bad_arguments(run, tmp_path):
    p = run("assets", "add", "x", "--kind", "spaceship", "--timezone", "UTC", check=False)
    assert p.returncode == 2 and "asset kind must be one of" in p.stderr
    p = run("assets", "add", "x", "--kind", "meter", "--timezone", "Mars/Olympus", check=False)
    assert p.returncode == 2 and "unknown IANA timezone" in p.stderr
    p = run("import", str(tmp_path / "missing.csv"), check=False)
    assert p.returncode == 2 and "no such file" in p.stderr
    p = run("energy", "--asset", "x", "--point", "e", "--period", "week", "--from", "2024-01-01T00:00:00Z",
            "--to", "2024-01-02T00:00:00Z", check=False)
    assert p.returncode == 2 and "--period must be one of" in p.stderr


def test_stats_report_min_max_avg_last_count_of_instantaneous_readings(run, tmp_path):
    run("assets", "add", "bat", "--kind", "site", "--timezone", "UTC")
    f = tmp_path / "soc.csv"
    f.write_text("asset,point,ts,value,unit\n" + "".join(
        f"bat,soc,2024-05-01T{h:02d}:{m:02d}:00Z,{v},%\n"
        for (h, m), v in zip([(0, 0), (0, 20), (0, 40), (1, 0), (1, 30)], [50, 40, 60, 70, 65])))
    run("import", str(f))
    out = json.loads(run("stats", "--asset", "bat", "--point", "soc", "--period", "hour", "--from",
                         "2024-05-01T00:00:00Z", "--to", "2024-05-01T03:00:00Z", "--format", "json").stdout)
    first, second, third = out["buckets"]
    assert (first["count"], first["min"], first["max"], first["avg"], first["last"]) == (3, 40.0, 60.0, 50.0, 60.0)
    assert (second["count"], second["min"], second["max"], second["last"]) == (2, 65.0, 70.0, 65.0)
    assert third["count"] == 0 and third["avg"] is None
    five = json.loads(run("stats", "--asset", "bat", "--point", "soc", "--period", "5min", "--from",
                          "2024-05-01T00:00:00Z", "--to", "2024-05-01T00:30:00Z", "--format", "json").stdout)
    assert [b["count"] for b in five["buckets"]] == [1, 0, 0, 0, 1, 0]


def test_serve_migrates_answers_health_and_logs_json(tmp_path):
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "wattline.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not answer")
        assert health.status_code == 200
        assert {k: v["status"] for k, v in health.json()["databases"].items()} == {"main": "ok", "telemetry": "ok"}
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    lines = [l for l in stderr.splitlines() if l.strip()]
    events = [json.loads(l) for l in lines]  # every line is a JSON object
    assert any(e.get("logger") == "alembic.runtime.migration" for e in events)
    assert any(e.get("event") == "api.started" for e in events)


def test_vendor_account_credentials_are_stored_encrypted(run, tmp_path):
    import sqlite3

    p = run("vendors", "add-account", "roof-sm", "--vendor", "solarman", "--credential", "app_id=12345",
            "--credential", "app_secret=app-s3cret", "--credential", "email=me@example.org",
            "--credential", "password=s3cret-pass", "--calls-per-day", "300")
    assert "s3cret-pass" not in p.stdout + p.stderr
    db = sqlite3.connect(tmp_path / "data" / "main.db")
    blob, limits = db.execute("SELECT credentials_encrypted, rate_limits FROM vendor_accounts").fetchone()
    assert b"s3cret-pass" not in blob and b"12345" not in blob and len(blob) > 12 + 16
    assert json.loads(limits) == {"calls_per_day": 300}
    bad = run("vendors", "add-account", "x", "--vendor", "nosuchvendor", check=False)
    assert bad.returncode == 2 and "no adapter for vendor type" in bad.stderr
    plant = run("assets", "add", "p1", "--kind", "plant", "--timezone", "UTC", "--vendor", "solarman",
                "--vendor-id", "64786338", "--start", "2024-01-01T00:00:00Z")
    assert "added with id" in plant.stdout
    keys = {r[0] for r in db.execute("SELECT key FROM points")}
    assert keys == {"energy_total", "power", "energy_today"}


def test_two_demos_on_one_data_directory_both_finish_without_a_traceback(tmp_path):
    # the second waits for the first's registry writes instead of 'database is locked'
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "data"), "WATTLINE_CLOCK": "2026-03-10T12:00:00Z"}
    for k in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL", "WATTLINE_CLOCK_OFFSET_S"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "wattline.cli", "demo", "--no-serve", "--since", "2026-03-07"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, errs) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in errs and "locked" not in errs, errs[-2000:]
        assert "classroom page:" in out


def test_a_database_that_is_down_is_a_clear_error_without_a_traceback(tmp_path):
    # a worker or ingester restarted while PostgreSQL is down (the fault suite does that)
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "data"),
           "WATTLINE_MAIN_URL": "postgresql+psycopg://nobody@127.0.0.1:1/main",
           "WATTLINE_TELEMETRY_URL": "postgresql+psycopg://nobody@127.0.0.1:1/telemetry"}
    p = subprocess.run([sys.executable, "-m", "wattline.cli", "systems", "list"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "cannot open the database" in p.stderr and "Traceback" not in p.stderr, p.stderr
