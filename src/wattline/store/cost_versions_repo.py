"""Cost versions in the registry (main database): add, list, and the tariff of an asset.

A version is never updated or deleted: a newer one supersedes it (``domain.cost``
chooses). Adding exactly the same version twice (scope, instant, rate, currency)
returns the stored one, so a repeated command or request changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from wattline.domain import timeutil
from wattline.domain.cost import AssetScopes, CostVersion, Scope, Tariff, money_text, tariff
from wattline.store.tables import assets, cost_versions, group_members, groups, organizations

SCOPES = ("global", "organization", "group", "asset")  # least specific first, as domain.cost.Scope
DEFAULT_CURRENCY = "INR"  # the campus seeds' (Asia/Kolkata); see default_currency


class CostVersionError(ValueError):
    """Bad cost-version input (unknown scope target, bad currency...): the message says which."""

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class ScopeRef:
    """What a version applies to: ``scope`` one of :data:`SCOPES`, ``scope_id`` the
    organization, group or asset id (None for global), ``name`` for display."""

    scope: str = "global"
    scope_id: int | None = None
    name: str | None = None


# ------------------------------------------------------------------ scopes


def resolve_scope(conn: Connection, *, asset: str | None = None, asset_id: int | None = None,
                  group: str | None = None, group_id: int | None = None, group_kind: str | None = None,
                  organization: str | None = None, organization_id: int | None = None) -> ScopeRef:
    """The scope named by at most one of the arguments (none: global).

    ``group`` is a group's name, optionally of ``group_kind`` (``classroom``); a name
    shared by several groups (other kinds or organizations) is refused as ambiguous."""
    given = [(k, v) for k, v in (("asset", asset), ("asset_id", asset_id), ("group", group),
                                 ("group_id", group_id), ("organization", organization),
                                 ("organization_id", organization_id)) if v is not None]
    if len(given) > 1:
        raise CostVersionError(f"give at most one scope, not {' and '.join(k for k, _ in given)}", given[1][0])
    if not given:
        return ScopeRef()
    key, value = given[0]
    if key in ("asset", "asset_id"):
        col = assets.c.name if key == "asset" else assets.c.id
        row = conn.execute(select(assets.c.id, assets.c.name).where(col == value)).first()
        if row is None:
            raise CostVersionError(f"no asset {value!r}", key)
        return ScopeRef("asset", row.id, row.name)
    if key in ("organization", "organization_id"):
        col = organizations.c.name if key == "organization" else organizations.c.id
        row = conn.execute(select(organizations.c.id, organizations.c.name).where(col == value)).first()
        if row is None:
            raise CostVersionError(f"no organization {value!r}", key)
        return ScopeRef("organization", row.id, row.name)
    q = select(groups.c.id, groups.c.name, groups.c.kind)
    q = q.where(groups.c.name == value) if key == "group" else q.where(groups.c.id == value)
    if group_kind is not None:
        q = q.where(groups.c.kind == group_kind)
    rows = conn.execute(q).all()
    what = group_kind or "group"
    if not rows:
        raise CostVersionError(f"no {what} {value!r}", key)
    if len(rows) > 1:
        raise CostVersionError(f"{len(rows)} groups are named {value!r} ({', '.join(r.kind for r in rows)}): "
                               "give its id", key)
    return ScopeRef("group", rows[0].id, rows[0].name)


def _organization_of(conn: Connection, ref: ScopeRef) -> int | None:
    if ref.scope == "organization":
        return ref.scope_id
    if ref.scope == "group":
        return conn.execute(select(groups.c.organization_id).where(groups.c.id == ref.scope_id)).scalar()
    if ref.scope == "asset":
        return conn.execute(select(assets.c.organization_id).where(assets.c.id == ref.scope_id)).scalar()
    return None


def default_currency(conn: Connection, ref: ScopeRef) -> str:
    """The currency a version gets when none is given: that of the newest version
    already covering its organization (any of its scopes, or global), so an
    organization keeps one currency; :data:`DEFAULT_CURRENCY` for the first."""
    org = _organization_of(conn, ref)
    for v in sorted(_rows(conn), key=lambda r: (r["effective_from"], r["id"]), reverse=True):
        if v["scope"] == "global" or (org is not None and _organization_of(
                conn, ScopeRef(v["scope"], v["scope_id"])) == org):
            return v["currency"]
    return DEFAULT_CURRENCY


# ------------------------------------------------------------------ versions


def add(conn: Connection, *, rate_micro_per_kwh: int, effective_from: int, ref: ScopeRef = ScopeRef(),
        currency: str | None = None, notes: str | None = None, created_by: str | None = None) -> tuple[dict, bool]:
    """Store a version; returns (the version as :func:`list_versions` gives it, created).

    ``rate_micro_per_kwh``: micro-units of the currency per kWh (``domain.cost.
    rate_micro_per_kwh``); ``effective_from``: UTC epoch seconds; ``currency``: ISO 4217
    (three capital letters), default :func:`default_currency`. The same version again
    is not stored twice (created is False)."""
    if ref.scope not in SCOPES or (ref.scope == "global") != (ref.scope_id is None):
        raise CostVersionError(f"bad scope {ref.scope!r} / {ref.scope_id!r}", "scope")
    if int(rate_micro_per_kwh) < 0:
        raise CostVersionError("the rate must not be negative", "cost_per_kwh")
    cur = currency if currency is not None else default_currency(conn, ref)
    if not (len(cur) == 3 and cur.isascii() and cur.isalpha() and cur.isupper()):
        raise CostVersionError(f"currency must be an ISO 4217 code such as INR or EUR, not {cur!r}", "currency")
    same = select(cost_versions.c.id).where(
        cost_versions.c.scope == ref.scope, cost_versions.c.effective_from == int(effective_from),
        cost_versions.c.cost_per_kwh_micro == int(rate_micro_per_kwh), cost_versions.c.currency == cur,
        cost_versions.c.scope_id.is_(None) if ref.scope_id is None else cost_versions.c.scope_id == ref.scope_id)
    found = conn.execute(same).scalar()
    if found is not None:
        return get(conn, found), False
    new_id = conn.execute(insert(cost_versions).values(
        cost_per_kwh_micro=int(rate_micro_per_kwh), currency=cur, effective_from=int(effective_from),
        scope=ref.scope, scope_id=ref.scope_id, notes=notes, created_by=created_by)).inserted_primary_key[0]
    return get(conn, new_id), True


def _rows(conn: Connection, version_id: int | None = None) -> list[dict]:
    q = select(cost_versions).order_by(cost_versions.c.effective_from, cost_versions.c.id)
    if version_id is not None:
        q = q.where(cost_versions.c.id == version_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def _names(conn: Connection) -> dict[tuple[str, int], str]:
    out = {("asset", r.id): r.name for r in conn.execute(select(assets.c.id, assets.c.name))}
    out.update({("group", r.id): r.name for r in conn.execute(select(groups.c.id, groups.c.name))})
    out.update({("organization", r.id): r.name
                for r in conn.execute(select(organizations.c.id, organizations.c.name))})
    return out


def list_versions(conn: Connection) -> list[dict]:
    """Every version, oldest ``effective_from`` first: the table's columns plus
    ``scope_name`` (the asset's, group's or organization's name)."""
    names = _names(conn)
    return [{**r, "scope_name": names.get((r["scope"], r["scope_id"]))} for r in _rows(conn)]


def get(conn: Connection, version_id: int) -> dict | None:
    rows = _rows(conn, version_id)
    if not rows:
        return None
    names = _names(conn)
    return {**rows[0], "scope_name": names.get((rows[0]["scope"], rows[0]["scope_id"]))}


def public(v: dict) -> dict:
    """A stored version as the CLI and the API show it: the rate as exact decimal
    text (``"7.50"``) and in micro-units, instants as ISO-8601 UTC."""
    created = v.get("created_at")
    return {
        "id": v["id"], "cost_per_kwh": money_text(v["cost_per_kwh_micro"]),
        "cost_per_kwh_micro": int(v["cost_per_kwh_micro"]), "currency": v["currency"],
        "effective_from": timeutil.iso(int(v["effective_from"])), "scope": v["scope"],
        "scope_id": v["scope_id"], "scope_name": v.get("scope_name"), "notes": v["notes"],
        "created_by": v["created_by"],
        "created_at": None if created is None else (created.isoformat() if hasattr(created, "isoformat")
                                                    else str(created)),
    }


def domain_versions(conn: Connection) -> list[CostVersion]:
    """Every version as the domain rule takes it (the table is small: one row per
    rate change and scope)."""
    return [CostVersion(r["id"], int(r["cost_per_kwh_micro"]), int(r["effective_from"]),
                        Scope[r["scope"].upper()], r["scope_id"], r["currency"]) for r in _rows(conn)]


# ------------------------------------------------------------------ tariffs


def asset_scopes(conn: Connection, asset_ids: Iterable[int]) -> dict[int, AssetScopes]:
    """Organization and groups of each asset, for matching versions."""
    ids = sorted({int(a) for a in asset_ids})
    if not ids:
        return {}
    orgs = dict(conn.execute(select(assets.c.id, assets.c.organization_id).where(assets.c.id.in_(ids))).all())
    member: dict[int, set[int]] = {}
    for aid, gid in conn.execute(select(group_members.c.asset_id, group_members.c.group_id)
                                 .where(group_members.c.asset_id.in_(ids))):
        member.setdefault(aid, set()).add(gid)
    return {a: AssetScopes(a, orgs.get(a), frozenset(member.get(a, ()))) for a in ids if a in orgs}


def tariffs_for_assets(conn: Connection, asset_ids: Iterable[int]) -> dict[int, Tariff]:
    """The tariff (``domain.cost.Tariff``) of each asset, from every stored version."""
    versions = domain_versions(conn)
    return {a: tariff(versions, s) for a, s in asset_scopes(conn, asset_ids).items()}


def tariff_for_asset(conn: Connection, asset_id: int) -> Tariff:
    return tariffs_for_assets(conn, [asset_id]).get(int(asset_id), Tariff())


def tariffs_for_series(conn: Connection, series_assets: dict[int, int]) -> dict[int, Tariff]:
    """The tariff of each series (series id -> its asset id)."""
    by_asset = tariffs_for_assets(conn, series_assets.values())
    return {int(s): by_asset.get(int(a), Tariff()) for s, a in series_assets.items()}
