"""Vendor credentials: each vendor's pydantic model, checked when an account is added
(``wattline vendors add-account`` stores nothing it refuses) and by test_connection()."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from wattline.sources.vendors import InvalidCredentials, RateLimiter, VendorAuthError, get_adapter_class
from wattline.sources.vendors.credentials import validate_credentials
from wattline.sources.vendors.solarman import SolarmanCredentials
from wattline.sources.vendors.sungrow import SungrowCredentials
from wattline.simulator.vendor_cloud import DEFAULT_CREDENTIALS

VENDORS = ["solarman", "sungrow"]


# -- the models -----------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_adapter_declares_a_model_that_takes_the_emulators_credentials(vendor):
    cls = get_adapter_class(vendor)
    creds = validate_credentials(vendor, cls.credentials_model, DEFAULT_CREDENTIALS[vendor])
    assert creds.to_storage() == DEFAULT_CREDENTIALS[vendor]
    assert DEFAULT_CREDENTIALS[vendor]["password"] not in repr(creds)


def test_models_refuse_missing_unknown_and_empty_keys_naming_keys_not_values():
    with pytest.raises(InvalidCredentials) as exc:
        validate_credentials("sungrow", SungrowCredentials,
                             {"appkey": "K-SECRET", "user_account": "me", "password": "   "})
    msg = str(exc.value)
    assert "missing key 'username'" in msg and "unknown key 'user_account'" in msg
    assert "key 'password' is empty" in msg
    assert "K-SECRET" not in msg and "me" not in msg.replace("name", "")
    # no alias guessing: the old spellings are refused, not translated
    with pytest.raises(InvalidCredentials, match="unknown key 'appId'"):
        validate_credentials("solarman", SolarmanCredentials,
                             {"appId": "1", "app_id": "1", "app_secret": "s", "email": "e", "password": "p"})
    # one of email/username and one of password/password_sha256
    with pytest.raises(InvalidCredentials, match="needs 'email' or 'username'"):
        validate_credentials("solarman", SolarmanCredentials, {"app_id": "1", "app_secret": "s", "password": "p"})
    ok = validate_credentials("solarman", SolarmanCredentials,
                              {"app_id": "1", "app_secret": "s", "username": "u", "password_sha256": "AB"})
    assert ok.to_storage() == {"app_id": "1", "app_secret": "s", "username": "u", "password_sha256": "AB"}


def test_an_adapter_refuses_stored_credentials_that_do_not_fit():
    with pytest.raises(InvalidCredentials, match="missing key 'app_secret'"):
        get_adapter_class("solarman")(None, {"app_id": "1", "email": "e", "password": "p"})


# -- test_connection() against the emulated cloud ---------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_connection_succeeds_with_the_right_credentials(kit, cloud, vendor):
    cloud.state.stats.reset()
    ad = get_adapter_class(vendor)(cloud.base_url, kit.credentials(vendor), limiter=RateLimiter.unlimited())

    async def main():
        async with ad:
            await ad.test_connection()

    kit.run(main())
    assert cloud.state.stats.count(vendor) >= 1 and cloud.state.stats.errors() == {}


@pytest.mark.parametrize("vendor, change, says", [
    ("solarman", {"password": "not-the-password"}, "account or password is incorrect"),
    ("solarman", {"app_secret": "not-the-secret"}, "[2101003]"),
    ("sungrow", {"password": "not-the-password"}, "login refused"),
    ("sungrow", {"appkey": "NOT-THE-KEY"}, "appkey refused"),
])
def test_connection_fails_clearly_with_wrong_credentials(kit, cloud, vendor, change, says):
    ad = get_adapter_class(vendor)(cloud.base_url, kit.credentials(vendor, **change), limiter=RateLimiter.unlimited())

    async def main():
        async with ad:
            await ad.test_connection()

    with pytest.raises(VendorAuthError) as exc:
        kit.run(main())
    assert says in str(exc.value)
    wrong = next(iter(change.values()))
    assert wrong not in str(exc.value) and wrong not in repr(exc.value.calls)
    assert len(exc.value.calls) == 1  # a refused login is not retried


# -- wattline vendors add-account ---------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL"):
        monkeypatch.delenv(var, raising=False)
    from wattline.cli import app

    runner = CliRunner()

    def invoke(*args):
        res = runner.invoke(app, list(args))
        res.text = " ".join(res.output.split())  # Rich wraps long lines
        return res

    return invoke


def _accounts(tmp_path) -> int:
    import sqlite3

    db = tmp_path / "data" / "main.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return conn.execute("SELECT COUNT(*) FROM vendor_accounts").fetchone()[0] if "vendor_accounts" in tables else 0


def _creds(vendor: str, **changes) -> list[str]:
    merged = {**DEFAULT_CREDENTIALS[vendor], **changes}
    return [arg for k, v in merged.items() if v is not None for arg in ("--credential", f"{k}={v}")]


def test_add_account_refuses_a_missing_key_and_writes_nothing(cli, tmp_path):
    res = cli("vendors", "add-account", "roof", "--vendor", "sungrow", *_creds("sungrow", appkey=None))
    assert res.exit_code == 2
    assert "sungrow credentials refused: missing key 'appkey'" in res.text
    assert "required: appkey, username, password" in res.text
    assert DEFAULT_CREDENTIALS["sungrow"]["password"] not in res.text
    assert _accounts(tmp_path) == 0


def test_add_account_refuses_an_unknown_key_and_writes_nothing(cli, tmp_path):
    res = cli("vendors", "add-account", "roof", "--vendor", "solarman", *_creds("solarman", appSecret="x"))
    assert res.exit_code == 2
    assert "unknown key 'appSecret'" in res.text
    assert _accounts(tmp_path) == 0


def test_add_account_stores_the_right_keys(cli, tmp_path):
    res = cli("vendors", "add-account", "roof", "--vendor", "solarman", *_creds("solarman"), "--unlimited")
    assert res.exit_code == 0, res.output
    assert "added with id" in res.text and DEFAULT_CREDENTIALS["solarman"]["password"] not in res.text
    assert _accounts(tmp_path) == 1
