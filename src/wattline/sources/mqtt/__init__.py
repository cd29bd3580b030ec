"""MQTT source: broker addresses, device topics and the at-least-once batch consumer."""

from wattline.sources.mqtt.broker_url import BrokerAddress, parse_broker_url
from wattline.sources.mqtt.consumer import (ConsumerConfig, ConsumerStats, HandlerUnavailable, Message,
                                            MqttConsumer, run_until_signalled)
from wattline.sources.mqtt.topics import KINDS, device_topic, parse_topic, subscription_filters

__all__ = (
    "KINDS",
    "BrokerAddress",
    "ConsumerConfig",
    "ConsumerStats",
    "HandlerUnavailable",
    "Message",
    "MqttConsumer",
    "device_topic",
    "parse_broker_url",
    "parse_topic",
    "run_until_signalled",
    "subscription_filters",
)
