"""Sungrow iSolarCloud (the web/app gateway, e.g. ``augateway.isolarcloud.com``).

Written against the real captures in ``vendor-fixtures/sungrow-isolarcloud/``:

* Every call is ``POST /v1/<service>/<method>`` with a JSON body carrying ``appkey``,
  ``sys_code``, ``lang``, and after login ``token`` and ``user_id``.
* Every answer is the envelope ``{"req_serial_num", "result_code", "result_msg",
  "result_data"}``; ``result_code == "1"`` is success. ``E00003`` /
  ``er_token_login_invalid`` means the token expired: log in again once, then retry.
  ``er_invalid_appkey`` is a credential error. A wrong password still answers
  ``result_code "1"`` but with ``result_data.login_state != "1"``.
* Numbers are strings; ``"--"`` means "no value" (e.g. slots later than now).
* History: ``/v1/commonService/queryMutiPointDataList`` with ``ps_key``
  (``<ps_id>_11_0_0``), ``points``, ``minute_interval`` and
  ``start_time_stamp`` / ``end_time_stamp`` as ``YYYYMMDDHHMMSS`` in **plant-local
  time without an offset** (end inclusive). The answer maps
  ``ps_key -> point -> {YYYYMMDDHHMMSS: "value"}``; no pagination.
* Plant list: ``/v1/powerStationService/getPsList``, paginated with
  ``curPage``/``size`` and answering ``pageList`` + ``rowCount``.

Units, the point table and the DST rule for plant-local timestamps: :mod:`.mapping`.
Credentials: :class:`.credentials.SungrowCredentials`.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..adapter import VendorAdapter
from ..errors import VendorRequestError, VendorUnavailable
from ..models import CallLog, FetchResult, VendorLimits, VendorPlant
from ..pagination import all_pages
from ..parsing import to_number
from .credentials import SungrowCredentials
from .mapping import (
    DATA_PATH,
    LOGIN_PATH,
    POINTS,
    PS_LIST_PATH,
    check_envelope,
    count_point_data,
    local_stamp,
    parse_login,
    parse_point_data,
    parse_ps_list_item,
    wall_seconds,
)


class SungrowAdapter(VendorAdapter):
    """iSolarCloud plant points at 15-minute resolution."""

    vendor_type = "sungrow"
    default_base_url = "https://augateway.isolarcloud.com"
    # Rate limits are "not documented in the source": conservative values.
    limits = VendorLimits(
        max_range_s=7 * 86400,  # wall-clock span per call, end inclusive
        page_size=None,  # queryMutiPointDataList does not page
        interval_s=900,
        calls_per_minute=30,
        calls_per_day=5_000,
        calls_per_month=None,
    )
    points = POINTS
    credentials_model = SungrowCredentials
    credentials: SungrowCredentials
    ps_list_page_size = 10

    _user_id: str = ""

    @staticmethod
    def ps_key(vendor_plant_id: str) -> str:
        """The plant-level device key ``<ps_id>_11_0_0`` (an id with ``_`` is taken as a key)."""
        return vendor_plant_id if "_" in vendor_plant_id else f"{vendor_plant_id}_11_0_0"

    # -- auth -----------------------------------------------------------------------

    async def _login(self, calls: list[CallLog]) -> None:
        body = {
            "appkey": self.credentials.appkey.get_secret_value(),
            "sys_code": "900",
            "lang": "_en_US",
            "user_account": self.credentials.username,
            "user_password": self.credentials.password.get_secret_value(),
        }
        payload = await self._send("POST", LOGIN_PATH, calls=calls, auth=False, json=body)
        self._token, self._user_id = parse_login(payload.get("result_data"))
        self._token_expires_at = None  # the gateway says when: E00003

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        if body is not None:
            body["appkey"] = self.credentials.appkey.get_secret_value()
            body["token"] = self._token
            body["user_id"] = self._user_id

    def _check(self, response: httpx.Response) -> Any:
        self._check_http(response)
        if response.status_code >= 400:
            raise VendorRequestError(f"HTTP {response.status_code}")
        payload = self._json(response)
        check_envelope(payload)
        return payload

    async def test_connection(self) -> None:
        """Log in and read the first plant page (the token must really work)."""
        await super().test_connection()
        await self._ps_list_page(1, [])

    # -- data -----------------------------------------------------------------------

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        """Split so each call's *wall-clock* span stays under the limit.

        A window that contains the spring-forward hour spans one more wall hour than
        UTC seconds; it is shortened by an hour rather than refused by the vendor.
        """
        limit = self.limits.max_range_s
        out: list[tuple[int, int]] = []
        a = start_ts
        while a < end_ts:
            b = min(end_ts, a + limit)
            while b - a > 3600 and wall_seconds(b - 1, timezone) - wall_seconds(a, timezone) >= limit:
                b -= 3600
            out.append((a, b))
            a = b
        return out

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        ps_key = self.ps_key(vendor_plant_id)
        body = {
            "sys_code": "200",
            "lang": "_en_US",
            "ps_key": ps_key,
            "points": ",".join(p.vendor_field for p in self.points),
            "minute_interval": str(self.limits.interval_s // 60),
            "start_time_stamp": local_stamp(start_ts, timezone),
            "end_time_stamp": local_stamp(end_ts - 1, timezone),
        }
        payload = await self._call(
            "POST", DATA_PATH, calls=result.calls, json=body,
            count=lambda p: count_point_data(p.get("result_data"), ps_key),
        )
        records, rejected, _empty = parse_point_data(payload.get("result_data"), ps_key, timezone, self.points)
        result.records.extend(records)
        result.rejected.extend(rejected)

    async def _ps_list_page(self, page: int, calls: list[CallLog]) -> dict:
        body = {"sys_code": "900", "lang": "_en_US", "curPage": page, "size": self.ps_list_page_size}

        def count(payload: Any) -> int:
            data = payload.get("result_data")
            if not isinstance(data, dict) or not isinstance(data.get("pageList"), list):
                raise VendorUnavailable("getPsList answer without pageList")
            return len(data["pageList"])

        payload = await self._call("POST", PS_LIST_PATH, calls=calls, json=body, count=count)
        return payload["result_data"]

    async def list_plants(self) -> list[VendorPlant]:
        calls: list[CallLog] = []

        async def page(number: int) -> tuple[list, int]:
            data = await self._ps_list_page(number, calls)
            return data["pageList"], int(to_number(data.get("rowCount", 0), "rowCount"))

        return [parse_ps_list_item(item) for item in await all_pages(page)]
