"""Table definitions of both databases (SQLAlchemy Core).

``main_metadata`` is the registry; ``telemetry_metadata`` holds everything measured
or derived. Timestamps of measured data are integer UTC epoch seconds (``ts``,
``start_ts`` ...): compact, fast to compare and the same on SQLite and PostgreSQL;
the seed-named view ``telemetry_15m`` presents them as timestamps. Energy in the
ledger and aggregates is an integer count of milliwatt-hours (``*_milli_wh``) so
that hourly, daily, monthly and ledger sums regroup exactly, with no float drift.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)

main_metadata = MetaData()
telemetry_metadata = MetaData()

# ---------------------------------------------------------------- main (registry)

organizations = Table(
    "organizations",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("auto_sync_enabled", Boolean, nullable=False, server_default="1"),
    Column("sync_interval_minutes", Integer, nullable=False, server_default="1440"),
    # a message from an unknown device registers it instead of being quarantined
    Column("auto_register_devices", Boolean, nullable=False, server_default=false()),
    # raw point readings older than this many days are deleted weekly; NULL: kept (main 0016)
    Column("raw_retention_days", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

vendor_accounts = Table(
    "vendor_accounts",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("vendor_type", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("base_url", String(500), nullable=True),
    # AES-256-GCM: 12-byte nonce || ciphertext+tag, never logged or returned
    Column("credentials_encrypted", LargeBinary, nullable=False),
    # overrides of the adapter's declared limits (a higher API tier, or None = unlimited
    # for the emulated clouds on loopback): {"calls_per_minute": 600, "calls_per_day": null}
    Column("rate_limits", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("organization_id", "name", name="uq_vendor_accounts_org_name"),
)

assets = Table(
    "assets",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),  # plant | system | site | device | meter
    Column("timezone", String(64), nullable=False),
    Column("vendor_account_id", Integer, ForeignKey("vendor_accounts.id"), nullable=True),
    Column("vendor_type", String(40), nullable=True),
    Column("vendor_plant_id", String(100), nullable=True),
    Column("start_operating_time", BigInteger, nullable=True),  # epoch s
    Column("capacity_kw", Float, nullable=True),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("attributes", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_assets_vendor", assets.c.vendor_type, assets.c.vendor_plant_id)

points = Table(
    "points",
    main_metadata,
    # the point id is the series id used in every telemetry table
    Column("id", Integer, primary_key=True),
    Column("asset_id", Integer, ForeignKey("assets.id"), nullable=False),
    Column("key", String(80), nullable=False),
    Column("metric_type", String(20), nullable=False),
    Column("unit", String(16), nullable=False),  # canonical unit of metric_type
    Column("vendor_field", String(120), nullable=True),
    Column("transform", String(120), nullable=True),
    # a counter value below reset_ratio * previous is a reset; above it, noise
    Column("reset_ratio", Float, nullable=False, server_default="0.9"),
    Column("wrap_kwh", Float, nullable=True),  # fixed-width counters wrap at this value
    Column("expected_interval_s", Integer, nullable=False, server_default="900"),
    Column("plausible_min", Float, nullable=True),
    Column("plausible_max", Float, nullable=True),
    # seed 003 point_info (main migration 0015): how a point shows on a system's page
    Column("subsystem", String(20), nullable=True),  # solar | battery | grid | load | inverter ...
    Column("point_type", String(20), nullable=True),  # generation | consumption | storage | state ...
    Column("label", String(120), nullable=True),  # NULL: the key
    Column("display_order", Integer, nullable=False, server_default="0"),
    Column("visible", Boolean, nullable=False, server_default="1"),
    Column("active", Boolean, nullable=False, server_default="1"),
    UniqueConstraint("asset_id", "key", name="uq_points_asset_key"),
)

groups = Table(
    "groups",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # work_order | composite | classroom
    Column("name", String(200), nullable=False),
    # periods of a group's roll-ups are those of this zone; NULL: its organization's
    Column("timezone", String(64), nullable=True),
    Column("slug", String(64), nullable=True),  # composites: URL name (main migration 0015)
    # composites (main 0016): owner, description, favourite
    Column("owner_user_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("description", Text, nullable=True),
    Column("favourite", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("organization_id", "kind", "name", name="uq_groups_org_kind_name"),
)

group_members = Table(
    "group_members",
    main_metadata,
    Column("group_id", Integer, ForeignKey("groups.id"), primary_key=True),
    Column("asset_id", Integer, ForeignKey("assets.id"), primary_key=True),
    Column("position", Integer, nullable=False, server_default="0"),  # composites' member order (main 0016)
)
Index("ix_group_members_asset", group_members.c.asset_id)

# ---------------------------------------------------------------- telemetry

# Copy of the registry facts the telemetry side needs for its own views and roll-ups
# (seed 000: the telemetry database duplicates rather than reaching across).
series_info = Table(
    "series_info",
    telemetry_metadata,
    Column("series_id", Integer, primary_key=True),
    Column("asset_id", Integer, nullable=False),
    Column("point_key", String(80), nullable=False),
    Column("metric_type", String(20), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("vendor_plant_id", String(100), nullable=True),
)
Index("ix_series_info_asset", series_info.c.asset_id, series_info.c.point_key)

raw_events = Table(
    "raw_events",
    telemetry_metadata,
    # first 8 bytes of the sha256 of the canonical JSON, as a signed int64
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("source", String(80), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),  # exactly as it arrived, JSON text
)

# A reading and the ledger entry ending at it share one row: the entry covers
# (start_ts, ts] — start_ts is the previous reading — and its columns are NULL for a
# reading without one (a series' first reading; metrics that carry no energy). One row
# per reading halves the pipeline's writes; the view ``ledger`` presents the entries.
readings = Table(
    "readings",
    telemetry_metadata,
    Column("series_id", Integer, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("value", Float, nullable=False),
    Column("raw_event_id", BigInteger, nullable=True),
    Column("start_ts", BigInteger, nullable=True),
    Column("delta_milli_wh", BigInteger, nullable=True),  # >= 0 for counters
    Column("method", SmallInteger, nullable=True),  # see domain.quality.Method
    Column("confidence", Float, nullable=True),
    Column("flags", Integer, nullable=True),  # domain.quality.Flag bits
    # counter high-water mark after this entry (milli-Wh): lets a late reading
    # re-derive only the entries it touches
    Column("ref_milli_wh", BigInteger, nullable=True),
    # seconds of the entry's interval with the device's switch on (NULL: no switch known)
    Column("on_time_s", Integer, nullable=True),
)
LEDGER_COLUMNS = ("start_ts", "delta_milli_wh", "method", "confidence", "flags", "ref_milli_wh", "on_time_s")

quarantined_readings = Table(
    "quarantined_readings",
    telemetry_metadata,
    Column("series_id", Integer, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("reason", String(200), primary_key=True),
    Column("value_text", String(64), nullable=False),  # repr: NaN/inf survive
    Column("raw_event_id", BigInteger, nullable=True),
    Column("received_at", BigInteger, nullable=False),
)

aggregates = Table(
    "aggregates",
    telemetry_metadata,
    Column("series_id", Integer, primary_key=True, autoincrement=False),
    Column("period", String(8), primary_key=True),  # day month year (finer: computed on read)
    Column("bucket_start", BigInteger, primary_key=True, autoincrement=False),
    Column("bucket_end", BigInteger, nullable=False),
    Column("energy_milli_wh", BigInteger, nullable=True),
    Column("value_min", Float, nullable=True),
    Column("value_max", Float, nullable=True),
    Column("value_sum", Float, nullable=True),
    Column("value_count", Integer, nullable=False, server_default="0"),
    Column("value_last", Float, nullable=True),
    Column("last_ts", BigInteger, nullable=True),
    Column("ledger_count", Integer, nullable=False, server_default="0"),
    Column("flags", Integer, nullable=False, server_default="0"),
    # a ledger delta crossing the bucket's start / end was split by time
    Column("split_start", Boolean, nullable=False, server_default="0"),
    Column("split_end", Boolean, nullable=False, server_default="0"),
    # switch-on seconds, and the energy of high-confidence entries (metered, no gap):
    # estimated energy = energy_milli_wh - hc_energy_milli_wh
    Column("on_time_s", BigInteger, nullable=True),
    Column("hc_energy_milli_wh", BigInteger, nullable=True),
)

plant_aggregates = Table(
    "plant_aggregates",
    telemetry_metadata,
    Column("plant_id", Integer, primary_key=True, autoincrement=False),
    Column("vendor_plant_id", Text, nullable=False),
    Column("daily_energy_kwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("monthly_energy_mwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("yearly_energy_mwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("total_energy_mwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("current_power_kw", Numeric(10, 3, asdecimal=False), nullable=True),
    Column("last_update_time", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("quality_flags", Integer, nullable=False, server_default="0"),
)
Index("idx_plant_aggregates_vendor_plant_id", plant_aggregates.c.vendor_plant_id)
Index("idx_plant_aggregates_last_update", plant_aggregates.c.last_update_time)

work_order_aggregates = Table(
    "work_order_aggregates",
    telemetry_metadata,
    Column("work_order_id", Integer, primary_key=True, autoincrement=False),
    Column("daily_energy_kwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("monthly_energy_mwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("yearly_energy_mwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("total_energy_mwh", Numeric(10, 3, asdecimal=False), nullable=False),
    Column("current_power_kw", Numeric(10, 3, asdecimal=False), nullable=True),
    Column("last_update_time", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("quality_flags", Integer, nullable=False, server_default="0"),
)
Index("idx_work_order_aggregates_last_update", work_order_aggregates.c.last_update_time)

vendor_sync_logs = Table(
    "vendor_sync_logs",
    telemetry_metadata,
    Column("id", Integer, primary_key=True),
    Column("vendor_id", Integer, nullable=True),
    Column("plant_id", Integer, nullable=True),
    Column("sync_type", Text, nullable=False),  # telemetry | plant | alert | job
    Column("status", Text, nullable=False),  # success | error | partial
    Column("error_message", Text, nullable=True),
    Column("records_processed", Integer, nullable=False, server_default="0"),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("metadata", JSON, nullable=True),
)
Index("ix_vendor_sync_logs_plant", vendor_sync_logs.c.plant_id, vendor_sync_logs.c.started_at)
Index("ix_vendor_sync_logs_vendor", vendor_sync_logs.c.vendor_id, vendor_sync_logs.c.started_at)  # quota seeding

# ---------------------------------------------------------------- security (main)

users = Table(
    "users",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(120), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("role", String(20), nullable=False),  # superadmin | admin | user | viewer
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

api_tokens = Table(
    "api_tokens",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),  # never the token
    Column("role", String(20), nullable=False),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# ---------------------------------------------------------------- jobs (telemetry)

jobs = Table(
    "jobs",
    telemetry_metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("params", JSON, nullable=True),
    Column("status", String(20), nullable=False),  # queued | running | succeeded | failed
    Column("progress", JSON, nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # which process runs the job (hostname:pid:token) and until when its claim holds;
    # the worker renews the lease while it runs (jobs/runner.py)
    Column("owner", String(200), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    # e.g. "backfill:123": at most one live (queued or running) job per key
    Column("job_key", String(120), nullable=True),
)
Index("uq_jobs_live_key", jobs.c.job_key, unique=True,
      sqlite_where=jobs.c.status.in_(("queued", "running")),
      postgresql_where=jobs.c.status.in_(("queued", "running")))

backfill_checkpoints = Table(
    "backfill_checkpoints",
    telemetry_metadata,
    Column("plant_id", Integer, primary_key=True, autoincrement=False),
    Column("last_ts", BigInteger, nullable=True),  # last stored reading ts (epoch s)
    Column("target_end_ts", BigInteger, nullable=True),
    Column("chunks_done", Integer, nullable=False, server_default="0"),
    Column("records", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The last 31 days of each plant's 15-minute points, for charts (seed 000's
# "31-day rolling window"; the daily sync deletes older rows, raw readings stay).
telemetry_15m_recent = Table(
    "telemetry_15m_recent",
    telemetry_metadata,
    Column("plant_id", Integer, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("total_energy_mwh", Float, nullable=True),
    Column("power_kw", Float, nullable=True),
)

# The live simulator's per-site state (battery SOC, health, cycles, counters), saved
# every round so a restart continues where it stopped.
simulator_state = Table(
    "simulator_state",
    telemetry_metadata,
    Column("site_key", String(120), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("last_ts", BigInteger, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# ---------------------------------------------------------------- cost versions (main)

from sqlalchemy import CheckConstraint  # noqa: E402  (appended section: kept beside its table)

# A rate per kWh from an instant on, for a scope (domain.cost): the registry's, since it
# is administration. Integer micro-units of the currency per kWh (7.50 -> 7_500_000):
# money is never a float. Versions are never updated; a new one supersedes.
cost_versions = Table(
    "cost_versions",
    main_metadata,
    Column("id", Integer, primary_key=True),
    Column("cost_per_kwh_micro", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),  # ISO 4217
    Column("effective_from", BigInteger, nullable=False),  # UTC epoch s
    Column("scope", String(20), nullable=False),  # global | organization | group | asset
    Column("scope_id", Integer, nullable=True),  # NULL for global
    Column("notes", Text, nullable=True),
    Column("created_by", String(120), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("cost_per_kwh_micro >= 0", name="ck_cost_versions_rate"),
    CheckConstraint("scope IN ('global', 'organization', 'group', 'asset')", name="ck_cost_versions_scope"),
    CheckConstraint("(scope = 'global' AND scope_id IS NULL) OR (scope <> 'global' AND scope_id IS NOT NULL)",
                    name="ck_cost_versions_scope_id"),
)
Index("ix_cost_versions_scope", cost_versions.c.scope, cost_versions.c.scope_id, cost_versions.c.effective_from)
# ---------------------------------------------------------------- campus devices

# A metered device (an asset of kind "device") as its controller names it: unique per
# organization, in one classroom (a group of kind "classroom", of which it is also a
# member), optionally fed through one switch of its controller.
devices = Table(
    "devices",
    main_metadata,
    Column("asset_id", Integer, ForeignKey("assets.id"), primary_key=True, autoincrement=False),
    Column("organization_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("esp32_name", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("classroom_id", Integer, ForeignKey("groups.id"), nullable=False),
    Column("switch_id", String(64), nullable=True),  # e.g. "sw1"
    Column("energy_method", String(10), nullable=False),  # counter | power
    UniqueConstraint("organization_id", "esp32_name", "device_id", name="uq_devices_org_esp32_device"),
)
Index("ix_devices_classroom", devices.c.classroom_id)

# Device messages kept out of the ledger, with the reason (rule 6): from a device the
# registry does not know yet (replayed into the ledger once it is registered), with
# a device clock far ahead, or not a valid document. The payload is its raw event.
device_quarantine = Table(
    "device_quarantine",
    telemetry_metadata,
    Column("organization_id", Integer, primary_key=True, autoincrement=False),
    Column("raw_event_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(20), nullable=False),  # unknown_device | future | invalid
    Column("reason", String(300), nullable=False),
    Column("esp32_name", String(64), nullable=True),
    Column("device_id", String(64), nullable=True),
    Column("source", String(80), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("replayed_at", BigInteger, nullable=True),  # when it went to the ledger after all
)
Index("ix_device_quarantine_device", device_quarantine.c.organization_id, device_quarantine.c.esp32_name,
      device_quarantine.c.device_id)

# The (sequence number, uptime) identity of each device message taken in: a message
# delivered again, even re-rendered (another timestamp, another RSSI), is recognised.
device_messages = Table(
    "device_messages",
    telemetry_metadata,
    Column("asset_id", Integer, primary_key=True, autoincrement=False),
    Column("sequence_no", BigInteger, primary_key=True, autoincrement=False),
    Column("uptime_s", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),  # device time, UTC epoch s
    Column("raw_event_id", BigInteger, nullable=True),
    Column("received_at", BigInteger, nullable=False),
)

# Per ESP32 controller: its last status (the retained online/offline of its Last Will),
# last heartbeat and last telemetry, all arrival times in UTC epoch seconds.
controller_status = Table(
    "controller_status",
    telemetry_metadata,
    Column("organization_id", Integer, primary_key=True, autoincrement=False),
    Column("esp32_name", String(64), primary_key=True),
    Column("status", String(10), nullable=True),  # online | offline
    Column("status_at", BigInteger, nullable=True),
    Column("last_heartbeat_at", BigInteger, nullable=True),
    Column("last_telemetry_at", BigInteger, nullable=True),
    Column("details", JSON, nullable=True),  # last heartbeat: firmware, rssi, uptime...
)

# Every status change of a controller (online/offline), for its history.
controller_status_events = Table(
    "controller_status_events",
    telemetry_metadata,
    Column("organization_id", Integer, primary_key=True, autoincrement=False),
    Column("esp32_name", String(64), primary_key=True),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("status", String(10), primary_key=True),
    Column("raw_event_id", BigInteger, nullable=True),
)

# What reconciliation found and could not fix safely, for a person to review.
review_items = Table(
    "review_items",
    telemetry_metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, nullable=False),
    # missing_heartbeat | gap | out_of_order | energy_while_off | aggregate_mismatch | unknown_device
    Column("kind", String(40), nullable=False),
    Column("asset_id", Integer, nullable=True),
    Column("classroom_id", Integer, nullable=True),
    Column("esp32_name", String(64), nullable=True),
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("details", JSON, nullable=True),
    Column("status", String(10), nullable=False, server_default="open"),  # open | resolved
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("resolved_by", String(120), nullable=True),
    Column("resolution", Text, nullable=True),
    Column("dedup_key", String(200), nullable=False, unique=True),  # one item per finding
)
Index("ix_review_items_org_status", review_items.c.organization_id, review_items.c.status, review_items.c.kind)

# ---------------------------------------------------------------- systems (seed 003, main 0015)

# A monitored system: an asset of kind "system" (its vendor account, vendor site id as
# ``vendor_plant_id``, display timezone as ``timezone``) with an owner. ``status`` is
# what a person set (active | paused); polling health (error after N failures) lives
# in the telemetry database (``system_poll_state``), since jobs only read the registry.
systems = Table(
    "systems",
    main_metadata,
    Column("asset_id", Integer, ForeignKey("assets.id"), primary_key=True, autoincrement=False),
    Column("owner_user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("alias", String(64), nullable=False),  # URL-safe, unique per owner
    Column("is_default", Boolean, nullable=False, server_default=false()),
    Column("status", String(10), nullable=False, server_default="active"),  # active | paused
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("owner_user_id", "alias", name="uq_systems_owner_alias"),
)
Index("uq_systems_one_default", systems.c.owner_user_id, unique=True,
      sqlite_where=systems.c.is_default.is_(True), postgresql_where=systems.c.is_default.is_(True))

# Read access to a system granted by its owner (or an admin) to another user.
system_shares = Table(
    "system_shares",
    main_metadata,
    Column("system_id", Integer, ForeignKey("systems.asset_id"), primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True, autoincrement=False),
    Column("granted_by", String(120), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_system_shares_user", system_shares.c.user_id)

# Versions of a point's transform (JSON {"scale","offset","sign"}), each in force from
# ``effective_from`` (UTC epoch s) on; never updated: a change adds a version.
point_transforms = Table(
    "point_transforms",
    main_metadata,
    Column("point_id", Integer, ForeignKey("points.id"), primary_key=True, autoincrement=False),
    Column("effective_from", BigInteger, primary_key=True, autoincrement=False),
    Column("transform", JSON, nullable=False),
    Column("created_by", String(120), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row (id 1) whose ``version`` triggers move on every write of assets, systems,
# points, point_transforms and vendor_accounts (main 0017): the poller's cue to read
# its registry again (``store/registry_version.py``).
registry_version = Table(
    "registry_version",
    main_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False, server_default="0"),
)

# ---------------------------------------------------------------- poll sessions (telemetry 0018)

# One row per poll or push of a system (seed 003 "sessions"); the response is the raw
# event ``raw_event_id``. Instants in UTC epoch milliseconds.
poll_sessions = Table(
    "sessions",
    telemetry_metadata,
    Column("id", Integer, primary_key=True),
    Column("system_id", Integer, nullable=False),
    Column("vendor_type", String(40), nullable=False),
    Column("cause", String(10), nullable=False),  # CRON | USER | ADMIN | PUSH
    Column("started_at_ms", BigInteger, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("vendor_error_code", String(40), nullable=True),
    Column("error", Text, nullable=True),
    Column("num_readings", Integer, nullable=False, server_default="0"),
    Column("raw_event_id", BigInteger, nullable=True),
)
Index("ix_sessions_system_started", poll_sessions.c.system_id, poll_sessions.c.started_at_ms)
Index("ix_sessions_started", poll_sessions.c.started_at_ms)

# Polling health of each system: consecutive failures and the last outcomes.
system_poll_state = Table(
    "system_poll_state",
    telemetry_metadata,
    Column("system_id", Integer, primary_key=True, autoincrement=False),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_poll_ms", BigInteger, nullable=True),
    Column("last_success_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("skipped_overruns", Integer, nullable=False, server_default="0"),
    # a poll's claim on the system, across processes: another poll waits until it is
    # released (its session written) or expired (its process died)
    Column("polling_until_ms", BigInteger, nullable=True),
    # who holds the claim when it is not a poll (a system backfill): its renewals and
    # release touch only its own claim; a poll's claim has none
    Column("lease_holder", String(100), nullable=True),
)

# One worker at a time on a resource ("plant:7"), across processes: its lease, renewed
# by the holder while the work runs; one that expired (its process died) is free.
resource_leases = Table(
    "resource_leases",
    telemetry_metadata,
    Column("resource", String(100), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)
Index("ix_resource_leases_holder", resource_leases.c.holder)
