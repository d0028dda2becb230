"""Bulk, idempotent upserts of one page of HaloPSA records, keyed by (partner, HaloPSA id).

Each call reads the page's existing rows in one query, inserts the new ones and updates only the rows whose synced
fields differ, so a rerun writes nothing and the counts (created, updated, unchanged) say what a run really changed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def upsert_rows(
    conn: Connection,
    table: Table,
    fields: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    partner_id: int,
    now: datetime,
    run_id: int | None = None,
) -> Counts:
    """Insert new rows, update changed ones, leave equal ones alone; returns what happened. `rows` are not changed."""
    counts = Counts()
    if not rows:
        return counts
    by_id = {row["halo_id"]: row for row in rows}  # a page repeating an id keeps its last copy
    existing = {found.halo_id: found for found in _existing(conn, table, fields, partner_id, list(by_id))
                if found.halo_id in by_id}
    tracks_runs = "last_changed_run_id" in table.c
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    update_ids: list[int] = []
    compared = list(enumerate(fields, start=2))  # positions of the synced fields in an `existing` row
    for halo_id, row in by_id.items():
        current = existing.get(halo_id)
        if current is None:
            inserts.append(row)
        elif any(current[index] != row[name] for index, name in compared):
            updates.append(row)
            update_ids.append(current.id)
        else:
            counts.unchanged += 1
    if inserts:
        count = len(inserts)
        values = {name: list(map(itemgetter(name), inserts)) for name in ("halo_id", *fields)}
        values.update(partner_id=[partner_id] * count, synced_at=[now] * count)
        if tracks_runs:
            values.update(first_seen_run_id=[run_id] * count, last_changed_run_id=[run_id] * count)
        _execute_many(conn, ("insert", table.name, *values), table.insert, values)
        counts.created = count
    if updates:
        # bind names must differ from column names in an executemany UPDATE
        count = len(updates)
        changes = {name: list(map(itemgetter(name), updates)) for name in fields}
        changes["synced_at"] = [now] * count
        if tracks_runs:
            changes["last_changed_run_id"] = [run_id] * count

        def statement() -> ClauseElement:
            return (
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values({name: bindparam(f"v_{name}") for name in changes})
            )

        values = {"_id": update_ids, **{f"v_{name}": column for name, column in changes.items()}}
        _execute_many(conn, ("update", table.name, *values), statement, values)
        counts.updated = count
    return counts


def _existing(conn: Connection, table: Table, fields: Sequence[str], partner_id: int, ids: list[int]) -> Any:
    """The stored rows (id, halo_id, *fields) among `ids`, and perhaps a few neighbours. A page of a listing in id
    order holds neighbouring ids: one range scan then, rather than an IN of a thousand parameters."""
    columns = [table.c.id, table.c.halo_id, *(table.c[name] for name in fields)]
    low, high = min(ids), max(ids)
    if high - low < 2 * len(ids) + 100:
        where = table.c.halo_id.between(bindparam("low"), bindparam("high"))
        params: dict[str, Any] = {"low": low, "high": high}
    else:
        where = table.c.halo_id.in_(bindparam("halo_ids", expanding=True))
        params = {"halo_ids": ids}
    return conn.execute(select(*columns).where(table.c.partner_id == bindparam("partner_id"), where),
                        {"partner_id": partner_id, **params})


@dataclass(frozen=True)
class _Prepared:
    sql: str
    positional: bool
    order: list[str]  # bind names in the order the DBAPI takes them
    processors: Mapping[str, Callable[[Any], Any]]


_prepared: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Prepared]] = weakref.WeakKeyDictionary()


def _prepare(dialect: Dialect, statement: ClauseElement, names: list[str]) -> _Prepared:
    """Compile once per dialect: the SQL, the DBAPI's parameter order, and SQLAlchemy's own bind processors."""
    compiled = statement.compile(dialect=dialect, column_keys=names)
    assert isinstance(compiled, SQLCompiler)
    order = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    if sorted(order) != sorted(names):  # e.g. a column default SQLAlchemy would have filled in
        raise ValueError(f"the statement binds {sorted(order)} but the rows give {sorted(names)}")
    processors = {}
    for name in order:
        processor = compiled.binds[name].type._cached_bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    return _Prepared(compiled.string, bool(compiled.positional), order, processors)


def _execute_many(conn: Connection, key: tuple[str, ...], statement: Callable[[], ClauseElement],
                  columns: dict[str, list[Any]]) -> None:
    """One DBAPI executemany of `statement`, its parameters given column by column (bind name -> values).

    The same SQL and the same type processing as `conn.execute(statement, list_of_dicts)` (SQLAlchemy's bind
    processors for the dialect, e.g. UTCDateTime's), in the caller's transaction, without SQLAlchemy's per-row
    parameter assembly, which was most of a backfill's database time. Each distinct value of a column is
    processed once: a page repeats its dates, its flags and its synced_at.
    """
    cache = _prepared.setdefault(conn.dialect, {})
    prepared = cache.get(key)
    if prepared is None:
        prepared = cache[key] = _prepare(conn.dialect, statement(), list(columns))
    data = []
    for name in prepared.order:
        values = columns[name]
        process = prepared.processors.get(name)
        if process is not None:
            values = _processed(process, values)
        data.append(values)
    rows = zip(*data, strict=True)
    conn.exec_driver_sql(prepared.sql, list(rows) if prepared.positional else [
        dict(zip(prepared.order, row, strict=True)) for row in rows])


# Types whose equal values are processed alike (not Decimal: 1.0 == 1.00, yet they may be written differently).
_MEMO_TYPES = frozenset({bool, int, str, date, datetime, type(None)})


def _processed(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """`process` applied to each value; once per distinct value when a column repeats its values (dates, flags)."""
    if len(values) > 8 and set(map(type, values)) <= _MEMO_TYPES:
        distinct = set(values)
        if len(distinct) * 2 <= len(values):
            mapping = {value: process(value) for value in distinct}
            return list(map(mapping.__getitem__, values))
    return list(map(process, values))


