"""Access rules of helper points' routes: the historical API, the daily and cleanup
crons, the database overview (src/wattline/api/routes/historical.py). Format and
policies: tests/security/access.py."""

from tests.security.access import Rule

RULES = [
    # the matrix's systems are solarman ones: their power point is "power"
    Rule("GET", "/api/data/historical?systemIds={system}&pointKeys=power&range=1H", "system_read"),
    Rule("GET", "/api/data/historical?systemIds={system}&pointKeys=power&range=24H", "system_read"),
    Rule("GET", "/api/data/historical?systemIds={system}&pointKeys=power&range=7D&aggregation=raw", "system_read"),
    Rule("POST", "/api/cron/daily", "cron_or_admin", body={"action": "catchup"}),
    Rule("POST", "/api/cron/cleanup", "cron_or_admin"),
    Rule("GET", "/api/admin/database", "admin"),
    Rule("GET", "/api/admin/engine-jobs", "admin"),  # the engine is not configured there: an empty list
    Rule("GET", "/api/admin/engine-jobs/1", "admin"),  # not configured there: a 404 (allowed)
]
