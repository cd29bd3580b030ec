"""Poll sessions (seed 003 ``sessions``) and each system's polling health, on the
telemetry database. Instants are UTC epoch milliseconds; durations milliseconds."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, case, func, insert, select, update

from wattline.store import bulk
from wattline.store.engines import write_transaction
from wattline.store.id_chunks import id_chunks
from wattline.store.tables import poll_sessions, system_poll_state

SESSION_FIELDS = ("system_id", "vendor_type", "cause", "started_at_ms", "duration_ms", "success",
                  "vendor_error_code", "error", "num_readings", "raw_event_id")


def record(telemetry: Engine, session: dict) -> int:
    """Write one session row and update the system's health in one transaction;
    returns the system's consecutive failures after it."""
    return record_many(telemetry, [session])[0]


def record_many(telemetry: Engine, sessions: list[dict]) -> list[int]:
    """Write session rows and update each system's health, in one transaction; returns
    each system's consecutive failures after its session (in order)."""
    if not sessions:
        return []
    with write_transaction(telemetry) as conn:
        return record_many_in(conn, sessions)


def record_many_in(conn: Connection, sessions: list[dict]) -> list[int]:
    """:func:`record_many` in the caller's write transaction."""
    if not sessions:
        return []
    c = system_poll_state.c
    out, states = [], {}
    # driver-level rows: SQLAlchemy's per-row parameter dicts were most of this function's time
    bulk.insert_new(conn, poll_sessions, SESSION_FIELDS, [tuple(s.get(k) for k in SESSION_FIELDS)
                                                          for s in sessions])
    ids = sorted({s["system_id"] for s in sessions})
    known = {r[0]: r[1] for r in conn.execute(select(c.system_id, c.consecutive_failures)
                                               .where(c.system_id.in_(ids)))}
    failures_of = dict(known)
    for session in sessions:  # in order: a system twice in one batch counts both
        sid = session["system_id"]
        failures = 0 if session["success"] else failures_of.get(sid, 0) + 1
        failures_of[sid] = failures
        out.append(failures)
        end_ms = session["started_at_ms"] + session["duration_ms"]
        states[sid] = dict(  # its last session wins; polling_until_ms None: the claim is released
            b_sid=sid, consecutive_failures=failures,
            last_poll_ms=session.get("tick_ms") or session["started_at_ms"],  # due again from its tick
            polling_until_ms=None,
            last_success_ms=end_ms if session["success"] else None,
            last_error=None if session["success"] else (session.get("error") or "")[:2000])
    # one statement per shape instead of one per system (a batch is up to 512)
    ok = [v for v in states.values() if v["last_error"] is None]
    bad = [v for v in states.values() if v["last_error"] is not None]
    for rows, cols in ((ok, ("consecutive_failures", "last_poll_ms", "polling_until_ms", "last_success_ms",
                             "last_error")),
                       (bad, ("consecutive_failures", "last_poll_ms", "polling_until_ms", "last_error"))):
        old = [r for r in rows if r["b_sid"] in known]
        new = [r for r in rows if r["b_sid"] not in known]
        if old:
            bulk.update(conn, system_poll_state, cols, ("system_id",),
                        [tuple(r[k] for k in (*cols, "b_sid")) for r in old])
        if new:
            conn.execute(insert(system_poll_state), [{"system_id": r["b_sid"], **{k: r[k] for k in cols}}
                                                     for r in new])
    return out


def record_push(telemetry: Engine, session: dict) -> None:
    """Write the session of a push (cause ``PUSH``) in one transaction. A push never
    touches the poll bookkeeping (no claim released, no ``last_poll_ms``: a poll of
    the same system may be running); a stored push counts as the system's last
    success (its freshness) and clears its failure count, a refused one only leaves
    its error (a pusher's retry of a stored reading does not make a system ``error``)."""
    c = system_poll_state.c
    with write_transaction(telemetry) as conn:
        conn.execute(insert(poll_sessions), [{k: session.get(k) for k in SESSION_FIELDS}])
        sid = session["system_id"]
        if session["success"]:
            values = dict(last_success_ms=session["started_at_ms"] + session["duration_ms"], last_error=None,
                          consecutive_failures=0)
        else:
            values = dict(last_error=(session.get("error") or "")[:2000])
        if not conn.execute(update(system_poll_state).where(c.system_id == sid).values(**values)).rowcount:
            conn.execute(insert(system_poll_state).values(system_id=sid, **values))


def claim(telemetry: Engine, system_ids: list[int], now_ms: int, lease_ms: int) -> set[int]:
    """Claim the systems no other poll holds (a claim expired after ``lease_ms`` counts
    as free); returns those claimed. Atomic across processes: a conditional UPDATE."""
    if not system_ids:
        return set()
    c = system_poll_state.c
    ids = sorted(set(system_ids))
    got: set[int] = set()
    with write_transaction(telemetry) as conn:
        for part in id_chunks(ids):
            known = {r[0] for r in conn.execute(select(c.system_id).where(c.system_id.in_(part)))}
            missing = [i for i in part if i not in known]
            if missing:  # a system backfill may insert the same row at once: not an error
                conn.execute(_insert_new(conn), [{"system_id": i} for i in missing])
            got.update(r[0] for r in conn.execute(
                update(system_poll_state)
                .where(c.system_id.in_(part), c.polling_until_ms.is_(None) | (c.polling_until_ms < now_ms))
                .values(polling_until_ms=now_ms + lease_ms, lease_holder=None).returning(c.system_id)))
    return got


