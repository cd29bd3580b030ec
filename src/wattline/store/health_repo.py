"""Database probes for ``/health``: can each database answer a trivial query?"""

from __future__ import annotations

from sqlalchemy import Engine, text


def probe(engine: Engine) -> dict:
    """``{"status": "ok", "dialect": ...}`` or ``{"status": "error", "error": <exception type>}``.

    Never raises: a probe reports, and the exception's text (which may hold a URL) is
    left out."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "dialect": engine.dialect.name}
    except Exception as exc:  # noqa: BLE001 - report, never raise from a probe
        return {"status": "error", "error": type(exc).__name__}
