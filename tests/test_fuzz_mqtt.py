"""Bad input, everywhere (issue 12 item 5): MQTT payloads into the handler ``wattline
mqtt`` runs (``MqttIngest.handle``), on SQLite.

Random bytes, and telemetry documents with fields dropped or replaced by anything JSON
can hold, never raise: each message is either stored (its readings in the ledger) or
kept in the quarantine with a reason, and a good message after them is still stored.
WATTLINE_FUZZ_EXAMPLES raises the example count for a longer local run.
"""
from __future__ import annotations

import itertools
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import make_sqlite
from wattline import provisioning
from wattline.jobs.mqtt_ingest import MqttIngest
from wattline.pipeline import Pipeline
from wattline.sources.mqtt import Message

EXAMPLES = int(os.environ.get("WATTLINE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
GOOD = {"esp32_name": "ESP01", "classroom": "CR-101", "device_id": "light_1", "timestamp": "2025-11-05T03:20:00Z",
        "power_w": 40.0, "energy_wh_total": 1000.0, "switch_state": {"sw1": True}, "uptime_seconds": 60,
        "status": "online", "sequence_no": 1, "firmware_ver": "v2.0.0", "wifi_rssi": -50}
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=6)
_odd = st.sampled_from([None, "", "nan", "inf", -1, 10**30, 1e308, "2025-13-45T99:00:00Z", "9999-12-31T23:59:59Z",
                        "yesterday", "\x00", "\ud800", [], {}, True])
_ts = itertools.count(1_762_312_800 + 30, 30)


@pytest.fixture(scope="module")
def handler(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-mqtt")
    dbs = make_sqlite(path)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", "Asia/Kolkata")
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101")
        org = provisioning.organization_named(conn, None)
    yield MqttIngest(Pipeline(dbs.telemetry, dbs.main_reader), dbs.main_reader, org, dbs.main), dbs
    dbs.dispose()


def _message(payload: bytes) -> Message:
    return Message(topic="autovolt/ESP01/telemetry", payload=payload, mid=1, received_at=1_762_312_900.0,
                   retain=False, esp32_name="ESP01", kind="telemetry")


def _counts(dbs) -> tuple[int, int]:
    with dbs.telemetry.connect() as c:
        return (c.exec_driver_sql("SELECT COUNT(*) FROM readings").scalar(),
                c.exec_driver_sql("SELECT COUNT(*) FROM device_quarantine WHERE reason IS NOT NULL "
                                  "AND reason <> ''").scalar())


def _good_still_stored(handler) -> None:
    ingest, dbs = handler
    readings, _ = _counts(dbs)
    ts = next(_ts)
    # a counter that only grows; a sequence number and uptime of its own (not a repeat)
    doc = dict(GOOD, timestamp=_iso(ts), energy_wh_total=1000.0 + readings, sequence_no=ts, uptime_seconds=ts)
    ingest.handle([_message(json.dumps(doc).encode())])
    assert _counts(dbs)[0] > readings  # the service keeps going


def _iso(ts: int) -> str:
    from wattline.domain.timeutil import iso

    return iso(ts)


def _check(handler, payload: bytes) -> None:
    ingest, dbs = handler
    before = _counts(dbs)
    ingest.handle([_message(payload)])  # must not raise
    after = _counts(dbs)
    if payload not in _seen:  # new: stored, or kept with a reason; never dropped without a trace
        assert after[0] > before[0] or after[1] > before[1], (payload, before, after)
    _seen.add(payload)
    _good_still_stored(handler)


_seen: set[bytes] = set()


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_are_kept_with_a_reason_and_never_raise(handler, data):
    ingest, dbs = handler
    before = _counts(dbs)
    ingest.handle([_message(data)])
    after = _counts(dbs)
    if data not in _seen:  # the same bytes again are the same raw event, kept once
        assert after[1] == before[1] + 1, (data, before, after)
    _seen.add(data)
    _good_still_stored(handler)


@FUZZ
@given(drop=st.sets(st.sampled_from(sorted(GOOD))), replace=st.dictionaries(st.sampled_from(sorted(GOOD)),
                                                                          _odd | _json, max_size=4))
def test_mangled_documents_are_stored_or_kept_with_a_reason(handler, drop, replace):
    ts = next(_ts)
    # its own timestamp, sequence number and uptime unless mangled: not a repeat of another
    doc = {k: v for k, v in dict(GOOD, timestamp=_iso(ts), sequence_no=ts, uptime_seconds=ts).items()
           if k not in drop}
    doc.update(replace)
    payload = json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    _check(handler, payload)
