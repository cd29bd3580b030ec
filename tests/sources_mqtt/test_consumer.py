"""The MQTT consumer against a real, test-owned Mosquitto (tests/mosquitto/test.conf)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from mqtt_testing import Publisher, running_consumer, wait_until

from wattline import clock

pytestmark = pytest.mark.mqtt

HERE = Path(__file__).resolve().parent



# batches a killed consumer may have handled whose acknowledgements had not gone out
MAX_UNACKED_BATCHES = 4

def _payload(i) -> bytes:
    return json.dumps({"id": str(i)}).encode()


def _ids(messages) -> list[str]:
    return [json.loads(m.payload)["id"] for m in messages]


def test_messages_reach_the_handler_in_batches(mqtt_broker):
    pub = Publisher(mqtt_broker.url)
    pub.publish("autovolt/ESP09/status", b'{"status":"online"}', retain=True)
    assert pub.wait_all()
    batches = []
    with running_consumer(mqtt_broker.url, batches.append, max_batch=500) as consumer:
        for i in range(1500):
            pub.publish(f"autovolt/ESP{i % 5:02d}/telemetry", _payload(i))
        pub.publish("autovolt/ESP01/heartbeat", _payload("hb"))
        pub.publish("other/ESP01/telemetry", _payload("not ours"))  # not subscribed
        assert pub.wait_all()
        assert wait_until(lambda: sum(map(len, batches)) >= 1502)
        time.sleep(0.2)
    msgs = [m for b in batches for m in b]
    assert len(msgs) == 1502
    assert max(map(len, batches)) <= 500
    assert len(batches) < 1502 / 10  # batched, not one call per message
    telemetry = [m for m in msgs if m.kind == "telemetry"]
    assert sorted(_ids(telemetry), key=int) == [str(i) for i in range(1500)]
    status = [m for m in msgs if m.kind == "status"]
    assert len(status) == 1 and status[0].retain and status[0].esp32_name == "ESP09"
    assert all(not m.retain for m in telemetry)
    assert {m.esp32_name for m in telemetry} == {f"ESP{k:02d}" for k in range(5)}
    assert [m.kind for m in msgs].count("heartbeat") == 1
    assert all(abs(m.received_at - clock.now()) < 30 for m in msgs)
    assert consumer.stats.acked == 1502 and consumer.stats.handled == 1502
    pub.close()


def test_a_failed_attempt_gets_the_same_messages_again_each_acked_once(mqtt_broker):
    calls: list[list[str]] = []

    def flaky(batch):
        calls.append(_ids(batch))
        if len(calls) == 1:
            raise RuntimeError("database is locked")

    client_id = f"flaky-{uuid.uuid4().hex[:6]}"
    acks: list[int] = []
    pub = Publisher(mqtt_broker.url)
    with running_consumer(mqtt_broker.url, flaky, client_id=client_id, backoff_s=0.01) as consumer:
        real_ack = consumer.client.ack
        consumer.client.ack = lambda mid, qos: (acks.append(mid), real_ack(mid, qos))[1]
        for i in range(50):
            pub.publish("autovolt/ESP01/telemetry", _payload(i))
        assert pub.wait_all()
        assert wait_until(lambda: consumer.stats.handled == 50)
    assert calls[0] == calls[1]  # the failed batch, again, as it was
    assert sorted(set().union(*map(set, calls)), key=int) == [str(i) for i in range(50)]
    assert len(acks) == 50 and len(set(acks)) == 50  # each message acknowledged once
    assert consumer.stats.handler_failures == 1 and consumer.stats.rejected == 0
    # nothing left unacknowledged in the session: the same client id gets nothing again
    again = []
    with running_consumer(mqtt_broker.url, again.append, client_id=client_id):
        time.sleep(0.5)
    assert again == []
    pub.close()


def test_an_undecodable_payload_is_rejected_and_the_stream_goes_on(mqtt_broker):
    handled, rejected = [], []

    def strict(batch):
        docs = [json.loads(m.payload) for m in batch]  # raises on the bad one
        handled.extend(d["id"] for d in docs)

    client_id = f"strict-{uuid.uuid4().hex[:6]}"
    pub = Publisher(mqtt_broker.url)
    with running_consumer(mqtt_broker.url, strict, lambda b, r: rejected.append((b, r)), client_id=client_id,
                          attempts=2, backoff_s=0.01) as consumer:
        for i in range(20):
            pub.publish("autovolt/ESP01/telemetry", _payload(i))
        pub.publish("autovolt/ESP01/telemetry", b"\xff\xfe{not json")
        for i in range(20, 40):
            pub.publish("autovolt/ESP01/telemetry", _payload(i))
        assert pub.wait_all()
        assert wait_until(lambda: len(handled) == 40 and rejected)
        for i in range(40, 50):  # still consuming
            pub.publish("autovolt/ESP02/telemetry", _payload(i))
        assert wait_until(lambda: len(handled) == 50)
    assert sorted(handled, key=int) == [str(i) for i in range(50)]
    assert len(rejected) == 1
    bad, reason = rejected[0]
    assert [m.payload for m in bad] == [b"\xff\xfe{not json"]
    assert "Decode" in reason  # UnicodeDecodeError / JSONDecodeError, with its message
    assert consumer.stats.rejected == 1 and consumer.stats.acked == 51
    again = []
    with running_consumer(mqtt_broker.url, again.append, client_id=client_id):
        time.sleep(0.5)
    assert again == []
    pub.close()


def test_a_shared_subscription_splits_the_stream_without_loss(mqtt_broker):
    got_a, got_b = [], []
    pub = Publisher(mqtt_broker.url)
    with running_consumer(mqtt_broker.url, lambda b: got_a.extend(_ids(b)), group="ingest"), \
            running_consumer(mqtt_broker.url, lambda b: got_b.extend(_ids(b)), group="ingest"):
        for i in range(1000):
            pub.publish(f"autovolt/ESP{i % 7:02d}/telemetry", _payload(i))
        assert pub.wait_all()
        assert wait_until(lambda: len(set(got_a) | set(got_b)) == 1000)
        time.sleep(0.2)
    assert set(got_a) | set(got_b) == {str(i) for i in range(1000)}
    assert len(got_a) > 100 and len(got_b) > 100  # both took a share
    assert not set(got_a) & set(got_b)  # split, not copied
    pub.close()


def test_a_broker_restart_while_publishing_loses_nothing(mqtt_broker):
    got = []
    n = 3000
    pub = Publisher(mqtt_broker.url)
    with running_consumer(mqtt_broker.url, lambda b: got.extend(_ids(b)), max_batch=200) as consumer:
        def publish_all():
            for i in range(n):
                pub.publish(f"autovolt/ESP{i % 3:02d}/telemetry", _payload(i))
                if i % 100 == 99:
                    time.sleep(0.02)

        t = threading.Thread(target=publish_all)
        t.start()
        assert wait_until(lambda: len(got) > n // 4)
        mqtt_broker.restart()  # SIGTERM: the broker saves sessions and queues, then starts again
        t.join(30)
        assert pub.wait_all(30)
        assert wait_until(lambda: set(got) >= {str(i) for i in range(n)}, 30), \
            f"missing {n - len(set(got))}; broker log:\n{mqtt_broker.log_tail()}"
    assert mqtt_broker.starts == 2 and consumer.stats.connects >= 2
    assert set(got) == {str(i) for i in range(n)}
    pub.close()


def _consumer_proc(url, client_id, db, run, max_batch):
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(HERE / "consumer_proc.py"), url, client_id, str(db), str(run),
                             "--max-batch", str(max_batch), "--delay", "0.01"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def _rows(db):
    with sqlite3.connect(db, timeout=30) as c:
        return c.execute("SELECT msg_id, run, batch FROM handled").fetchall()


def test_kill_9_mid_stream_then_restart_gives_every_message_duplicates_only_of_the_batch_in_flight(
        mqtt_broker, tmp_path):
    n, max_batch = 4000, 100
    db = tmp_path / "handled.db"
    client_id = f"ingest-{uuid.uuid4().hex[:6]}"
    rnd = random.Random(10)
    pub = Publisher(mqtt_broker.url)
    proc = _consumer_proc(mqtt_broker.url, client_id, db, 1, max_batch)
    published = threading.Event()

    def publish_all():
        for i in range(n):
            pub.publish(f"autovolt/ESP{i % 9:02d}/telemetry", _payload(i))
            if i % 50 == 49:
                time.sleep(0.01)
        published.set()

    t = threading.Thread(target=publish_all)
    t.start()
    killed = []
    for run in (1, 2):  # two kills at random moments, then a run that sees it through
        threshold = rnd.uniform(0.15, 0.35) * n * run
        assert wait_until(lambda threshold=threshold: os.path.exists(db) and len(_rows(db)) >= threshold, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed.append(run)
        proc = _consumer_proc(mqtt_broker.url, client_id, db, run + 1, max_batch)
    t.join(60)
    assert published.is_set() and pub.wait_all(30)
    assert wait_until(lambda: len({r[0] for r in _rows(db)}) == n, 30)
    proc.send_signal(signal.SIGTERM)  # graceful: finish the batch, ack, disconnect, exit 0
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err

    rows = _rows(db)
    counts = Counter(r[0] for r in rows)
    assert set(counts) == {str(i) for i in range(n)}  # every published message is in the file
    for run in (1, 2, 3):  # within one session nothing is handled twice
        per_run = Counter(m for m, r, _ in rows if r == run)
        assert max(per_run.values()) == 1
    for run in killed:
        # what a killed run committed and a later run handled again is only its last
        # batches, whose acknowledgements it had no time to send: the batch in flight and
        # those whose acks were still in paho's outgoing buffer. The acks go out in order,
        # so they are a tail of its batches; one or two on a quiet machine, a few more
        # when the suite's other tests keep paho's network thread waiting (seen: three)
        batches = sorted({b for _, r, b in rows if r == run})
        again = {m for m, r, _ in rows if r == run} & {m for m, r, _ in rows if r > run}
        again_batches = sorted({b for m, r, b in rows if r == run and m in again})
        if again_batches:
            tail = batches[batches.index(again_batches[0]):]
            assert again_batches == tail, f"run {run}: redelivered batches {again_batches} are not a tail of {batches}"
            assert len(tail) <= MAX_UNACKED_BATCHES, f"run {run}: {len(tail)} batches redelivered"
    assert len(rows) - len(counts) <= MAX_UNACKED_BATCHES * max_batch * len(killed)
    assert json.loads(out.strip().splitlines()[-1])["handled"] > 0
    pub.close()


def test_a_store_that_is_down_is_waited_for_not_rejected(mqtt_broker):
    from wattline.sources.mqtt import HandlerUnavailable

    calls, rejected = [], []

    def down_twice(batch):
        calls.append(len(batch))
        if len(calls) <= 2:
            raise HandlerUnavailable("database unreachable")

    pub = Publisher(mqtt_broker.url)
    with running_consumer(mqtt_broker.url, down_twice, lambda b, r: rejected.append(r), attempts=1,
                          backoff_s=0.01) as consumer:
        for i in range(30):
            pub.publish("autovolt/ESP01/telemetry", _payload(i))
        assert pub.wait_all()
        assert wait_until(lambda: consumer.stats.handled == 30)
    assert rejected == [] and consumer.stats.acked == 30 and len(calls) >= 3