def _insert_new(conn):
    """INSERT … ON CONFLICT DO NOTHING into system_poll_state."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(system_poll_state).on_conflict_do_nothing(index_elements=["system_id"])


def claim_for(telemetry: Engine, system_id: int, holder: str, now_ms: int, lease_ms: int) -> bool:
    """Hold the system's claim for ``holder`` (a system backfill) as a poll would: free,
    expired, or already ``holder``'s. While it is held, polls of the system are skipped
    (counted as overruns)."""
    c = system_poll_state.c
    with write_transaction(telemetry) as conn:
        conn.execute(_insert_new(conn), [{"system_id": system_id}])
        got = conn.execute(update(system_poll_state)
                           .where(c.system_id == system_id,
                                  c.polling_until_ms.is_(None) | (c.polling_until_ms < now_ms)
                                  | (c.lease_holder == holder))
                           .values(polling_until_ms=now_ms + lease_ms, lease_holder=holder)
                           .returning(c.system_id)).all()
    return bool(got)


def renew_for(telemetry: Engine, holder: str, now_ms: int, lease_ms: int) -> set[int]:
    """Extend the claims ``holder`` still has; returns their systems."""
    c = system_poll_state.c
    with write_transaction(telemetry) as conn:
        return {r[0] for r in conn.execute(update(system_poll_state).where(c.lease_holder == holder)
                                           .values(polling_until_ms=now_ms + lease_ms).returning(c.system_id))}


def release_for(telemetry: Engine, holder: str) -> None:
    """Drop ``holder``'s claims (a poll's or another holder's are untouched)."""
    c = system_poll_state.c
    with write_transaction(telemetry) as conn:
        conn.execute(update(system_poll_state).where(c.lease_holder == holder)
                     .values(polling_until_ms=None, lease_holder=None))


def release(telemetry: Engine, system_ids: list[int]) -> None:
    """Drop claims without a session (a poll cancelled before it was written)."""
    if system_ids:
        with write_transaction(telemetry) as conn:
            conn.execute(update(system_poll_state).where(system_poll_state.c.system_id.in_(system_ids))
                         .values(polling_until_ms=None))


def count_overrun(telemetry: Engine, system_id: int) -> None:
    """A poll of the system was due while its previous one still ran (skipped)."""
    count_overruns(telemetry, [system_id])


def count_overruns(telemetry: Engine, system_ids: list[int]) -> None:
    """Polls of these systems were due while their previous ones still ran (skipped):
    one transaction, one UPDATE for all (a tick can skip thousands)."""
    ids = sorted(set(system_ids))
    if not ids:
        return
    c = system_poll_state.c
    with write_transaction(telemetry) as conn:
        known = {r[0] for r in conn.execute(select(c.system_id).where(c.system_id.in_(ids)))}
        conn.execute(update(system_poll_state).where(c.system_id.in_(known))
                     .values(skipped_overruns=c.skipped_overruns + 1))
        missing = [i for i in ids if i not in known]
        if missing:
            conn.execute(insert(system_poll_state), [{"system_id": i, "skipped_overruns": 1} for i in missing])


def poll_states(telemetry: Engine, system_ids: list[int] | None = None) -> dict[int, dict]:
    """system id -> consecutive_failures, last_poll_ms (the tick that started the last poll), last_success_ms (its end), last_error, skipped_overruns."""
    q = select(system_poll_state)
    with telemetry.connect() as conn:
        if system_ids is None:
            return {r["system_id"]: dict(r) for r in conn.execute(q).mappings()}
        return {r["system_id"]: dict(r) for part in id_chunks(sorted(set(system_ids)))
                for r in conn.execute(q.where(system_poll_state.c.system_id.in_(part))).mappings()}


def list_sessions(telemetry: Engine, *, system_ids: list[int] | None = None, success: bool | None = None,
                  since_ms: int | None = None, limit: int = 500) -> list[dict]:
    """Sessions, newest first."""
    c = poll_sessions.c
    q = select(poll_sessions).order_by(c.started_at_ms.desc(), c.id.desc()).limit(limit)
    if system_ids is not None:
        q = q.where(c.system_id.in_(system_ids))
    if success is not None:
        q = q.where(c.success.is_(success))
    if since_ms is not None:
        q = q.where(c.started_at_ms >= since_ms)
    with telemetry.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def vendor_stats(telemetry: Engine, *, system_ids: list[int] | None = None, success: bool | None = None,
                 since_ms: int | None = None) -> list[dict]:
    """Per vendor: sessions, successes, mean duration (ms) of the sessions matching the filters."""
    c = poll_sessions.c
    q = (select(c.vendor_type, func.count().label("sessions"),
                func.sum(case((c.success.is_(True), 1), else_=0)).label("successes"),
                func.avg(c.duration_ms).label("mean_duration_ms"))
         .group_by(c.vendor_type).order_by(c.vendor_type))
    if system_ids is not None:
        q = q.where(c.system_id.in_(system_ids))
    if success is not None:
        q = q.where(c.success.is_(success))
    if since_ms is not None:
        q = q.where(c.started_at_ms >= since_ms)
    with telemetry.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
