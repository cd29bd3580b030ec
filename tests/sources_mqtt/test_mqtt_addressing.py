"""Broker URLs and device topics (no broker needed)."""

from __future__ import annotations

import pytest

from wattline.sources.mqtt import (BrokerAddress, ConsumerConfig, device_topic, parse_broker_url, parse_topic,
                                   subscription_filters)


@pytest.mark.parametrize("url, expected", [
    ("mqtt://127.0.0.1:1884", BrokerAddress("127.0.0.1", 1884)),
    ("mqtt://broker", BrokerAddress("broker", 1883)),
    ("broker:1999", BrokerAddress("broker", 1999)),
    ("mqtts://iot.example:8884", BrokerAddress("iot.example", 8884, tls=True)),
    ("mqtts://iot.example", BrokerAddress("iot.example", 8883, tls=True)),
    ("mqtt://ingest:s%40cret@[::1]:1883", BrokerAddress("::1", 1883, "ingest", "s@cret")),
])
def test_broker_urls(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize("url", ["", "http://x:1883", "mqtt://:1883", "mqtt://h:99999", "mqtt://h:0",
                                 "mqtt://h:1883/topic", "mqtt://h:abc"])
def test_bad_broker_urls_say_why(url):
    with pytest.raises(ValueError):
        parse_broker_url(url)


def test_the_password_is_never_shown():
    addr = parse_broker_url("mqtt://ingest:hunter2@broker:1883")
    assert "hunter2" not in str(addr) and "hunter2" not in repr(addr)
    assert str(addr) == "mqtt://ingest@broker:1883"


def test_topics():
    assert subscription_filters("autovolt") == ["autovolt/+/telemetry", "autovolt/+/status", "autovolt/+/heartbeat"]
    assert subscription_filters("autovolt", "ingest")[0] == "$share/ingest/autovolt/+/telemetry"
    assert device_topic("autovolt", "ESP01", "status") == "autovolt/ESP01/status"
    assert parse_topic("autovolt", "autovolt/ESP01/telemetry") == ("ESP01", "telemetry")
    assert parse_topic("campus/a", "campus/a/ESP01/heartbeat") == ("ESP01", "heartbeat")
    for other in ("autovolt/ESP01/other", "autovolt/ESP01/telemetry/x", "autovolt//status", "x/ESP01/status"):
        assert parse_topic("autovolt", other) is None
    for bad in ("", "a/#", "$SYS"):
        with pytest.raises(ValueError):
            subscription_filters(bad)
    with pytest.raises(ValueError):
        subscription_filters("autovolt", "a/b")


def test_config_rules():
    addr = BrokerAddress("h")
    assert ConsumerConfig(addr).window == 1000
    assert ConsumerConfig(addr, max_batch=2000).window == 4000
    assert ConsumerConfig(addr, receive_maximum=10**6).window == 65535
    for bad in ({"max_batch": 0}, {"attempts": 0}, {"client_id": ""}, {"max_wait_s": 0}, {"group": "a+b"}):
        with pytest.raises(ValueError):
            ConsumerConfig(addr, **bad)
