"""The device topics: ``<prefix>/<esp32_name>/telemetry | status | heartbeat``."""

from __future__ import annotations

KINDS = ("telemetry", "status", "heartbeat")


def _check_level(what: str, value: str) -> None:
    if not value or any(ch in value for ch in "+#\0") or value.startswith("$"):
        raise ValueError(f"{what} {value!r}: must be non-empty, without + # or a leading $")


def subscription_filters(prefix: str, group: str | None = None) -> list[str]:
    """The three filters a consumer subscribes to; through ``$share/<group>/`` when a
    group is given, so that the consumers of one group split the stream between them."""
    _check_level("topic prefix", prefix)
    filters = [f"{prefix}/+/{kind}" for kind in KINDS]
    if group is None:
        return filters
    _check_level("group name", group)
    if "/" in group:
        raise ValueError(f"group name {group!r}: must not contain /")
    return [f"$share/{group}/{f}" for f in filters]


def device_topic(prefix: str, esp32_name: str, kind: str) -> str:
    """Where a controller publishes messages of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}; known: {', '.join(KINDS)}")
    return f"{prefix}/{esp32_name}/{kind}"


def parse_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``(esp32_name, kind)`` of a device topic under ``prefix``, or ``None`` if it is not one."""
    head = f"{prefix}/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head):].split("/")
    if len(rest) != 2 or not rest[0] or rest[1] not in KINDS:
        return None
    return rest[0], rest[1]
