"""``wattline vendors …``: the emulated vendor clouds on loopback (mounted by ``cli.py``)."""

from __future__ import annotations

import typer
from rich.console import Console

from wattline.simulator.vendor_cloud.config import DEFAULT_HOST, DEFAULT_PORT

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
