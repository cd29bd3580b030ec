"""OpenAPI links: which answer carries the id another operation takes.

A client (and schemathesis' state machine) follows them from a list or a create to
the read, update and delete of what it named: a system listed by /api/admin/systems
to its settings, points and removal; a backfill's 202 to its job; a composite created
to its page, edit and removal. Each link is standard OpenAPI 3 (``operationRef`` and
a runtime expression); a link to an operation the schema lacks is a programming
error, caught when the document is built.
"""

from __future__ import annotations

# (method, path, status, [(link name, target method, target path, {parameter: expression})])
_FIRST = "$response.body#/{list}/0/{field}"


def _first(lst: str, field: str) -> str:
    return _FIRST.format(list=lst, field=field)


_SYSTEM_FROM_ADMIN_LIST = {"path.system_id": _first("systems", "id")}
_COMPOSITE_ID = {"path.composite_id": "$response.body#/id"}
_COMPOSITE_FROM_LIST = {"path.composite_id": _first("composites", "id")}

LINKS: list[tuple[str, str, str, list[tuple]]] = [
    ("get", "/api/admin/systems", "200", [
        ("SystemSettings", "post", "/api/admin/systems/{system_id}/settings", _SYSTEM_FROM_ADMIN_LIST),
        ("SystemPoints", "get", "/api/admin/systems/{system_id}/points", _SYSTEM_FROM_ADMIN_LIST),
        ("EditSystemPoint", "post", "/api/admin/systems/{system_id}/points", _SYSTEM_FROM_ADMIN_LIST),
        ("ShareSystem", "post", "/api/data/systems/{system_id}/shares", _SYSTEM_FROM_ADMIN_LIST),
        ("DeleteSystem", "post", "/api/admin/systems/{system_id}/delete", _SYSTEM_FROM_ADMIN_LIST),
    ]),
    ("get", "/api/data/systems", "200", [
        ("System", "get", "/api/data/systems/{system_id}", {"path.system_id": _first("systems", "id")}),
    ]),
    ("get", "/api/plants", "200", [
        ("Plant", "get", "/api/plants/{plant_id}", {"path.plant_id": _first("plants", "id")}),
        ("PlantLatest", "get", "/api/telemetry/plant/{plant_id}/latest", {"path.plant_id": _first("plants", "id")}),
        ("BackfillPlant", "post", "/api/telemetry/plant/{plant_id}/backfill",
         {"path.plant_id": _first("plants", "id")}),
    ]),
    ("get", "/api/work-orders", "200", [
        ("WorkOrder", "get", "/api/work-orders/{work_order_id}",
         {"path.work_order_id": _first("workOrders", "id")}),
    ]),
    ("post", "/api/telemetry/plant/{plant_id}/backfill", "202", [
        ("BackfillJob", "get", "/api/jobs/{job_id}", {"path.job_id": "$response.body#/jobId"}),
    ]),
    ("post", "/api/telemetry/sync-all", "202", [
        ("SyncJob", "get", "/api/jobs/{job_id}", {"path.job_id": "$response.body#/jobId"}),
    ]),
    ("post", "/api/power-analytics/recalculate", "202", [
        ("RecalculationJob", "get", "/api/jobs/{job_id}", {"path.job_id": "$response.body#/job"}),
    ]),
    ("get", "/api/jobs", "200", [
        ("Job", "get", "/api/jobs/{job_id}", {"path.job_id": _first("jobs", "id")}),
    ]),
    ("get", "/api/power-analytics/devices", "200", [
        ("Device", "get", "/api/power-analytics/devices/{esp32_name}/{device_id}",
         {"path.esp32_name": _first("devices", "esp32_name"), "path.device_id": _first("devices", "device_id")}),
    ]),
    ("get", "/api/power-analytics/review-items", "200", [
        ("ResolveReviewItem", "post", "/api/power-analytics/review-items/{item_id}/resolve",
         {"path.item_id": _first("items", "id")}),
    ]),
    ("post", "/api/composite", "201", [
        ("Composite", "get", "/api/composite/{composite_id}", _COMPOSITE_ID),
        ("EditComposite", "patch", "/api/composite/{composite_id}", _COMPOSITE_ID),
        ("DeleteComposite", "delete", "/api/composite/{composite_id}", _COMPOSITE_ID),
    ]),
    ("get", "/api/composite", "200", [
        ("Composite", "get", "/api/composite/{composite_id}", _COMPOSITE_FROM_LIST),
        ("EditComposite", "patch", "/api/composite/{composite_id}", _COMPOSITE_FROM_LIST),
        ("DeleteComposite", "delete", "/api/composite/{composite_id}", _COMPOSITE_FROM_LIST),
    ]),
    ("post", "/api/admin/users", "200", [
        ("UserRole", "post", "/api/admin/users/{username}/role", {"path.username": "$response.body#/user/username"}),
    ]),
    ("post", "/api/data/systems/{system_id}/shares", "200", [
        ("Unshare", "delete", "/api/data/systems/{system_id}/shares/{username}",
         {"path.system_id": "$response.body#/systemId", "path.username": "$response.body#/sharedWith/0"}),
    ]),
]


def _ref(method: str, path: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(schema: dict) -> None:
    """Declare :data:`LINKS` on the answers of ``schema`` (in place)."""
    paths = schema.get("paths", {})
    for method, path, status, links in LINKS:
        answer = paths[path][method]["responses"][status]
        out = answer.setdefault("links", {})
        for name, t_method, t_path, parameters in links:
            target = paths[t_path][t_method]  # KeyError: a link to an operation that does not exist
            declared = {f"{p['in']}.{p['name']}" for p in target.get("parameters", [])}
            missing = set(parameters) - declared
            if missing:
                raise ValueError(f"link {name}: {t_method.upper()} {t_path} has no parameter {sorted(missing)}")
            out[name] = {"operationRef": _ref(t_method, t_path), "parameters": dict(parameters)}

