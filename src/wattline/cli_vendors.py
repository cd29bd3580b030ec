"""``wattline vendors …``: vendor accounts, and the emulated vendor clouds on loopback
(mounted by ``cli.py``)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from wattline.config import EMULATOR_HOST as DEFAULT_HOST, EMULATOR_PORT as DEFAULT_PORT

vendors_app = typer.Typer(help="Vendor accounts, and the emulated vendor clouds (Solarman, Sungrow iSolarCloud) for tests and demos.")


@vendors_app.callback()
def _vendors() -> None:
    """Emulated vendor clouds (keeps ``serve`` a sub-command even when it is the only one)."""


@vendors_app.command("serve")
def serve_command(
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port for both vendors."),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Interface to bind (loopback by default)."),
    fault_rate: float = typer.Option(
        0.0, "--fault-rate", min=0.0, max=1.0,
        help="Share of calls that fail: 429 + Retry-After, 500, 503, slow answer, malformed records.",
    ),
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0.0, help="Fixed delay added to every answer."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fault generator."),
) -> None:
    """Serve Solarman and Sungrow under their real API paths until Ctrl-C."""
    from wattline.simulator.vendor_cloud.server import serve

    console = Console(stderr=True)
    console.print(
        f"[bold]Emulated vendor clouds[/] on http://{host}:{port}  "
        f"(Solarman /account/v1.0/token, /station/v1.0/…; Sungrow /v1/…)  "
        f"fault rate {fault_rate:.0%}, latency {latency_ms:g} ms"
    )
    console.print("Default credentials: wattline.simulator.vendor_cloud.config.DEFAULT_CREDENTIALS")
    serve(host=host, port=port, fault_rate=fault_rate, latency_ms=latency_ms, seed=seed)


@vendors_app.command("add-account")
def vendors_add_account(
    name: str,
    vendor: str = typer.Option(..., help="vendor type, e.g. solarman, sungrow"),
    base_url: Optional[str] = typer.Option(None, help="API base URL (default: the vendor's cloud)"),
    credential: list[str] = typer.Option(
        [], help="KEY=VALUE, repeatable; the keys the vendor needs (solarman: app_id, app_secret, "
                 "email or username, password or password_sha256; sungrow: appkey, username, password)"),
    calls_per_minute: Optional[int] = typer.Option(None, help="override the vendor's declared limit"),
    calls_per_day: Optional[int] = typer.Option(None, help="override the vendor's daily quota"),
    unlimited: bool = typer.Option(False, help="no rate limit (an emulated cloud on loopback)"),
) -> None:
    """Add a vendor account; its credentials are checked against the vendor's model and
    stored encrypted (AES-256-GCM). Wrong, unknown or missing keys store nothing."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console
    from wattline.sources.vendors.errors import InvalidCredentials, UnknownVendorError

    creds: dict[str, str] = {}
    for item in credential:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            _fail(f"--credential must be KEY=VALUE, got a value without '=' for {key or '?'!r}")
        if key in creds:
            _fail(f"--credential {key} is given twice")
        creds[key] = value
    limits = dict(provisioning.UNLIMITED) if unlimited else {}
    for key, value in (("calls_per_minute", calls_per_minute), ("calls_per_day", calls_per_day)):
        if value is not None:
            if value < 1:
                _fail(f"--{key.replace('_', '-')} must be at least 1")
            limits[key] = value
    try:  # before opening the databases: a refused account touches nothing
        provisioning.validate_vendor_credentials(vendor, creds)
    except (InvalidCredentials, UnknownVendorError) as exc:
        _fail(str(exc))
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            aid = provisioning.add_vendor_account(conn, ctx.settings, vendor, name, creds, base_url=base_url,
                                                  rate_limits=limits or None)
    except (provisioning.RegistryError, InvalidCredentials, UnknownVendorError) as exc:
        _fail(str(exc))
    console.print(f"vendor account {name!r} added with id {aid} ({len(creds)} credential fields, encrypted)")
