"""The test-owned Mosquitto for every test here (tests/mqtt_broker.py)."""

from mqtt_broker import mqtt_broker  # noqa: F401 - the fixture
