"""Access rules of the routes on main before issue 11's helpers, and of the admin/setup
routes (helper admin). See tests/security/access.py for the format and the policies."""

from tests.security.access import Rule

PASSWORD = "a long test password"  # the matrix's users' password (test_access_matrix.py)
SOLARMAN = {"app_id": "3024060312", "app_secret": "matrix-secret", "email": "m@example.org", "password": "pw-matrix"}
FRONIUS_WRONG_KEY = {"siteId": "no-such-site", "apiKey": "wrong-key", "timestamp": "2025-11-22T12:00:00Z",
                     "sequence": "1", "solarW": 100.0}

RULES = [
    # -- documentation, health, metrics, static files, sign-in
    Rule("GET", "/openapi.json", "public"),
    Rule("GET", "/docs", "public"),
    Rule("GET", "/docs/oauth2-redirect", "public"),
    Rule("GET", "/redoc", "public"),
    Rule("GET", "/health", "public"),
    Rule("GET", "/metrics", "public"),
    Rule("GET", "/static/app.js", "public"),
    Rule("GET", "/login", "public"),
    Rule("POST", "/login", "public", form={"username": "alice", "password": PASSWORD, "next": "/"}),
    Rule("GET", "/logout", "public"),
    Rule("POST", "/logout", "public"),
    # -- dashboard pages
    Rule("GET", "/", "page"),
    Rule("GET", "/plants/1", "page"),
    Rule("GET", "/work-orders/1", "page"),
    Rule("GET", "/jobs", "page"),
    Rule("GET", "/sync-logs", "page"),
    Rule("GET", "/classrooms", "page"),
    Rule("GET", "/classrooms/room-1", "page"),
    Rule("GET", "/cost-versions", "page"),
    Rule("GET", "/devices", "page"),
    Rule("GET", "/devices/esp-1/dev-1", "page"),
    Rule("GET", "/review", "page"),
    # -- plants, work orders, telemetry, jobs (organization-wide reads)
    Rule("GET", "/api/plants", "viewer"),
    Rule("GET", "/api/plants/1", "viewer"),
    Rule("GET", "/api/work-orders", "viewer"),
    Rule("GET", "/api/work-orders/1", "viewer"),
    Rule("GET", "/api/sync-logs", "viewer"),
    Rule("GET", "/api/energy", "viewer"),
    Rule("GET", "/api/jobs", "viewer"),
    Rule("GET", "/api/jobs/1", "viewer"),
    Rule("GET", "/api/telemetry/plant/1", "viewer"),
    Rule("GET", "/api/telemetry/plant/1/latest", "viewer"),
    Rule("GET", "/api/telemetry/plant/1/charts/energy-15m", "viewer"),
    Rule("GET", "/api/telemetry/plant/1/charts/power", "viewer"),
    Rule("GET", "/api/telemetry/plant/1/charts/daily-energy", "viewer"),
    Rule("POST", "/api/telemetry/plant/999999/backfill", "superadmin", body={}),
    Rule("POST", "/api/telemetry/sync-all", "cron_or_superadmin"),
    # -- campus power analytics
    Rule("GET", "/api/power-analytics/classrooms", "viewer"),
    Rule("GET", "/api/power-analytics/summary", "viewer"),
    Rule("GET", "/api/power-analytics/timeline", "viewer"),
    Rule("GET", "/api/power-analytics/device-breakdown", "viewer"),
    Rule("GET", "/api/power-analytics/monthly", "viewer"),
    Rule("GET", "/api/power-analytics/export-csv", "viewer"),
    Rule("GET", "/api/power-analytics/health", "viewer"),
    Rule("GET", "/api/power-analytics/devices", "viewer"),
    Rule("GET", "/api/power-analytics/devices/esp-1/dev-1", "viewer"),
    Rule("POST", "/api/power-analytics/telemetry", "ingest", body=[]),
    Rule("POST", "/api/power-analytics/status", "ingest", body={}),
    Rule("POST", "/api/power-analytics/heartbeat", "ingest", body={}),
    Rule("GET", "/api/power-analytics/cost-versions", "viewer"),
    Rule("POST", "/api/power-analytics/cost-versions", "admin", body={}),
    *[Rule(m, "/api/power-analytics/cost-versions", "public") for m in ("PUT", "PATCH", "DELETE", "OPTIONS",
                                                                          "TRACE")],
    Rule("GET", "/api/power-analytics/review-items", "viewer"),
    Rule("POST", "/api/power-analytics/review-items/999999/resolve", "admin", body={}),
    Rule("POST", "/api/power-analytics/recalculate", "admin", body={}),
    # -- vendors: Enphase authorization, Fronius push
    Rule("GET", "/api/auth/enphase/auth?account_id=999999", "admin"),
    Rule("GET", "/api/auth/enphase/callback", "admin"),
    Rule("POST", "/api/push/fronius", "push", body=FRONIUS_WRONG_KEY),
    # -- systems (seed 003)
    Rule("GET", "/api/data/systems", "viewer"),
    Rule("GET", "/api/data/systems/{system}", "system_read"),
    Rule("GET", "/api/admin/sessions", "admin"),
    Rule("POST", "/api/cron/poll", "cron_or_admin"),
    # -- helper admin: administration, setup, shares
    Rule("GET", "/api/admin/systems", "admin"),
    Rule("POST", "/api/admin/systems/{system}/settings", "admin", body={"displayName": "Renamed by the matrix"}),
    Rule("POST", "/api/admin/systems/{system}/delete", "admin", fresh=True),
    Rule("GET", "/api/admin/systems/{system}/points", "admin"),
    Rule("POST", "/api/admin/systems/{system}/points", "admin", body={"key": "power", "label": "Matrix label"}),
    Rule("GET", "/api/admin/users", "admin"),
    *[Rule(m, p, "public") for m in ("PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")  # 405 naming GET, POST
      for p in ("/api/admin/users", "/api/admin/systems/{system}/points")],
    Rule("POST", "/api/admin/users", "admin", body={"username": "matrix-new", "password": PASSWORD, "role": "viewer"}),
    Rule("POST", "/api/admin/users/{user}/role", "admin", body={"role": "viewer"}),
    Rule("POST", "/api/test-connection", "user", body={"vendorType": "solarman", "credentials": SOLARMAN}),
    Rule("POST", "/api/setup", "user", body={"vendorType": "solarman", "siteId": "1", "displayName": "Matrix",
                                              "credentials": SOLARMAN}),
    Rule("POST", "/api/data/systems/{system}/shares", "system_write", body={"username": "dave"}),
    Rule("DELETE", "/api/data/systems/{system}/shares/{user}", "system_write"),
]
