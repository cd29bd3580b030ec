"""Bulk upserts that are idempotent on both databases.

SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT``. PostgreSQL: up to
``UNNEST_MAX_ROWS`` rows, one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT``
(one round trip); more, a binary ``COPY`` into a temporary staging table, then one
``INSERT ... SELECT ... ON CONFLICT`` (MACHINE-LIMITS.md: ~1.7x the rate of
executemany upserts). Rows must be unique on the key within one call.
"""

from __future__ import annotations

import threading
import zlib
from contextlib import contextmanager
from typing import Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import Connection, Table
from sqlalchemy.sql import sqltypes


def upsert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple],
    key: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    combine: Mapping[str, str] | None = None,
) -> None:
    """Insert ``rows``; on a key conflict update ``update`` columns (default: all
    non-key columns; empty: do nothing) with the new values, or, with ``combine``,
    set each named column to an SQL expression of the stored row (``<table>.<col>``)
    and the new one (``excluded.<col>``)."""
    if not rows:
        return
    if combine is not None:
        sets = dict(combine)
    else:
        sets = {c: f"excluded.{c}" for c in (update if update is not None else
                                              [c for c in columns if c not in key])}
    action = ("DO UPDATE SET " + ", ".join(f"{c} = {e}" for c, e in sets.items())) if sets else "DO NOTHING"
    if conn.dialect.name == "postgresql":
        _pg_upsert(conn, table, columns, rows, key, action)
        return
    cols = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) {action}", list(rows))


def insert_new(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert rows whose keys the caller knows are not stored (and holds the lock
    that keeps it so): a plain INSERT, or on PostgreSQL a COPY straight into the
    table, skipping the staging table and the conflict check. ``rows`` may be an
    iterator: it is streamed to the driver, never held as a list."""
    if conn.dialect.name == "postgresql":
        _pg_copy(conn, table, columns, rows)
        return
    cols = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    cur = conn.connection.driver_connection.cursor()  # inside the connection's open transaction
    try:
        cur.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", rows)
    finally:
        cur.close()


# Below this many rows one statement with a binary array per column beats the staging
# table's four round trips (CREATE IF NOT EXISTS, TRUNCATE, COPY, INSERT): 1.6 against
# 3.6 ms for 128 rows, 8.0 against 7.6 ms for 1,000 (an idle loopback server, commit
# included; in a busy process every round trip also waits for the GIL).
UNNEST_MAX_ROWS = 500


def _pg_unnest(table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> tuple[str, tuple] | None:
    """(``unnest(%b::type[], ...)``, its parameters: one list per column) over ``rows``,
    or None when the rows are too many or a column's type has no binary array here."""
    if len(rows) > UNNEST_MAX_ROWS:
        return None
    types = [_pg_binary_type(table.c[c].type) for c in columns]
    if None in types:
        return None
    arrays = tuple(_one_type(list(col), t) for col, t in zip(zip(*rows), types))
    return "unnest(" + ", ".join(f"%b::{t}[]" for t in types) + ")", arrays


_PYTHON_TYPE = {"int2": int, "int4": int, "int8": int, "float8": float, "bool": bool, "text": str}


def _one_type(values: list, pg_type: str) -> list:
    """``values`` with one Python type: psycopg dumps a list by the type of its items and
    refuses a mix (an int among floats, a bool among ints), which a typed COPY took."""
    kinds = {type(v) for v in values if v is not None}
    to = _PYTHON_TYPE.get(pg_type)
    if len(kinds) <= 1 or to is None:
        return values
    return [None if v is None else to(v) for v in values]


def _pg_execute(conn: Connection, sql: str, params: tuple) -> None:
    """``sql`` with psycopg's own placeholders, inside the connection's transaction (not
    ``exec_driver_sql``: it takes a tuple of lists for as many sets of parameters)."""
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql, params)


def _pg_binary_type(col_type) -> str | None:
    """The PostgreSQL type name for a binary COPY of a column (None: send text)."""
    if isinstance(col_type, sqltypes.DateTime):
        return "timestamptz" if col_type.timezone else "timestamp"
    for cls, name in ((sqltypes.SmallInteger, "int2"), (sqltypes.BigInteger, "int8"), (sqltypes.Integer, "int4"),
                      (sqltypes.Float, "float8"), (sqltypes.Boolean, "bool"), (sqltypes.String, "text")):
        if isinstance(col_type, cls):
            return name
    return None  # JSON, bytes: text COPY


