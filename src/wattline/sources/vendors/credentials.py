"""Credentials of a vendor account: one pydantic model per vendor, checked before use.

``wattline vendors add-account`` validates the given keys against the vendor's model
and stores nothing when they do not fit; an adapter validates stored credentials
again when it is built. Secret fields are :class:`pydantic.SecretStr`, so neither a
``repr`` nor a validation error shows them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from .errors import InvalidCredentials


class VendorCredentials(BaseModel):
    """Base of every vendor's credentials model: unknown keys are refused, values are
    stripped strings and none may be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    # what a person must give, when the fields alone do not say it (one of two keys...)
    keys_help: ClassVar[str | None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError(_EMPTY)
        return value

    def to_storage(self) -> dict[str, str]:
        """The plain dict that is encrypted and stored (secrets revealed, unset keys left out)."""
        out: dict[str, str] = {}
        for name, value in self:
            if value is None:
                continue
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        return out

    @classmethod
    def describe(cls) -> str:
        """``required: a, b; optional: c`` for messages and help texts."""
        if cls.keys_help:
            return cls.keys_help
        req = [n for n, f in cls.model_fields.items() if f.is_required()]
        opt = [n for n, f in cls.model_fields.items() if not f.is_required()]
        return "required: " + ", ".join(req) + (f"; optional: {', '.join(opt)}" if opt else "")


_EMPTY = "is empty"


def _problem(err: dict) -> str:
    where = ".".join(str(p) for p in err.get("loc", ())) or "credentials"
    kind = err.get("type", "")
    if kind == "missing":
        return f"missing key {where!r}"
    if kind == "extra_forbidden":
        return f"unknown key {where!r}"
    if kind == "value_error" and str(err.get("msg", "")).endswith(_EMPTY):
        return f"key {where!r} is empty"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return msg if where == "credentials" else f"{where}: {msg}"  # pydantic's words, never the input


def validate_credentials(vendor_type: str, model: type[VendorCredentials],
                         credentials: Mapping[str, Any] | VendorCredentials) -> VendorCredentials:
    """``credentials`` as ``model``; :class:`InvalidCredentials` naming every bad key."""
    if isinstance(credentials, model):
        return credentials
    try:
        return model.model_validate(dict(credentials))
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors(include_input=False))
        raise InvalidCredentials(f"{vendor_type} credentials refused: {problems} ({model.describe()})") from None
