"""Dashboard pages of campus devices: ``/devices`` (every device with its controller's
state) and ``/devices/{esp32_name}/{device_id}`` (online/offline from status and
heartbeats, last seen, firmware and rssi of the last heartbeat, offline spells and the
status history, daily energy also while offline). The pages are shells; their script
(``static/devices.js``) reads ``/api/power-analytics/devices…``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from wattline.store import device_registry
from wattline.store.registry import DEFAULT_ORG
from wattline.web.pages import _not_found, _render, _to_login, _user


def _organization(request: Request, principal) -> int | None:
    if principal.organization_id is not None:
        return principal.organization_id
    with request.app.state.ctx.dbs.main_reader.connect() as conn:
        return device_registry.organization_id(conn, DEFAULT_ORG)


def mount(app: FastAPI) -> None:
    """Add the device pages to ``app``."""

    @app.get("/devices", response_class=HTMLResponse, include_in_schema=False)
    def devices_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        return _render(request, "devices.html", principal=principal, page="devices", title="Devices")

    @app.get("/devices/{esp32_name}/{device_id}", response_class=HTMLResponse, include_in_schema=False)
    def device_page(request: Request, esp32_name: str, device_id: str) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        org = _organization(request, principal)
        dev = None
        if org is not None:
            with request.app.state.ctx.dbs.main_reader.connect() as conn:
                dev = device_registry.device(conn, org, esp32_name, device_id)
        if dev is None:
            return _not_found(request, principal, f"No device {esp32_name}/{device_id}.")
        return _render(request, "device.html", principal=principal, page="device",
                       title=f"{esp32_name}/{device_id}",
                       device={"esp32_name": esp32_name, "device_id": device_id, "classroom": dev["classroom"],
                               "timezone": dev["timezone"], "energy_method": dev["energy_method"]})