def _pg_copy(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple],
             into: str | None = None) -> None:
    """COPY ``rows`` of ``table``'s ``columns`` into ``into`` (default: the table, else a
    staging copy of it): binary when every column type is known (the server need not
    parse text, and psycopg packs the values in C), else text."""
    types = [_pg_binary_type(table.c[c].type) for c in columns]
    binary = None not in types
    table_name = into or table.name
    cols = ", ".join(columns)
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY {table_name} ({cols}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")) as copy:
            if binary:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)


@contextmanager
def inserting_new(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple]):
    """:func:`insert_new` in a helper thread while the body of the ``with`` runs.

    Most of an insert's time is spent outside the Python interpreter — PostgreSQL's
    server storing the COPY, SQLite's B-tree work — with the GIL released, so the
    caller's own computation in the body overlaps it (bench/pipeline.py: +5-10 %).
    The body must not use ``conn``; leaving the block waits for the insert and
    re-raises its error."""
    errors: list[BaseException] = []

    def insert() -> None:
        try:
            insert_new(conn, table, columns, rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=insert, name="insert-new-rows")
    worker.start()
    try:
        yield
    finally:
        worker.join()
    if errors:
        raise errors[0]


def update(conn: Connection, table: Table, set_columns: Sequence[str], key: Sequence[str],
           rows: Sequence[tuple]) -> None:
    """Set ``set_columns`` of existing rows; each row is (*set values, *key values)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sets = ", ".join(f"{c} = s.{c}" for c in set_columns)
        match = " AND ".join(f"t.{k} = s.{k}" for k in key)
        columns = [*set_columns, *key]
        cols = ", ".join(columns)
        unnest = _pg_unnest(table, columns, rows)
        if unnest is not None:
            source, params = unnest
            _pg_execute(conn, f"UPDATE {table.name} t SET {sets} FROM {source} AS s({cols}) WHERE {match}", params)
            return
        # only these columns, without the table's NOT NULL constraints on the others
        stage = f"_stage_update_{table.name}_{zlib.crc32(cols.encode())}"
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
                             f"AS SELECT {cols} FROM {table.name} WITH NO DATA")
        conn.exec_driver_sql(f"TRUNCATE {stage}")
        _pg_copy(conn, table, columns, rows, into=stage)
        conn.exec_driver_sql(f"UPDATE {table.name} t SET {sets} FROM {stage} s WHERE {match}")
        return
    conn.exec_driver_sql(
        f"UPDATE {table.name} SET " + ", ".join(f"{c} = ?" for c in set_columns)
        + " WHERE " + " AND ".join(f"{k} = ?" for k in key), list(rows))


def _pg_upsert(conn, table, columns, rows, key, action: str) -> None:
    cols = ", ".join(columns)
    unnest = _pg_unnest(table, columns, rows)
    if unnest is not None:
        source, params = unnest
        _pg_execute(conn, f"INSERT INTO {table.name} ({cols}) SELECT * FROM {source} "
                          f"ON CONFLICT ({', '.join(key)}) {action}", params)
        return
    stage = f"_stage_{table.name}"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    _pg_copy(conn, table, columns, rows, into=stage)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "
        f"ON CONFLICT ({', '.join(key)}) {action}"
    )


def values_cte(name: str, columns: Sequence[str], rows: Sequence[Sequence[int]]) -> str:
    """``name(cols) AS (VALUES ...)`` with integer literals inlined.

    Only for integers (series ids, epoch seconds) we computed ourselves, so no
    user text ever reaches the SQL; inlining avoids SQLite's parameter limit.
    """
    # int(): numpy integers and bools become plain literals
    body = "), (".join(",".join(map(str, map(int, r))) for r in rows)
    return f"{name}({', '.join(columns)}) AS (VALUES ({body}))"


def fetch_rows(conn: Connection, sql: str) -> list[tuple]:
    """Plain tuples from the driver: numpy converts them in C, while SQLAlchemy Row
    objects cost a failed key lookup each."""
    result = conn.exec_driver_sql(sql)
    rows = result.cursor.fetchall()
    result.close()
    return rows


def fetch_columns(conn: Connection, sql: str, names: Sequence[str], dtypes: Sequence) -> dict[str, np.ndarray]:
    """The result of ``sql`` as one numpy array per column (``names``, ``dtypes``)."""
    return as_columns(fetch_rows(conn, sql), names, dtypes)


def as_columns(rows: Sequence[tuple], names: Sequence[str], dtypes: Sequence) -> dict[str, np.ndarray]:
    if not rows:
        return {n: np.zeros(0, d) for n, d in zip(names, dtypes)}
    # one C-level conversion; every integer here (ids, epoch s, milli-Wh) is far below
    # 2**53, so the float64 round trip is exact
    arr = np.array(rows, dtype=np.float64)
    return {n: arr[:, i].astype(d) for i, (n, d) in enumerate(zip(names, dtypes))}
