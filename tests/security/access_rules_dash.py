"""Access rules of helper dash's routes: the energy-flow API and the system, composite,
setup and admin pages (format: tests/security/access.py)."""

from tests.security.access import Rule

RULES = [
    # GET /api/data/flows: a system the caller may not read is a 404
    Rule("GET", "/api/data/flows?systemId={system}&range=now", "system_read"),
    Rule("GET", "/api/data/flows?systemId={system}&range=24H", "system_read"),
    # a composite: readable by an admin or a caller who reads every member (none here: 404 for all)
    Rule("GET", "/api/data/flows?composite=no-such-composite&range=now", "viewer"),
    # pages: 303 to /login without a session; a system page is a 404 page for who may not read it
    Rule("GET", "/systems", "page"),
    Rule("GET", "/systems/{system}", "page_system"),
    Rule("GET", "/composites/no-such-composite", "page"),
    Rule("GET", "/setup", "page"),  # a viewer is told that only users add systems
    # admin pages: a 404 page below admin (not revealed), the admin API refuses anyway
    Rule("GET", "/admin", "page"),
    Rule("GET", "/admin/systems", "page"),
    Rule("GET", "/admin/systems/{system}/points", "page"),
    Rule("GET", "/admin/sessions", "page"),
    Rule("GET", "/admin/users", "page"),
    Rule("GET", "/admin/connection-test", "page"),
    Rule("GET", "/admin/database", "page"),
]
