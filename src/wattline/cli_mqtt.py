"""``wattline mqtt``: the MQTT ingester (mounted by ``cli.py``).

Subscribes to ``<prefix>/+/telemetry|status|heartbeat`` at QoS 1 with a persistent
session under a stable client id, and feeds the batches to the device pipeline
(``jobs.mqtt_ingest``); a message is acknowledged only once its batch is committed.
SIGTERM or Ctrl-C finish the batch in hand and exit 0.
"""

from __future__ import annotations

import socket

import typer


def mount(app: typer.Typer) -> None:
    app.command("mqtt")(mqtt_ingest)


def mqtt_ingest(
    broker: str | None = typer.Option(None, help="mqtt://[user[:password]@]host[:port] (default: WATTLINE_MQTT_URL)"),
    prefix: str = typer.Option("autovolt", help="topic prefix: <prefix>/<esp32_name>/telemetry"),
    group: str | None = typer.Option(None, help="shared-subscription group: ingesters of one group split the stream"),
    organization: str | None = typer.Option(None, help="organization name (default: the default organization)"),
    client_id: str | None = typer.Option(None, help="stable MQTT client id (default: wattline-ingest-<hostname>)"),
    max_batch: int = typer.Option(500, help="messages per pipeline call at most"),
) -> None:
    """Ingest device telemetry from an MQTT broker until SIGTERM/Ctrl-C."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, err
    from wattline.config import get_settings
    from wattline.jobs.mqtt_ingest import MqttIngest
    from wattline.sources.mqtt import (
        ConsumerConfig,
        MqttConsumer,
        parse_broker_url,
        run_until_signalled,
    )

    url = broker or get_settings().mqtt_url
    if not url:
        _fail("no broker: pass --broker mqtt://host:1883 or set WATTLINE_MQTT_URL")
    try:
        address = parse_broker_url(url)
        config = ConsumerConfig(broker=address, prefix=prefix, group=group, max_batch=max_batch,
                                client_id=client_id or f"wattline-ingest-{socket.gethostname()}")
    except ValueError as exc:
        _fail(str(exc))
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            org = provisioning.organization_named(conn, organization)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    ingest = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, org, ctx.dbs.main)
    consumer = MqttConsumer(config, ingest.handle, ingest.reject)
    try:
        consumer.start(timeout_s=30)
    except (TimeoutError, OSError) as exc:  # unreachable, refused, not subscribed in time
        consumer.close()
        _fail(f"cannot subscribe at {address}: {exc}")
    err.print(f"mqtt: subscribed at {address} as {config.client_id!r}" + (f" in group {group!r}" if group else ""))
    run_until_signalled(consumer)
    s = consumer.stats
    err.print(f"mqtt: stopped; received {s.received}, handled {s.handled}, rejected {s.rejected}, acked {s.acked}")
