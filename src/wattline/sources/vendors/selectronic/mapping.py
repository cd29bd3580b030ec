"""select.live answers -> Wattline records: the login answer and ``hfdata`` items.

``GET /dashboard/hfdata/{systemNumber}`` answers ``{device, item_count, items, now}``
(the shape of the local SP LINK ``/cgi-bin/solarmonweb/devices/{id}/point``, see
``vendor-fixtures/selectronic-select-live/``). Units and signs (VENDOR-NOTES.md):

=========================  ==========================  ======  =========================
vendor field               point                       vendor  canonical
=========================  ==========================  ======  =========================
``timestamp``              ``ts``                      unix s  int epoch s (UTC)
solarinverter_w + shunt_w  ``solar_w``                 W       kW (/1000); AC-coupled
                                                               plus DC shunt
``load_w``                 ``load_w``                  W       kW
``battery_w``              ``battery_w``               W       kW, sign kept:
                                                               + discharging
``grid_w``                 ``grid_w``                  W       kW, sign **flipped**: the
                                                               SP PRO reports import
                                                               negative; + = import
``battery_soc``            ``battery_soc``             %       %
``*_wh_total``             ``solar_kwh`` …             kWh     kWh (**kWh despite the
                                                               name**), lifetime counters
``*_wh_today``             ``solar_today_kwh`` …       kWh     kWh, reset at the
                                                               inverter's local midnight
=========================  ==========================  ======  =========================

A field the answer leaves out stays out of the record (never 0); a field that is
present but null, non-numeric or not finite rejects the record with the reason.
``fault_code``, ``fault_ts`` and ``gen_status`` are instantaneous samples and not mapped.
"""

from __future__ import annotations

from typing import Any

import httpx

from wattline.domain.metrics import MetricType

from ..errors import VendorAuthError, VendorUnavailable
from ..models import RejectedRecord, VendorPointSpec, VendorRecord
from ..parsing import BadValue, to_number

LOGIN_PATH = "/login"
HFDATA_PATH = "/dashboard/hfdata/{system}"
SESSION_COOKIE = "mojolicious"
BAD_LOGIN_TEXT = "Bad email address or password"
SOLAR_FIELDS = ("solarinverter_w", "shunt_w")

_P, _C, _S = MetricType.POWER, MetricType.COUNTER, MetricType.SOC

POINTS = [
    VendorPointSpec("solar_w", _P, "solarinverter_w+shunt_w", "W"),
    VendorPointSpec("load_w", _P, "load_w", "W"),
    VendorPointSpec("battery_w", _P, "battery_w", "W"),
    VendorPointSpec("grid_w", _P, "grid_w", "W"),
    VendorPointSpec("battery_soc", _S, "battery_soc", "%"),
    VendorPointSpec("solar_kwh", _C, "solar_wh_total", "kWh"),
    VendorPointSpec("load_kwh", _C, "load_wh_total", "kWh"),
    VendorPointSpec("grid_import_kwh", _C, "grid_in_wh_total", "kWh"),
    VendorPointSpec("grid_export_kwh", _C, "grid_out_wh_total", "kWh"),
    VendorPointSpec("battery_charge_kwh", _C, "battery_in_wh_total", "kWh"),
    VendorPointSpec("battery_discharge_kwh", _C, "battery_out_wh_total", "kWh"),
    VendorPointSpec("solar_today_kwh", _C, "solar_wh_today", "kWh", daily_reset=True),
    VendorPointSpec("load_today_kwh", _C, "load_wh_today", "kWh", daily_reset=True),
    VendorPointSpec("grid_import_today_kwh", _C, "grid_in_wh_today", "kWh", daily_reset=True),
    VendorPointSpec("grid_export_today_kwh", _C, "grid_out_wh_today", "kWh", daily_reset=True),
    VendorPointSpec("battery_charge_today_kwh", _C, "battery_in_wh_today", "kWh", daily_reset=True),
    VendorPointSpec("battery_discharge_today_kwh", _C, "battery_out_wh_today", "kWh", daily_reset=True),
]

# points read from one field each (solar_w sums two and is handled on its own)
_SINGLE = [(p.key, p.vendor_field, p.factor) for p in POINTS if p.key != "solar_w"]
_SIGN = {"grid_w": -1.0}  # SP PRO: import negative -> canonical import positive


# -- login -------------------------------------------------------------------------------


def parse_login(response: httpx.Response) -> str:
    """The session cookie's value from a ``POST /login`` answer.

    Success is a redirect (302) setting the ``mojolicious`` cookie; a refused login is
    200 with "Bad email address or password" (VendorAuthError). Anything else is
    unavailability (retried).
    """
    if response.status_code in (301, 302, 303, 307):
        cookie = response.cookies.get(SESSION_COOKIE)
        if cookie:
            return cookie
        raise VendorUnavailable("login redirected without a session cookie")
    if response.status_code == 200 and BAD_LOGIN_TEXT.lower() in response.text.lower():
        raise VendorAuthError("select.live refused the email or password")
    raise VendorUnavailable(f"unexpected login answer (HTTP {response.status_code})")


def is_login_page(response: httpx.Response) -> bool:
    """True when a data call answered with the login page or a redirect to it (the
    session expired) instead of data."""
    if response.status_code in (401, 403):
        return True
    if response.is_redirect:
        return "login" in response.headers.get("location", "").lower()
    content_type = response.headers.get("content-type", "")
    if response.status_code == 200 and "html" in content_type:
        text = response.text.lower()
        return 'name="pwd"' in text or "login" in text
    return False


# -- hfdata -------------------------------------------------------------------------------


def count_items(payload: Any) -> int:
    """Validate an hfdata answer's shape (inside the retried attempt): 1 record or 0."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), dict):
        raise VendorUnavailable("hfdata answer without an items object")
    return 1


def _value(items: dict, field: str, problems: list[str]) -> float | None:
    if field not in items:
        return None
    try:
        return to_number(items[field], field)
    except BadValue as exc:
        problems.append(str(exc))
        return None


def parse_hfdata(payload: Any) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """The one record of an hfdata answer (or its rejection with the reason).

    The raw record kept is the whole answer (``device``, ``items``, ``now``).
    """
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, dict):
        return [], [RejectedRecord(raw=payload, reason="answer has no items object")]
    problems: list[str] = []
    ts: float | None = None
    if "timestamp" not in items:
        problems.append("timestamp is missing")
    else:
        ts = _value(items, "timestamp", problems)
        if ts is not None and ts <= 0:
            problems.append(f"timestamp is not positive: {items['timestamp']!r}")
    values: dict[str, float] = {}
    solar = [v for f in SOLAR_FIELDS if (v := _value(items, f, problems)) is not None]
    if solar:
        values["solar_w"] = sum(solar) * 1e-3
    for key, field, factor in _SINGLE:
        v = _value(items, field, problems)
        if v is not None:
            values[key] = (v * factor * _SIGN.get(key, 1.0)) + 0.0  # + 0.0: no -0.0
    if problems:
        return [], [RejectedRecord(raw=payload, reason="; ".join(problems))]
    if not values:
        return [], [RejectedRecord(raw=payload, reason="no known field in items")]
    assert ts is not None
    return [VendorRecord(ts=int(ts), values=values, raw=payload)], []
